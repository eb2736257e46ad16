"""n8n's REST and public API, for the operator side (bootstrap, workflows). Synchronous, for the CLI.

The bridge's own calls to n8n (webhooks, stop) are in adapters/n8n.py. Messages never include
request bodies: they carry passwords and credential data.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx

from n8nctl.errors import RemoteError, UnreachableError

log = logging.getLogger(__name__)


class N8nApi:
    def __init__(
        self, base_url: str, *, api_key: str = "", transport: httpx.BaseTransport | None = None
    ) -> None:
        self.base_url = base_url
        self._http = httpx.Client(base_url=base_url, timeout=30.0, transport=transport)
        self.api_key = api_key

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, *, public: bool = False, **kwargs: Any) -> Any:
        headers = {"X-N8N-API-KEY": self.api_key} if public else {}
        log.debug("n8n %s %s", method, path)
        try:
            response = self._http.request(method, path, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise UnreachableError(
                f"n8n at {self.base_url} did not answer {method} {path}",
                why=type(exc).__name__,
                fix="Check n8n runs: n8nctl status, n8nctl logs n8n.",
            ) from None
        if response.status_code >= 400:
            try:
                message = str(response.json().get("message", ""))[:200]
            except ValueError:
                message = response.text[:200]
            raise RemoteError(
                f"n8n refused {method} {path}: {message}",
                status=response.status_code,
                error_code=f"N8N_HTTP_{response.status_code}",
                fix="See n8nctl logs n8n.",
            )
        return response.json() if response.content else None

    # -- headless bootstrap (internal REST API, cookie session) ---------------------------------------

    def version(self) -> str:
        """The version the running n8n reports (its public frontend settings)."""
        return str(self._call("GET", "/rest/settings")["data"]["versionCli"])

    def owner_missing(self) -> bool:
        return bool(self._call("GET", "/rest/settings")["data"]["userManagement"]["showSetupOnFirstLoad"])

    def setup_owner(self, email: str, password: str) -> None:
        body = {"email": email, "firstName": "FlowBiz", "lastName": "Operator", "password": password}
        self._session("/rest/owner/setup", body)

    def login(self, email: str, password: str) -> None:
        self._session("/rest/login", {"emailOrLdapLoginId": email, "password": password})

    def _session(self, path: str, body: dict[str, Any]) -> None:
        """POST to a route that answers with n8n's session cookie, and send that cookie from now on.
        Behind TLS n8n marks it Secure (N8N_SECURE_COOKIE, the prod stack), and a cookie jar never
        sends a Secure cookie back over the plain-http loopback the bootstrap talks to n8n on."""
        self._call("POST", path, json=body)
        if token := self._http.cookies.get("n8n-auth"):
            self._http.headers["cookie"] = f"n8n-auth={token}"

    def create_api_key(self, label: str) -> str:
        scopes = self._call("GET", "/rest/api-keys/scopes")["data"]
        created = self._call(
            "POST", "/rest/api-keys", json={"label": label, "scopes": scopes, "expiresAt": None}
        )
        return str(created["data"]["rawApiKey"])

    def api_key_works(self) -> bool:
        try:
            self._call("GET", "/api/v1/workflows", public=True, params={"limit": 1})
        except RemoteError as exc:
            if exc.status in (401, 403):
                return False
            raise
        return True

    # -- public API ----------------------------------------------------------------------------------

    def _all(self, path: str, **params: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cursor = None
        while True:
            page = self._call("GET", path, public=True, params={**params, "limit": 100, "cursor": cursor})
            items += page["data"]
            cursor = page.get("nextCursor")
            if not cursor:
                return items

    def credentials(self) -> list[dict[str, Any]]:
        return self._all("/api/v1/credentials")

    def create_credential(self, name: str, type_: str, data: dict[str, Any]) -> str:
        created = self._call(
            "POST", "/api/v1/credentials", public=True, json={"name": name, "type": type_, "data": data}
        )
        return str(created["id"])

    def update_credential(self, credential_id: str, data: dict[str, Any]) -> None:
        self._call("PATCH", f"/api/v1/credentials/{credential_id}", public=True, json={"data": data})

    def workflows(self) -> list[dict[str, Any]]:
        return self._all("/api/v1/workflows")

    def workflow(self, workflow_id: str) -> dict[str, Any] | None:
        try:
            return dict(self._call("GET", f"/api/v1/workflows/{workflow_id}", public=True))
        except RemoteError as exc:
            if exc.status == 404:
                return None
            raise

    def create_workflow(self, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self._call("POST", "/api/v1/workflows", public=True, json=body))

    def update_workflow(self, workflow_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self._call("PUT", f"/api/v1/workflows/{workflow_id}", public=True, json=body))

    def set_active(self, workflow_id: str, *, active: bool) -> None:
        self._call(
            "POST", f"/api/v1/workflows/{workflow_id}/{'activate' if active else 'deactivate'}", public=True
        )

    def stop_executions(self, workflow_id: str) -> int:
        """Stop every queued, running or waiting execution of a workflow (n8n >= ~2.10); how many."""
        body = {"status": ["queued", "running", "waiting"], "workflowId": workflow_id}
        return int(self._call("POST", "/api/v1/executions/stop", public=True, json=body)["stopped"])

    def webhook_registered(self, path: str) -> bool:
        """Whether n8n routes its production webhook `path` (an unauthenticated POST runs nothing)."""
        try:
            return self._http.post(f"/webhook/{path}", timeout=5.0).status_code != 404
        except httpx.HTTPError:
            return False

    def last_execution(self, workflow_id: str) -> dict[str, Any] | None:
        page = self._call(
            "GET", "/api/v1/executions", public=True, params={"workflowId": workflow_id, "limit": 1}
        )
        return page["data"][0] if page["data"] else None

    def executions_page(
        self, cursor: str | None, *, limit: int = 250
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of executions, newest first, without their data; and the next page's cursor."""
        page = self._call(
            "GET",
            "/api/v1/executions",
            public=True,
            params={"limit": limit, "cursor": cursor, "includeData": False},
        )
        return list(page["data"]), page.get("nextCursor")

    def delete_execution(self, execution_id: str) -> None:
        """n8n's public API deletes executions one at a time (there is no bulk delete)."""
        self._call("DELETE", f"/api/v1/executions/{execution_id}", public=True)
