"""Shared fixtures: settings on a temporary SQLite store, signing helpers, poll-with-deadline, and a
real PostgreSQL server for the `postgres`-marked tier (tests/pg.py)."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from n8nctl.registry import Registry, load_registry
from n8nctl.settings import Settings
from n8nctl.signing import generate_secret, sign_headers
from n8nctl.store import NewJob
from tests.harness import system_tool
from tests.pg import SKIP_ENV, PostgresServer, find_bin_dir
from tests.redis_server import RedisServer

PROJECT = Path(__file__).resolve().parent.parent
# The nine fields of FlowBiz's callback body (docs/CONTRACTS.md section 12)
CALLBACK_KEYS = frozenset(
    {
        "job_id",
        "status",
        "outputs",
        "error_code",
        "error_message",
        "audit",
        "started_at",
        "completed_at",
        "execution_id",
    }
)


class Secrets:
    def __init__(self) -> None:
        self.client = generate_secret()
        self.other = generate_secret()
        self.callback = generate_secret()
        self.n8n = generate_secret()
        self.token = "test-webhook-token"


@pytest.fixture
def secrets() -> Secrets:
    return Secrets()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL for the session, started on first use. Without its binaries the tests that
    need it FAIL with one line; only N8NCTL_TEST_SKIP_POSTGRES=1 turns that into a skip."""
    bin_dir = find_bin_dir()
    if bin_dir is None or not (bin_dir / "pg_ctl").exists():
        reason = (
            "NO POSTGRESQL: initdb/pg_ctl not found (apt-get install postgresql-15, or N8NCTL_TEST_PG_BIN)"
        )
        if os.environ.get(SKIP_ENV) == "1":
            pytest.skip(f"{reason}; skipped because {SKIP_ENV}=1")
        pytest.fail(reason, pytrace=False)
    server = PostgresServer.start(bin_dir)
    yield server
    server.stop()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A real redis-server of the test's own, with a password (BRIDGE_REDIS_URL carries it)."""
    binary = system_tool("redis-server", installed_by="scripts/test installs Debian's redis-server")
    server = RedisServer(binary, tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A fresh, empty database on the session's server."""
    return postgres_server.create_database()


@pytest.fixture
def bridge_database_url(tmp_path: Path) -> str:
    """The store behind `make_settings`; tests/postgres overrides it with a PostgreSQL database."""
    return f"sqlite:///{tmp_path / 'bridge.db'}"


@pytest.fixture
def make_settings(bridge_database_url: str, secrets: Secrets) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "n8nctl_project_dir": PROJECT,
            "bridge_database_url": bridge_database_url,
            "bridge_client_secrets": f"flowbiz:{secrets.client},other:{secrets.other}",
            "bridge_callback_signing_secret": secrets.callback,
            "bridge_n8n_callback_secret": secrets.n8n,
            "bridge_n8n_webhook_token": secrets.token,
            "bridge_poll_interval_seconds": 0.05,
            "bridge_callback_retry_schedule": "0,0.2,0.2,0.2",
            "n8n_base_url": "http://n8n.test",
            "n8n_api_key": "test-api-key",
            "bridge_environment": "development",  # callbacks to the tests' receivers on loopback
            **overrides,
        }
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    return make


@pytest.fixture
def registry() -> Registry:
    return load_registry(PROJECT / "workflows" / "registry.json")


def job_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "job_id": f"job-{time.monotonic_ns()}",
        "client_id": "flowbiz",
        "workflow_key": "tiktok_live_helper",
        "inputs": {"stream_id": "live-1", "comments": [{"user": "ana", "text": "hello"}]},
        "callback_url": "http://127.0.0.1:9/callbacks",
        "metadata": {"user_id": "u-42"},
    }
    body.update(overrides)
    return body


def new_job(
    job_id: str,
    *,
    workflow_key: str = "content_pipeline",
    priority: int = 5,
    offset: float = 0,
    timeout: int = 300,
) -> NewJob:
    """A job for the store itself, accepted `offset` seconds from now (negative: in the past)."""
    now = datetime.now(UTC) + timedelta(seconds=offset)
    return NewJob(
        {
            "job_id": job_id,
            "client_id": "flowbiz",
            "workflow_key": workflow_key,
            "priority": priority,
            "timeout_seconds": timeout,
            "inputs": {},
            "callback_url": "https://x/cb",
            "metadata": {},
            "user_id": None,
            "request_hash": "h",
            "retention_days": 90,
            "accepted_at": now,
            "deadline_at": now + timedelta(seconds=timeout),
        }
    )


def signed(secret: str, body: Any, **extra: str) -> tuple[bytes, dict[str, str]]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return raw, {**sign_headers(secret, raw), "content-type": "application/json", **extra}


async def eventually(predicate: Callable[[], Any], *, timeout: float = 5.0, what: str = "condition") -> Any:
    """Poll `predicate` until it returns something truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)


async def holds(predicate: Callable[[], Any], *, duration: float, what: str) -> None:
    """Check that `predicate` stays true for `duration` seconds while the event loop runs (so the
    bridge's workers could break it): the absence of a further event, not a wait for one."""
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline:
        assert predicate(), f"{what} stopped holding"
        await asyncio.sleep(0.02)
