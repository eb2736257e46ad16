"""An in-process bridge (httpx.ASGITransport) with n8n and FlowBiz's receiver behind httpx transports.

The fakes sit at the adapters' transport seam: they record what the bridge sends and answer as n8n's
production webhook and a FlowBiz receiver would. The real-process tier is tests/process/.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from n8nctl.adapters.callbacks import system_resolver
from n8nctl.bridge.app import create_app
from n8nctl.registry import Registry
from n8nctl.settings import Settings
from n8nctl.store import Store
from tests.conftest import Secrets, signed


def migrate(url: str) -> None:
    store = Store(url)
    store.migrate()
    store.close()


@dataclass
class FakeN8n:
    """n8n's webhook: records dispatches, answers `status` (202 with an execution id by default).
    Its public API stops executions and answers GET /api/v1/executions/{id} with `executions[id]`
    (set to `running` at dispatch; a test ends one by setting n8n's status; 404 for ids it never
    gave), recording each look-up in `looked_up`."""

    status: int = 202
    up: bool = True
    calls: list[dict[str, Any]] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    executions: dict[str, str] = field(default_factory=dict)
    looked_up: list[str] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if not self.up:
            raise httpx.ConnectError("connection refused", request=request)
        if request.url.path.startswith("/api/v1/executions/"):
            execution_id = request.url.path.split("/")[4]
            if request.method == "GET":
                self.looked_up.append(execution_id)
                if execution_id not in self.executions:
                    return httpx.Response(404, json={"message": "Not Found"})
                return httpx.Response(200, json={"id": execution_id, "status": self.executions[execution_id]})
            self.stopped.append(execution_id)
            return httpx.Response(200, json={"id": execution_id})
        if request.url.path == "/healthz/readiness":
            return httpx.Response(200, json={"status": "ok"})
        payload = json.loads(request.content)
        self.calls.append({"path": request.url.path, "headers": dict(request.headers), "payload": payload})
        execution_id = str(1000 + len(self.calls))
        self.executions[execution_id] = "running"
        return httpx.Response(self.status, json={"executionId": execution_id})


@dataclass
class Receiver:
    """FlowBiz's callback endpoint: records every delivery; `answers` are returned in order, then 200."""

    answers: list[httpx.Response | Exception] = field(default_factory=list)
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.received.append((dict(request.headers), request.content))
        answer = self.answers.pop(0) if self.answers else httpx.Response(200)
        if isinstance(answer, Exception):  # a failure inside the attempt that is not the receiver's
            raise answer
        return answer

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.received]


@dataclass
class Dns:
    """Names the tests make up, resolved as a DNS server would answer; other names through the
    system's resolver (so `localhost` is real). `answers[name]` may be a list of answers, one per
    lookup, to play a name that changes between admission and delivery (DNS rebinding)."""

    answers: dict[str, list[str] | list[list[str]]] = field(
        default_factory=lambda: {"flowbiz.example": ["93.184.215.14"]}
    )
    lookups: list[str] = field(default_factory=list)

    async def __call__(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        answer = self.answers.get(host)
        if answer is None:
            return await system_resolver(host, port)
        if answer and isinstance(answer[0], list):
            return answer.pop(0) if len(answer) > 1 else answer[0]  # type: ignore[return-value]
        return answer  # type: ignore[return-value]


@dataclass
class Harness:
    client: httpx.AsyncClient
    n8n: FakeN8n
    receiver: Receiver
    secrets: Secrets
    app: Any
    dns: Dns

    async def submit(
        self, body: dict[str, Any], *, secret: str | None = None, **headers: str
    ) -> httpx.Response:
        raw, signed_headers = signed(secret or self.secrets.client, body, **headers)
        return await self.client.post("/v1/jobs", content=raw, headers=signed_headers)

    async def get(
        self, path: str, *, client_id: str = "flowbiz", secret: str | None = None
    ) -> httpx.Response:
        _, headers = signed(secret or self.secrets.client, b"", **{"X-Client-Id": client_id})
        return await self.client.get(path, headers=headers)

    async def cancel(
        self, job_id: str, *, client_id: str = "flowbiz", secret: str | None = None, reason: str | None = None
    ) -> httpx.Response:
        raw, headers = signed(secret or self.secrets.client, {"client_id": client_id, "reason": reason})
        return await self.client.post(f"/v1/jobs/{job_id}/cancel", content=raw, headers=headers)

    async def result(self, job_id: str, **fields: Any) -> httpx.Response:
        body = {
            "job_id": job_id,
            "execution_id": "1001",
            "status": "success",
            "outputs": {"ok": True},
            "audit": [{"action": "scored", "node_name": "Score comments", "duration_ms": 4}],
            **fields,
        }
        raw, headers = signed(self.secrets.n8n, body)
        return await self.client.post("/v1/callbacks/n8n", content=raw, headers=headers)


@pytest.fixture
def start_bridge(
    make_settings: Callable[..., Settings], registry: Registry, secrets: Secrets
) -> Callable[..., Any]:
    """`async with start_bridge(workers=True, **settings) as h:` runs the app with its lifespan."""
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def start(
        *,
        workers: bool = True,
        registry_: Registry | None = None,
        real_callbacks: bool = False,
        dns: Dns | None = None,
        n8n: FakeN8n | None = None,
        operator_socket: Path | None = None,
        **overrides: Any,
    ) -> AsyncIterator[Harness]:
        """`real_callbacks`: callbacks go over real sockets through the bridge's own transport (the
        outbound policy, pinning, deadlines), to servers the test runs on 127.0.0.1. `n8n`: one n8n
        for several bridges (replicas), or one that already ran executions."""
        n8n, receiver, dns = n8n or FakeN8n(), Receiver(), dns or Dns()
        settings = make_settings(**overrides)
        migrate(settings.database_url)  # as `n8nctl up` does: a bridge never migrates as it starts
        app = create_app(
            settings,
            registry_ or registry,
            workers=workers,
            n8n_transport=httpx.MockTransport(n8n),
            callback_transport=None if real_callbacks else httpx.MockTransport(receiver),
            resolver=dns,
            operator_socket=operator_socket,
        )
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://bridge.test") as client:
                yield Harness(client, n8n, receiver, secrets, app, dns)

    return start
