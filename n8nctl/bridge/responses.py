"""What the bridge's API answers: a job as the contract shows it (docs/CONTRACTS.md), and every failure
as an ApiError body counted by its error_code."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException

from n8nctl.bridge.checks import validation_detail
from n8nctl.bridge.errors import ApiError
from n8nctl.bridge.models import CallbackState, JobResponse, JobView
from n8nctl.bridge.service import Bridge
from n8nctl.registry import Registry
from n8nctl.store.schema import Row

log = logging.getLogger("n8nctl.bridge")

_MESSAGES = {
    "pending": "accepted; waiting for n8n",
    "running": "running in n8n",
    "success": "completed",
    "cancelled": "cancelled",
}


def job_response(job: Row, registry: Registry, status_code: int, *, full: bool = False) -> Response:
    entry = registry.workflows.get(job["workflow_key"])
    estimate = job["completed_at"] or (
        job["accepted_at"] + timedelta(seconds=entry.expected_duration_seconds) if entry else None
    )
    failed = job["status"] == "failed"
    message = (job["error_message"] or job["error_code"] or "failed") if failed else _MESSAGES[job["status"]]
    base = {
        "job_id": job["job_id"],
        "status": job["status"],
        "message": message,
        "accepted_at": job["accepted_at"],
        "estimated_completion": estimate,
    }
    model: BaseModel = JobResponse.model_construct(**base)  # the store's values: nothing to validate
    if full:
        delivery = job.get("delivery")
        callback = (
            CallbackState(
                state=delivery["state"],
                webhook_id=delivery["message_id"],
                attempts=delivery["attempts"],
                last_status_code=delivery["last_status_code"],
                last_error=delivery["last_error"],
                next_attempt_at=delivery["next_attempt_at"] if delivery["state"] == "pending" else None,
                delivered_at=delivery["delivered_at"],
            )
            if delivery
            else None
        )
        model = JobView(
            **base,
            callback=callback,
            **{
                k: job[k]
                for k in (
                    "client_id",
                    "workflow_key",
                    "priority",
                    "timeout_seconds",
                    "deadline_at",
                    "started_at",
                    "completed_at",
                    "execution_id",
                    "error_code",
                    "error_message",
                    "outputs",
                )
            },
        )
    return Response(model.model_dump_json(), status_code=status_code, media_type="application/json")


def error_handlers(bridge: Bridge) -> dict[Any, Any]:
    """Every failure leaves as an ApiError body, and is counted by error_code (both apps use these)."""

    def answer(error: ApiError) -> JSONResponse:
        bridge.metrics.rejected.labels(error.error_code).inc()
        return error.response()

    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return answer(exc)

    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        detail = validation_detail(exc.errors())
        return answer(ApiError("VALIDATION_ERROR", "request does not match the contract", detail=detail))

    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        if exc.status_code == 405:
            return answer(ApiError("METHOD_NOT_ALLOWED", "method not allowed on this path"))
        return answer(ApiError("NOT_FOUND", "no such endpoint"))

    async def store_error(_: Request, exc: OperationalError) -> JSONResponse:
        log.error("job store error: %s", type(exc.orig).__name__)
        return answer(
            ApiError(
                "STORE_UNAVAILABLE",
                "the job store is unavailable; retry shortly",
                headers={"Retry-After": "5"},
            )
        )

    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return answer(ApiError("INTERNAL_ERROR", "unexpected error; it is logged on the bridge"))

    return {
        ApiError: api_error,
        RequestValidationError: validation_error,
        HTTPException: http_error,
        OperationalError: store_error,
        Exception: unexpected,
    }
