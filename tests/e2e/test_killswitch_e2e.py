"""The kill-switch against a real n8n and a real bridge: `n8nctl kill` / `revive`, one workflow or all."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from n8nctl.adapters.bridge_client import BridgeClient
from n8nctl.errors import RemoteError
from tests.e2e.conftest import Stack
from tests.e2e.test_n8n_e2e import callback_of, submit
from tests.harness import Receiver, wait_until

pytestmark = pytest.mark.n8n


class Submitter:
    """Submits slow_echo jobs back to back from a thread, as FlowBiz under load; records each answer."""

    def __init__(self, stack: Stack, receiver: Receiver) -> None:
        secret = stack.env["N8NCTL_CLIENT_SECRET"]
        self.client = BridgeClient(stack.settings.bridge_url, stack.client.client_id, secret)
        self.receiver = receiver
        self.answers: list[tuple[float, str, str]] = []  # (sent at, job_id, "accepted" | error_code)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            job_id = f"load-{uuid.uuid4().hex[:12]}"
            body = {
                "job_id": job_id,
                "client_id": self.client.client_id,
                "workflow_key": "slow_echo",
                "inputs": {"seconds": 30},
                "timeout_seconds": 90,
                "callback_url": self.receiver.url,
            }
            sent = time.monotonic()
            try:
                self.client.submit(body)
                self.answers.append((sent, job_id, "accepted"))
            except RemoteError as exc:
                self.answers.append((sent, job_id, exc.error_code))
            time.sleep(0.02)  # pacing of the load, not synchronisation

    def __enter__(self) -> Submitter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def accepted(self) -> list[str]:
        return [job_id for _, job_id, answer in self.answers if answer == "accepted"]


@pytest.fixture
def revived(stack: Stack) -> Iterator[None]:
    """Whatever a test kills is revived afterwards, so the next test finds a working stack."""
    yield
    for target in ("--all", "slow_echo"):
        stack.cli("revive", target, timeout=300)


def executions_of(stack: Stack, key: str) -> list[dict[str, Any]]:
    workflow_id = next(
        row["n8n_id"] for row in stack.cli_json("workflows", "list") if row["workflow_key"] == key
    )
    response = httpx.get(
        f"{stack.settings.n8n_url}/api/v1/executions",
        params={"workflowId": workflow_id, "limit": 250},
        headers={"X-N8N-API-KEY": stack.settings.n8n_api_key_value()},
        timeout=10,
    )
    return list(response.raise_for_status().json()["data"])


def test_kill_one_workflow_under_load(stack: Stack, receiver: Receiver, revived: None) -> None:
    with Submitter(stack, receiver) as load:
        wait_until(lambda: len(load.accepted()) >= 8, 30, f"a backlog of slow_echo jobs: {load.answers[:3]}")
        invoked = time.monotonic()
        killed = stack.cli("kill", "slow_echo", "--reason", "e2e: runaway", "--actor", "e2e-responder")
        returned, returned_at = time.monotonic(), datetime.now(UTC)
        wait_until(lambda: any(answer != "accepted" for _, _, answer in load.answers[-3:]), 10, "rejections")
    assert killed.returncode == 0, killed.stdout + killed.stderr
    assert killed.stdout.count("[ok  ]") == 4, killed.stdout
    assert "stored by the bridge through its operator socket" in killed.stdout  # ADR 62

    rejected = [(sent, answer) for sent, _, answer in load.answers if answer != "accepted"]
    assert {answer for _, answer in rejected} == {"WORKFLOW_KILLED"}
    first_rejected = min(sent for sent, _ in rejected)
    print(
        f"kill: first rejected job {first_rejected - invoked:.3f} s after invoking n8nctl kill; "
        f"the command took {returned - invoked:.3f} s"
    )
    assert all(answer != "accepted" for sent, _, answer in load.answers if sent > returned)

    # No execution of the killed workflow started after `kill` returned, and its webhook is gone.
    late = [
        e for e in executions_of(stack, "slow_echo") if datetime.fromisoformat(e["startedAt"]) > returned_at
    ]
    assert late == []
    token = stack.settings.bridge_n8n_webhook_token.get_secret_value()
    direct = httpx.post(
        f"{stack.settings.n8n_url}/webhook/flowbiz/test-slow-echo",
        headers={stack.settings.bridge_n8n_webhook_header: token},
        json={"job_id": "direct", "inputs": {"seconds": 0}},
        timeout=10,
    )
    assert direct.status_code == 404
    # n8n was running (waiting) executions of it; they are all stopped.
    assert all(e["status"] not in ("new", "running", "waiting") for e in executions_of(stack, "slow_echo"))

    # Every accepted job of it ends failed/WORKFLOW_KILLED, and FlowBiz gets that callback.
    for job_id in load.accepted():
        result = callback_of(receiver, job_id, timeout=30)
        assert (result["status"], result["error_code"]) == ("failed", "WORKFLOW_KILLED")

    # Other workflows keep running.
    other = submit(
        stack, receiver, "tiktok_live_helper", {"stream_id": "s", "comments": [{"user": "a", "text": "hi"}]}
    )
    assert callback_of(receiver, other)["status"] == "success"

    switch = stack.cli_json("status")["kill_switch"]
    assert list(switch) == ["slow_echo"]
    assert (switch["slow_echo"]["actor"], switch["slow_echo"]["reason"]) == ("e2e-responder", "e2e: runaway")
    meta = httpx.get(f"{stack.settings.bridge_url}/v1/meta", timeout=5).json()
    assert {w["workflow_key"]: w["killed"] for w in meta["workflows"]} == {
        "tiktok_live_helper": False,
        "content_pipeline": False,
        "slow_echo": True,
    }
    since = (returned_at - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S")
    exported = stack.cli("audit", "export", "--since", since)
    events = [json.loads(line) for line in exported.stdout.splitlines()]
    kill_events = [
        e for e in events if e["action"] in ("killed", "kill_completed") and e["workflow_key"] == "slow_echo"
    ]
    assert [e["actor"] for e in kill_events] == ["e2e-responder", "e2e-responder"]
    assert kill_events[0]["details"]["reason"] == "e2e: runaway"


def test_revive_restores_bridge_and_n8n(stack: Stack, receiver: Receiver, revived: None) -> None:
    assert stack.cli("kill", "slow_echo", "--reason", "e2e").returncode == 0
    revived_ = stack.cli("revive", "slow_echo")
    assert revived_.returncode == 0, revived_.stdout + revived_.stderr
    listed = {row["workflow_key"]: row for row in stack.cli_json("workflows", "list")}
    assert listed["slow_echo"]["active"]
    job_id = submit(stack, receiver, "slow_echo", {"seconds": 0}, timeout_seconds=60)
    assert callback_of(receiver, job_id)["status"] == "success"


def test_kill_all_stops_n8n_and_the_bridge_answers_503_fast(
    stack: Stack, receiver: Receiver, revived: None
) -> None:
    killed = stack.cli("kill", "--all", "--reason", "e2e: incident")
    assert killed.returncode == 0, killed.stdout + killed.stderr
    assert "stored by the bridge through its operator socket" in killed.stdout
    assert "RUNNING" not in stack.supervisorctl("status", "n8n")
    status = stack.cli("status")
    assert status.returncode == 1, "status reports n8n down"
    assert "kill-switch: ALL workflows killed" in status.stdout

    started = time.perf_counter()
    with pytest.raises(RemoteError) as refused:
        submit(
            stack,
            receiver,
            "tiktok_live_helper",
            {"stream_id": "s", "comments": [{"user": "a", "text": "hi"}]},
        )
    elapsed_ms = (time.perf_counter() - started) * 1000
    assert (refused.value.status, refused.value.error_code) == (503, "N8N_KILLED")
    assert elapsed_ms < 100, elapsed_ms
    assert httpx.get(f"{stack.settings.bridge_url}/healthz", timeout=1).status_code == 200
    assert httpx.get(f"{stack.settings.bridge_url}/v1/meta", timeout=1).json()["killed_all"] is True

    revived_ = stack.cli("revive", "--all", timeout=300)
    assert revived_.returncode == 0, revived_.stdout + revived_.stderr
    job_id = submit(
        stack, receiver, "tiktok_live_helper", {"stream_id": "s", "comments": [{"user": "a", "text": "hi"}]}
    )
    assert callback_of(receiver, job_id)["status"] == "success"


def test_kill_with_n8n_unreachable_still_stops_the_bridge_and_says_what_failed(
    stack: Stack, receiver: Receiver, revived: None
) -> None:
    assert "stopped" in stack.supervisorctl("stop", "n8n")
    try:
        killed = stack.cli("kill", "slow_echo", "--reason", "e2e: n8n down")
        assert killed.returncode == 1
        assert "[ok  ] bridge rejects new jobs" in killed.stdout
        assert "[FAIL] n8n workflow deactivated" in killed.stdout
        assert "steps failed" in killed.stderr and "run the same command again" in killed.stderr
        with pytest.raises(RemoteError) as refused:
            submit(stack, receiver, "slow_echo", {"seconds": 0}, timeout_seconds=60)
        assert refused.value.error_code == "WORKFLOW_KILLED"
    finally:
        stack.supervisorctl("start", "n8n")
