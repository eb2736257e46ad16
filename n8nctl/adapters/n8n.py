"""Where n8nctl talks to n8n: production webhooks (with the header token) and the public API."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import httpx

log = logging.getLogger(__name__)


class DispatchError(Exception):
    """n8n did not accept a job (unreachable, or a non-2xx answer with `status`)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


class N8nClient:
    def __init__(
        self,
        base_url: str,
        *,
        api_key: Callable[[], str] = str,
        webhook_header: str = "X-Bridge-Token",
        webhook_token: str = "",
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._webhook_headers = {webhook_header: webhook_token} if webhook_token else {}
        self._api_key = api_key  # read at each use: `n8nctl up` creates the key after the bridge starts
        self._http = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout, transport=transport)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def trigger(self, webhook_path: str, payload: dict[str, Any]) -> str | None:
        """POST the job to the workflow's production webhook; returns n8n's execution id if it gave one."""
        url = f"/webhook/{webhook_path}"
        log.debug("n8n trigger POST %s job_id=%s", url, payload.get("job_id"))
        try:
            response = await self._http.post(url, json=payload, headers=self._webhook_headers)
        except httpx.HTTPError as exc:
            raise DispatchError(f"n8n unreachable: {type(exc).__name__}") from None
        if response.status_code >= 300:
            raise DispatchError(
                f"n8n answered HTTP {response.status_code} on {url}: {response.text[:200]}",
                status=response.status_code,
            )
        try:
            body = response.json()
        except ValueError:
            return None
        execution_id = body.get("execution_id") or body.get("executionId") if isinstance(body, dict) else None
        return str(execution_id) if execution_id is not None else None

    async def stop_execution(self, execution_id: str) -> bool:
        """Stop a running execution (n8n >= ~2.10). False when n8n has no such execution or no API key."""
        api_key = self._api_key()
        if not api_key:
            return False
        url = f"/api/v1/executions/{execution_id}/stop"
        log.debug("n8n API POST %s", url)
        try:
            response = await self._http.post(url, headers={"X-N8N-API-KEY": api_key})
        except httpx.HTTPError:
            return False
        return response.status_code < 300

    async def execution_status(self, execution_id: str) -> str | None:
        """n8n's status of an execution (`success`, `error`, `crashed`, `canceled`, `running`,
        `waiting`, `new`, ...), `missing` when n8n has no such execution, None when n8n did not say
        (unreachable, no API key, any other answer)."""
        api_key = self._api_key()
        if not api_key:
            return None
        url = f"/api/v1/executions/{execution_id}"
        log.debug("n8n API GET %s", url)
        try:
            response = await self._http.get(url, headers={"X-N8N-API-KEY": api_key})
        except httpx.HTTPError:
            return None
        if response.status_code == 404:
            return "missing"
        try:
            body = response.json() if response.status_code == 200 else None
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return None
        if isinstance(body.get("status"), str):
            return str(body["status"])
        # n8n before 1.0 has no status: finished, or stopped without finishing, or still going
        return "success" if body.get("finished") else "error" if body.get("stoppedAt") else "running"

    async def ready(self) -> bool:
        try:
            response = await self._http.get("/healthz/readiness", timeout=2.0)
        except httpx.HTTPError:
            return False
        return response.status_code == 200
