"""API errors: one body shape, stable UPPER_SNAKE error codes (listed in docs/CONTRACTS.md)."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

# error_code -> HTTP status. The single source of truth; a test checks docs/CONTRACTS.md lists them all.
ERROR_STATUS: dict[str, int] = {
    "MALFORMED_JSON": 400,
    "SIGNATURE_MISSING": 401,
    "SIGNATURE_INVALID": 401,
    "SIGNATURE_EXPIRED": 401,
    "SIGNATURE_REPLAYED": 401,
    "UNKNOWN_CLIENT": 401,
    "CLIENT_MISMATCH": 403,
    "WORKFLOW_NOT_ALLOWED": 403,
    "JOB_NOT_FOUND": 404,
    "NOT_FOUND": 404,
    "METHOD_NOT_ALLOWED": 405,
    "IDEMPOTENCY_CONFLICT": 409,
    "JOB_ALREADY_FINISHED": 409,
    "PAYLOAD_TOO_LARGE": 413,
    "VALIDATION_ERROR": 422,
    "UNKNOWN_WORKFLOW": 422,
    "WORKFLOW_DISABLED": 422,
    "TIMEOUT_TOO_LARGE": 422,
    "INPUTS_INVALID": 422,
    "CALLBACK_URL_NOT_ALLOWED": 422,
    "WORKFLOW_KILLED": 423,
    "RATE_LIMITED": 429,
    "INTERNAL_ERROR": 500,
    "N8N_KILLED": 503,
    "STORE_UNAVAILABLE": 503,
    "GUARD_UNAVAILABLE": 503,
    "NOT_READY": 503,
}


class ApiError(Exception):
    def __init__(
        self, error_code: str, message: str, *, detail: Any = None, headers: dict[str, str] | None = None
    ) -> None:
        self.status = ERROR_STATUS[error_code]
        self.error_code, self.message, self.detail, self.headers = error_code, message, detail, headers
        super().__init__(message)

    def response(self) -> JSONResponse:
        body = {"error_code": self.error_code, "message": self.message, "detail": self.detail}
        return JSONResponse(body, status_code=self.status, headers=self.headers)
