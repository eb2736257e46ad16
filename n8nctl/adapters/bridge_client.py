"""A signed client of the bridge API, as FlowBiz calls it. Used by `n8nctl jobs`."""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx

from n8nctl.errors import NotFoundError, RemoteError, UnreachableError
from n8nctl.signing import sign_headers

log = logging.getLogger(__name__)


class BridgeClient:
    def __init__(
        self, base_url: str, client_id: str, secret: str, *, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.client_id, self._secret = client_id, secret
        self._http = httpx.Client(base_url=base_url.rstrip("/"), timeout=10.0, transport=transport)

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        raw = json.dumps(body, separators=(",", ":")).encode() if body is not None else b""
        headers = {**sign_headers(self._secret, raw), "X-Client-Id": self.client_id}
        if body is not None:
            headers["content-type"] = "application/json"
        log.debug("bridge %s %s", method, path)
        try:
            response = self._http.request(method, path, content=raw, headers=headers)
        except httpx.HTTPError as exc:
            raise UnreachableError(
                f"the bridge at {self._http.base_url} did not answer",
                why=type(exc).__name__,
                fix="Check it runs (n8nctl status) and N8NCTL_BRIDGE_URL points at it.",
            ) from None
        if response.is_success:
            return response.json()
        try:
            error = response.json()
            code, message = error["error_code"], error["message"]
        except (ValueError, KeyError, TypeError):
            code, message = "UNEXPECTED_RESPONSE", response.text[:200]
        if code == "JOB_NOT_FOUND":
            raise NotFoundError(message, fix="Check the job id and N8NCTL_CLIENT_ID.")
        raise RemoteError(
            f"{method} {path} was refused: {message}",
            status=response.status_code,
            error_code=code,
            fix=f"See error_code {code} in docs/CONTRACTS.md.",
        )

    def submit(self, job: dict[str, Any]) -> Any:
        return self._call("POST", "/v1/jobs", job)

    def status(self, job_id: str) -> Any:
        return self._call("GET", f"/v1/jobs/{job_id}")

    def cancel(self, job_id: str, reason: str | None) -> Any:
        return self._call(
            "POST", f"/v1/jobs/{job_id}/cancel", {"client_id": self.client_id, "reason": reason}
        )


PROBE_JOB_ID = "secret-rotation-probe"


def accepts_n8n_secret(base_url: str, secret: str, *, transport: httpx.BaseTransport | None = None) -> bool:
    """Whether the running bridge accepts a result signed with `secret`: a signed result for a job
    that does not exist answers 404 JOB_NOT_FOUND once the signature is good, 401 before."""
    body = json.dumps({"job_id": PROBE_JOB_ID, "status": "success"}).encode()
    headers = {**sign_headers(secret, body), "content-type": "application/json"}
    log.debug("bridge probe POST /v1/callbacks/n8n")
    try:
        with httpx.Client(base_url=base_url.rstrip("/"), timeout=5.0, transport=transport) as http:
            response = http.post("/v1/callbacks/n8n", content=body, headers=headers)
    except httpx.HTTPError:
        return False
    return response.status_code == 404
