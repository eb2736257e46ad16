"""The bridge as real processes: `n8nctl bridge serve`, a fake n8n over HTTP, a FlowBiz receiver that
verifies with the official standardwebhooks package, and the `n8nctl` CLI as FlowBiz's client."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from n8nctl.adapters.bridge_client import BridgeClient
from n8nctl.errors import UnreachableError
from tests.conftest import CALLBACK_KEYS
from tests.harness import Receiver, Service, bridge_service, free_port, stays, wait_until
from tests.process.conftest import Cli, FakeN8n, Keys

pytestmark = pytest.mark.process

AUDIT_KEYS = {"timestamp", "action", "node_name", "details", "duration_ms"}
COMMENTS = [{"user": "ana", "text": "hello"}, {"user": "bo", "text": "price?"}]


def submit(cli: Cli, receiver: Receiver, *, stream_id: str = "live-1") -> str:
    """Submit a tiktok_live_helper job with the CLI; returns its job_id."""
    job_id = f"job-{uuid.uuid4()}"
    inputs = json.dumps({"stream_id": stream_id, "comments": COMMENTS})
    options = ["--inputs", inputs, "--metadata", '{"user_id": "u-42"}', "--job-id", job_id]
    result = cli("jobs", "submit", "tiktok_live_helper", *options, "--callback-url", receiver.url, "--json")
    assert result.returncode == 0, result.stderr
    accepted = json.loads(result.stdout)
    assert (accepted["job_id"], accepted["status"]) == (job_id, "pending")
    return job_id


def status(cli: Cli, job_id: str) -> Any:
    result = cli("jobs", "status", job_id, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def delivered(cli: Cli, job_id: str) -> dict[str, Any]:
    """Wait until the bridge records the callback as delivered (after which it never sends it again)."""
    return wait_until(
        lambda: (s := status(cli, job_id))["callback"] and s["callback"]["state"] == "delivered" and s,
        15,
        f"callback of {job_id} to be delivered",
    )


def the_one_callback(receiver: Receiver, cli: Cli, job_id: str) -> tuple[str, dict[str, Any]]:
    """The single verified callback of `job_id`, once the bridge has finished delivering it."""
    wait_until(lambda: receiver.calls, 15, f"a callback for {job_id}")
    delivered(cli, job_id)
    assert receiver.rejected == [], "callbacks failed standardwebhooks verification"
    assert len(receiver.calls) == 1, receiver.calls
    webhook_id, body = receiver.calls[0]
    assert set(body) == CALLBACK_KEYS
    assert body["job_id"] == job_id
    for entry in body["audit"]:
        assert set(entry) == AUDIT_KEYS, entry
    return webhook_id, body


def test_submitted_job_is_delivered_once_with_the_full_contract(
    cli: Cli, bridge: Service, fake_n8n: FakeN8n, receiver: Receiver
) -> None:
    job_id = submit(cli, receiver)

    webhook_id, body = the_one_callback(receiver, cli, job_id)
    n8n = fake_n8n.job(job_id)
    result = n8n["result"]
    assert n8n["triggers"] == 1
    assert body["status"] == "success"
    assert body["outputs"] == {"stream_id": "live-1", "comment_count": 2}
    assert (body["error_code"], body["error_message"]) == (None, None)
    assert body["execution_id"] == n8n["execution_id"]
    for moment in ("started_at", "completed_at"):
        assert datetime.fromisoformat(body[moment]) == datetime.fromisoformat(result[moment])
    steps = [(entry["action"], entry["node_name"]) for entry in body["audit"]]
    for step in [("accepted", "bridge"), ("dispatched", "bridge"), ("received", "Webhook")]:
        assert step in steps
    scored = next(entry for entry in body["audit"] if entry["action"] == "scored")
    assert scored["node_name"] == "Score comments"
    assert (scored["details"], scored["duration_ms"]) == ({"count": 2}, 7)

    callback = status(cli, job_id)["callback"]
    assert (callback["state"], callback["webhook_id"], callback["attempts"]) == ("delivered", webhook_id, 1)
    shown = cli("audit", "show", job_id, "--json")
    assert shown.returncode == 0, shown.stderr
    audit = json.loads(shown.stdout)
    assert audit["execution_id"] == n8n["execution_id"]
    assert (audit["status"], audit["user_id"]) == ("success", "u-42")
    assert "callback_delivered" in [event["action"] for event in audit["events"]]


def test_callback_waits_for_a_receiver_that_is_down(cli: Cli, bridge: Service, receiver: Receiver) -> None:
    receiver.stop()
    job_id = submit(cli, receiver)

    failing = wait_until(
        lambda: (c := status(cli, job_id)["callback"]) and c["attempts"] >= 2 and c,
        15,
        "two failed delivery attempts",
    )
    assert failing["state"] == "pending"
    assert failing["last_error"] and failing["delivered_at"] is None
    receiver.start()

    webhook_id, body = the_one_callback(receiver, cli, job_id)
    assert body["status"] == "success"
    stays(lambda: len(receiver.calls) == 1, 1.5, "exactly one callback")
    assert webhook_id == failing["webhook_id"], "webhook-id changed between retries"


def test_job_accepted_before_a_sigkill_completes_after_restart(
    cli: Cli, bridge: Service, fake_n8n: FakeN8n, receiver: Receiver
) -> None:
    job_id = submit(cli, receiver, stream_id="hold-1")  # n8n keeps the result until released
    running = wait_until(
        lambda: (s := status(cli, job_id))["status"] == "running" and s, 10, "the job to run in n8n"
    )
    bridge.kill()
    bridge.start()

    reply = fake_n8n.release(job_id)
    assert reply == {"status_code": 200, "body": {"job_id": job_id, "recorded": "finished"}}
    _, body = the_one_callback(receiver, cli, job_id)
    assert (body["status"], body["execution_id"]) == ("success", running["execution_id"])
    assert fake_n8n.job(job_id)["triggers"] == 1, "the restarted bridge dispatched the job again"


def test_pending_callback_survives_a_sigkill(cli: Cli, bridge: Service, receiver: Receiver) -> None:
    receiver.stop()
    job_id = submit(cli, receiver)
    failing = wait_until(
        lambda: (c := status(cli, job_id)["callback"]) and c["attempts"] >= 1 and c, 15, "a failed delivery"
    )
    bridge.kill()
    receiver.start()
    bridge.start()

    webhook_id, _ = the_one_callback(receiver, cli, job_id)
    assert webhook_id == failing["webhook_id"]


def test_failed_workflow_reaches_flowbiz_as_failed(cli: Cli, bridge: Service, receiver: Receiver) -> None:
    job_id = submit(cli, receiver, stream_id="reject-1")

    _, body = the_one_callback(receiver, cli, job_id)
    assert (body["status"], body["error_code"]) == ("failed", "INPUT_REJECTED")
    assert body["error_message"] == "stream is not live"
    assert body["outputs"] == {}
    assert status(cli, job_id)["status"] == "failed"


def test_cli_reports_a_refused_submission_on_one_line(cli: Cli, bridge: Service) -> None:
    result = cli("jobs", "submit", "no_such_workflow", "--callback-url", "http://127.0.0.1:9/cb")

    assert result.returncode == 6, result.stderr
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert "UNKNOWN_WORKFLOW" in result.stderr


def test_cli_reports_an_unreachable_bridge(cli: Cli) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    args = ["jobs", "submit", "tiktok_live_helper", "--callback-url", "http://127.0.0.1:9/cb"]
    result = cli(*args, N8NCTL_BRIDGE_URL=closed)

    assert result.returncode == 5, result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert closed in result.stderr


def test_sigkill_mid_burst_loses_no_accepted_job(
    env: dict[str, str], project: Path, keys: Keys, fake_n8n: FakeN8n, receiver: Receiver
) -> None:
    """Four clients submit back to back; the bridge is SIGKILLed mid-burst and restarted. Every job
    answered 202 completes and reaches FlowBiz; a job whose answer was lost in the crash is resubmitted
    with the same job_id (what FlowBiz does) and completes too. Callbacks of one job share one
    webhook-id (delivery is at least once across a crash; FlowBiz drops duplicates by webhook-id)."""
    port = int(env["BRIDGE_PUBLIC_URL"].rsplit(":", 1)[1])
    bridge = bridge_service({**env, "BRIDGE_RATE_LIMIT": "100000/minute"}, project, port)
    bridge.start()
    client = BridgeClient(env["BRIDGE_PUBLIC_URL"], "flowbiz", keys.client)
    accepted: list[str] = []
    unknown: list[dict[str, Any]] = []
    crashed = threading.Event()

    def body(job_id: str) -> dict[str, Any]:
        inputs = {"stream_id": "burst", "comments": COMMENTS}
        return {
            "job_id": job_id,
            "client_id": "flowbiz",
            "workflow_key": "tiktok_live_helper",
            "inputs": inputs,
            "callback_url": receiver.url,
        }

    def load() -> None:
        while not crashed.is_set():
            job = body(f"burst-{uuid.uuid4().hex[:12]}")
            try:
                client.submit(job)
                accepted.append(job["job_id"])
            except UnreachableError:
                unknown.append(job)  # the bridge died while answering: stored or not, nobody knows

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: len(accepted) >= 150, 30, "150 accepted jobs")
        bridge.kill()
    finally:
        crashed.set()
        for thread in threads:
            thread.join(timeout=30)
    bridge.start()
    try:
        for job in unknown:
            client.submit(job)  # 202 if the crash lost it, 200 (the stored job) if it was committed
        expected = set(accepted) | {job["job_id"] for job in unknown}

        def delivered() -> bool:
            return expected <= {body["job_id"] for _, body in receiver.calls}

        try:
            wait_until(delivered, 120, f"callbacks of all {len(expected)} jobs")
        except AssertionError:
            missing = sorted(expected - {body["job_id"] for _, body in receiver.calls})
            states = [(job_id, client.status(job_id)) for job_id in missing[:5]]
            raise AssertionError(
                f"{len(missing)} jobs without a callback, e.g. {states}\n{bridge.output()[-3000:]}"
            ) from None
        ids: dict[str, set[str]] = {}
        for webhook_id, body_ in receiver.calls:
            assert body_["status"] == "success", body_
            ids.setdefault(body_["job_id"], set()).add(webhook_id)
        assert all(len(webhook_ids) == 1 for webhook_ids in ids.values())
        print(f"burst: {len(accepted)} accepted before SIGKILL, {len(unknown)} answers lost and resubmitted")
    finally:
        bridge.stop()
