"""Schemathesis over the bridge's own OpenAPI: generated requests to every operation, unsigned and
validly signed, never get a 5xx. The app runs on uvicorn in a thread with its lifespan (so the intake
loop commits accepted jobs); n8n and FlowBiz's callbacks are stand-ins that answer 503."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.core import NOT_SET

from n8nctl.bridge.app import create_app
from n8nctl.registry import load_registry
from n8nctl.settings import Settings
from n8nctl.signing import generate_secret, sign_headers
from tests.bridge.conftest import migrate
from tests.conftest import PROJECT
from tests.harness import ServerThread, free_port

SECRET = generate_secret()
N8N_SECRET = generate_secret()


def _app(database: Path) -> FastAPI:
    values = {
        "n8nctl_project_dir": PROJECT,
        "bridge_database_url": f"sqlite:///{database}",
        "bridge_client_secrets": f"flowbiz:{SECRET}",
        "bridge_callback_signing_secret": generate_secret(),
        "bridge_n8n_callback_secret": N8N_SECRET,
        "bridge_n8n_webhook_token": "token",
        "bridge_rate_limit": "1000000/second",
        "n8n_base_url": "http://n8n.invalid",
    }
    refuse = httpx.MockTransport(lambda request: httpx.Response(503))
    return create_app(
        Settings(_env_file=None, **values),  # type: ignore[call-arg]
        load_registry(PROJECT / "workflows" / "registry.json"),
        n8n_transport=refuse,
        callback_transport=refuse,
    )


schema = schemathesis.openapi.from_dict(_app(Path("/nonexistent/never-opened.db")).openapi())
FUZZ = settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    database = tmp_path_factory.mktemp("fuzz") / "bridge.db"
    migrate(f"sqlite:///{database}")
    server = ServerThread(_app(database), free_port(), lifespan="on")
    server.start()
    with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=10) as client:
        yield client
    server.stop()


def _send(client: httpx.Client, case: schemathesis.Case, *, secret: str | None) -> httpx.Response:
    if case.body is NOT_SET:
        raw = b""
    else:
        raw = case.body if isinstance(case.body, bytes) else json.dumps(case.body).encode()
    headers = {key: str(value) for key, value in (case.headers or {}).items()}
    if secret:
        headers |= {**sign_headers(secret, raw), "X-Client-Id": "flowbiz", "content-type": "application/json"}
    return client.request(case.method, case.formatted_path, params=case.query, content=raw, headers=headers)


@schema.parametrize()
@FUZZ
def test_unsigned_requests_never_get_a_5xx(case: schemathesis.Case, client: httpx.Client) -> None:
    response = _send(client, case, secret=None)
    assert response.status_code < 500, (case.method, case.formatted_path, response.text)


@schema.parametrize()
@FUZZ
def test_signed_requests_never_get_a_5xx(case: schemathesis.Case, client: httpx.Client) -> None:
    secret = N8N_SECRET if case.formatted_path == "/v1/callbacks/n8n" else SECRET
    if isinstance(case.body, dict) and "client_id" in case.body:  # past CLIENT_MISMATCH, deeper in
        case.body["client_id"] = "flowbiz"
    response = _send(client, case, secret=secret)
    assert response.status_code < 500, (case.method, case.formatted_path, response.text)
