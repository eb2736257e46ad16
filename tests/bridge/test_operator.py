"""The operator socket (ADR 62): `n8nctl kill` turns a switch on through the running bridge."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from n8nctl.bridge.operator import ask_kill
from tests.conftest import job_body


@pytest.fixture
def path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # short: a socket's path has at most 107 bytes, and pytest's tmp_path can be longer
    return Path(tmp_path_factory.mktemp("op", numbered=True)) / "bridge.sock"


async def kill(path: Path, key: str | None, **fields: str) -> bool:
    return await asyncio.to_thread(
        ask_kill, path, key, reason=fields.get("reason", "INC-7"), actor=fields.get("actor", "ops")
    )


async def test_a_kill_through_the_socket_is_stored_audited_and_rejects_the_next_job_at_once(
    start_bridge, path
):
    async with start_bridge(workers=False, operator_socket=path) as h:
        assert (await h.submit(job_body())).status_code == 202  # the switch state is cached now
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert await kill(path, "tiktok_live_helper", reason="INC-7: duplicates", actor="ana")
        # no wait: the bridge re-read its view before answering
        refused = await h.submit(job_body())
        assert (refused.status_code, refused.json()["error_code"]) == (423, "WORKFLOW_KILLED")
        store = h.app.state.bridge.store
        switch = store.switch_states()["tiktok_live_helper"]
        assert (switch["killed"], switch["reason"], switch["actor"]) == (True, "INC-7: duplicates", "ana")
        since = datetime.now(UTC) - timedelta(minutes=1)
        events = [e for e in store.audit_since(since) if e["action"] == "killed"]
        assert [(e["workflow_key"], e["actor"], e["source"]) for e in events] == [
            ("tiktok_live_helper", "ana", "operator")
        ]
    assert not path.exists()  # removed when the bridge stops


async def test_kill_all_through_the_socket_is_503_for_every_workflow(start_bridge, path):
    async with start_bridge(workers=False, operator_socket=path) as h:
        assert await kill(path, None)
        refused = await h.submit(
            job_body(workflow_key="content_pipeline", inputs={"campaign": "c", "plan": "p"})
        )
        assert (refused.status_code, refused.json()["error_code"]) == (503, "N8N_KILLED")


async def test_an_unknown_workflow_or_a_malformed_request_changes_nothing(start_bridge, path):
    async with start_bridge(workers=False, operator_socket=path) as h:
        assert not await kill(path, "no_such_workflow")

        def raw(line: bytes) -> dict[str, object]:
            with socket.socket(socket.AF_UNIX) as conn:
                conn.connect(str(path))
                conn.sendall(line)
                return json.loads(conn.makefile("rb").readline())

        assert await asyncio.to_thread(raw, b'{"kill": 5, "reason": "r", "actor": "a"}\n') == {
            "ok": False,
            "error": "malformed request",
        }
        assert (await asyncio.to_thread(raw, b"not json\n"))["ok"] is False
        assert h.app.state.bridge.store.switch_states() == {}
        assert (await h.submit(job_body())).status_code == 202


async def test_no_bridge_listening_is_false_at_once(path):
    assert not await kill(path, "tiktok_live_helper")  # no file
    with socket.socket(socket.AF_UNIX) as left:  # a socket file nobody listens on
        left.bind(str(path))
    assert not await kill(path, "tiktok_live_helper")


async def test_a_stale_socket_is_replaced_and_a_live_one_is_left_to_its_bridge(start_bridge, path):
    with socket.socket(socket.AF_UNIX) as left:  # left by a bridge that died
        left.bind(str(path))
    async with start_bridge(workers=False, operator_socket=path) as first:
        assert await kill(path, "tiktok_live_helper")
        async with start_bridge(workers=False, operator_socket=path):
            pass  # a second replica on this host: it does not take the socket, nor remove it
        assert await kill(path, "content_pipeline")
        assert set(first.app.state.bridge.store.switch_states()) == {"tiktok_live_helper", "content_pipeline"}


async def test_a_path_too_long_for_a_socket_is_logged_and_skipped(start_bridge, tmp_path, caplog):
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    with caplog.at_level(logging.WARNING, logger="n8nctl.bridge"):
        async with start_bridge(workers=False, operator_socket=deep / "bridge.sock") as h:
            assert (await h.submit(job_body())).status_code == 202
    assert not (deep / "bridge.sock").exists()
    assert "longer than 107 bytes" in caplog.text
