"""Jobs through a real n8n: the bridge dispatches, n8n runs the template and signs its result, FlowBiz's
receiver verifies the callback with the standardwebhooks package. Everything runs on 127.0.0.1."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest

from tests.conftest import CALLBACK_KEYS
from tests.e2e.conftest import Stack
from tests.harness import Receiver, stays, wait_until

pytestmark = pytest.mark.n8n


def submit(stack: Stack, receiver: Receiver, workflow_key: str, inputs: dict[str, Any], **extra: Any) -> str:
    job_id = f"e2e-{workflow_key}-{uuid.uuid4().hex[:12]}"
    body = {
        "job_id": job_id,
        "client_id": stack.client.client_id,
        "workflow_key": workflow_key,
        "inputs": inputs,
        "callback_url": receiver.url,
        "metadata": {"user_id": "u-7"},
        **extra,
    }
    accepted = stack.client.submit(body)
    assert (accepted["job_id"], accepted["status"]) == (job_id, "pending")
    return job_id


def callback_of(receiver: Receiver, job_id: str, timeout: float = 60) -> dict[str, Any]:
    calls = wait_until(
        lambda: [body for _, body in receiver.calls if body["job_id"] == job_id],
        timeout,
        f"the callback of {job_id}",
    )
    assert len(calls) == 1, calls
    return calls[0]


def status_is(stack: Stack, job_id: str, status: str) -> Any:
    return wait_until(
        lambda: (job := stack.client.status(job_id))["status"] == status and job,
        60,
        f"{job_id} to be {status}",
    )


def execution_ended(stack: Stack, execution_id: str) -> dict[str, Any]:
    def ended() -> dict[str, Any] | None:
        execution = stack.execution(execution_id)
        return execution if execution["status"] not in ("new", "running", "waiting") else None

    return wait_until(ended, 30, f"n8n execution {execution_id} to end")


def test_up_again_changes_nothing_and_status_is_healthy(stack: Stack) -> None:
    again = stack.cli("up")
    assert again.returncode == 0, again.stderr
    assert "already up; nothing changed" in again.stdout
    report = stack.cli_json("status")
    assert report["kill_switch"] == {}
    rows = {row["service"]: row for row in report["services"]}
    assert rows["n8n"]["healthy"] and rows["n8n"]["version"] == stack.settings.n8n_version
    assert rows["bridge"]["healthy"] and rows["bridge"]["state"] == "RUNNING"
    listed = {row["workflow_key"]: row for row in stack.cli_json("workflows", "list")}
    assert set(listed) == {"tiktok_live_helper", "content_pipeline", "slow_echo"}
    assert all(row["active"] and row["n8n_id"] for row in listed.values())


def test_up_starts_a_stopped_service_again(stack: Stack) -> None:
    assert "stopped" in stack.supervisorctl("stop", "bridge")
    assert stack.cli("status").returncode == 1, "status must fail while the bridge is down"
    again = stack.cli("up")
    assert again.returncode == 0, again.stderr
    assert "started bridge (was STOPPED)" in again.stderr
    assert stack.cli("status").returncode == 0


def test_tiktok_live_helper_job_end_to_end(stack: Stack, receiver: Receiver) -> None:
    comments = [
        {"user": "ana", "text": "How much is the red one?"},
        {"user": "bo", "text": "love it"},
        {"user": "bo", "text": "LOVE   it"},
        {"user": "cy", "text": "\u200b  "},
    ]
    job_id = submit(stack, receiver, "tiktok_live_helper", {"stream_id": "live-9", "comments": comments})
    result = callback_of(receiver, job_id)

    assert set(result) == CALLBACK_KEYS
    assert (result["status"], result["error_code"], result["error_message"]) == ("success", None, None)
    outputs = result["outputs"]
    assert outputs["stream_id"] == "live-9"
    assert outputs["counts"]["received"] == 4
    assert (outputs["counts"]["usable"], outputs["counts"]["empty"], outputs["counts"]["duplicates"]) == (
        2,
        1,
        1,
    )
    assert outputs["top_comments"][0]["user"] == "ana"
    assert "price" in outputs["top_comments"][0]["intents"]

    execution_id = result["execution_id"]
    assert execution_id and stack.execution(execution_id)["workflowId"]
    assert stack.client.status(job_id)["execution_id"] == execution_id
    actions = [(entry["source"], entry["action"]) for entry in stack.audit(job_id)]
    for expected in [
        ("bridge", "accepted"),
        ("bridge", "dispatched"),
        ("n8n", "normalised"),
        ("n8n", "scored"),
    ]:
        assert expected in actions
    dispatched = next(e for e in stack.audit(job_id) if e["action"] == "dispatched")
    assert dispatched["details"]["execution_id"] == execution_id
    n8n_steps = [entry for entry in result["audit"] if entry["action"] in ("normalised", "scored")]
    assert [entry["node_name"] for entry in n8n_steps] == ["Normalise comments", "Score comments"]


def test_content_pipeline_job_end_to_end(stack: Stack, receiver: Receiver) -> None:
    plan = "- Teaser video\n- Behind the scenes\n- Launch day live"
    inputs = {"campaign": "Summer Sale", "plan": plan, "start_date": "2026-12-01", "channels": ["tiktok"]}
    job_id = submit(stack, receiver, "content_pipeline", inputs)
    result = callback_of(receiver, job_id)

    assert result["status"] == "success", result
    outputs = result["outputs"]
    assert (outputs["campaign"], outputs["post_count"], outputs["start_date"]) == (
        "Summer Sale",
        3,
        "2026-12-01",
    )
    assert [post["text"] for post in outputs["posts"]] == [
        "Teaser video",
        "Behind the scenes",
        "Launch day live",
    ]
    assert all(post["channel"] == "tiktok" and post["date"] >= "2026-12-01" for post in outputs["posts"])
    assert {"n8n"} <= {entry["source"] for entry in stack.audit(job_id)}


def test_failure_path_reports_the_workflows_error_code(stack: Stack, receiver: Receiver) -> None:
    blank = [{"user": "a", "text": "   "}, {"user": "b", "text": "\u2060"}]
    job_id = submit(stack, receiver, "tiktok_live_helper", {"stream_id": "live-0", "comments": blank})
    result = callback_of(receiver, job_id)
    # FlowBiz always gets an object: {} when the workflow had no outputs (CONTRACTS.md section 12)
    assert (result["status"], result["outputs"], result["error_code"]) == ("failed", {}, "NO_USABLE_COMMENTS")
    assert "live-0" in result["error_message"]
    job = stack.client.status(job_id)
    assert (job["status"], job["error_code"]) == ("failed", "NO_USABLE_COMMENTS")


def test_timeout_fails_the_job_and_stops_the_execution(stack: Stack, receiver: Receiver) -> None:
    job_id = submit(stack, receiver, "slow_echo", {"seconds": 60}, timeout_seconds=2)
    result = callback_of(receiver, job_id, timeout=20)
    assert (result["status"], result["error_code"]) == ("failed", "TIMEOUT")
    execution_id = stack.client.status(job_id)["execution_id"]
    assert execution_id, "the job was dispatched before its deadline"
    assert execution_ended(stack, execution_id)["status"] == "canceled"
    wait_until(
        lambda: "execution_stopped" in [e["action"] for e in stack.audit(job_id)], 15, "the stop audited"
    )
    assert [body["job_id"] for _, body in receiver.calls] == [job_id]


def test_late_result_after_timeout_is_recorded_not_delivered(stack: Stack, receiver: Receiver) -> None:
    """When n8n cannot be told to stop (here: its API key file is gone), the result arrives late."""
    key_file = stack.settings.api_key_file
    hidden = key_file.with_name("n8n-api-key.hidden")
    key_file.rename(hidden)
    try:
        job_id = submit(stack, receiver, "slow_echo", {"seconds": 4}, timeout_seconds=2)
        result = callback_of(receiver, job_id, timeout=20)
        assert (result["status"], result["error_code"]) == ("failed", "TIMEOUT")
        late = wait_until(
            lambda: [e for e in stack.audit(job_id) if e["action"] == "late_result"], 30, "the late result"
        )
    finally:
        hidden.rename(key_file)
    assert late[0]["details"]["reported_status"] == "success"
    assert "execution_stop_failed" in [e["action"] for e in stack.audit(job_id)]
    assert stack.client.status(job_id)["status"] == "failed"
    stays(lambda: len(receiver.calls) == 1, 1.0, "exactly one callback (the TIMEOUT)")


def test_cancel_stops_the_running_execution(stack: Stack, receiver: Receiver) -> None:
    job_id = submit(stack, receiver, "slow_echo", {"seconds": 60}, timeout_seconds=120)
    execution_id = status_is(stack, job_id, "running")["execution_id"]
    assert execution_id
    cancelled = stack.client.cancel(job_id, "e2e: not needed")
    assert cancelled["status"] == "cancelled"
    assert execution_ended(stack, execution_id)["status"] == "canceled"
    wait_until(
        lambda: "execution_stopped" in [e["action"] for e in stack.audit(job_id)], 15, "the stop audited"
    )
    stays(lambda: not receiver.calls, 1.0, "no callback for a cancelled job")


def test_n8n_down_jobs_are_accepted_fast_and_run_once_it_is_back(stack: Stack, receiver: Receiver) -> None:
    assert "stopped" in stack.supervisorctl("stop", "n8n")
    try:
        started = time.perf_counter()
        job_id = submit(
            stack,
            receiver,
            "tiktok_live_helper",
            {"stream_id": "s", "comments": [{"user": "a", "text": "hi"}]},
        )
        accepted_ms = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        health = httpx.get(f"{stack.settings.bridge_url}/healthz", timeout=1)
        health_ms = (time.perf_counter() - started) * 1000
        assert health.status_code == 200
        assert accepted_ms < 100 and health_ms < 100, (accepted_ms, health_ms)
        ready = httpx.get(f"{stack.settings.bridge_url}/readyz", timeout=1).json()
        assert ready["n8n"] is False
        wait_until(
            lambda: "dispatch_failed" in [e["action"] for e in stack.audit(job_id)], 15, "a failed dispatch"
        )
        assert stack.client.status(job_id)["status"] == "pending"
    finally:
        assert "started" in stack.supervisorctl("start", "n8n")
        # whatever failed above, the next test finds n8n's API serving again (it answers 404 for a
        # while after the start)
        wait_until(lambda: n8n_api_answers(stack), 120, "n8n's public API back")
    result = callback_of(receiver, job_id, timeout=120)
    assert result["status"] == "success"


def n8n_api_answers(stack: Stack) -> bool:
    try:
        response = httpx.get(
            f"{stack.settings.n8n_url}/api/v1/workflows",
            headers={"X-N8N-API-KEY": stack.settings.n8n_api_key_value()},
            timeout=5,
        )
    except httpx.HTTPError:
        return False
    return response.status_code == 200


def test_import_twice_is_unchanged_and_export_is_byte_identical(stack: Stack, tmp_path: Any) -> None:
    outcomes = stack.cli_json("workflows", "import")
    assert {row["workflow_key"]: (row["result"], row["activation"]) for row in outcomes} == {
        key: ("unchanged", "unchanged") for key in ("tiktok_live_helper", "content_pipeline", "slow_echo")
    }
    templates = stack.project / "workflows" / "templates"
    before = {path.name: path.read_bytes() for path in templates.glob("*.json")}
    exported = stack.cli("workflows", "export")
    assert exported.returncode == 0, exported.stderr
    assert {path.name: path.read_bytes() for path in templates.glob("*.json")} == before
    assert stack.cli("workflows", "diff").returncode == 0
