"""Reconciliation against a real n8n in queue mode (ADR 51): an n8n worker killed in the middle of an
execution, and the bridge down while n8n posts a result. A job whose result is lost fails with
RESULT_LOST through n8n's executions API, long before its deadline, and FlowBiz gets the callback;
a result n8n posts again once the bridge is back is accepted.

The stack reconciles 5 s past the expected duration (BRIDGE_RECONCILE_GRACE_SECONDS, conftest); jobs
get a 600 s deadline, so a job that fails TIMEOUT instead of RESULT_LOST cannot pass."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.e2e.conftest import Stack, receiving
from tests.e2e.test_n8n_e2e import callback_of, status_is, submit
from tests.e2e.test_queue_e2e import ran_on, rows
from tests.harness import ServerThread, wait_until

pytestmark = pytest.mark.n8n

DEADLINE = 600  # timeout_seconds of every job here
# n8n 2.40.7 ends a dead worker's execution in one of two ways: the worker, started again (by
# supervisord here), finds "Last session crashed", waits 10 s and marks the executions its event log
# left unfinished `crashed`; a worker that stays dead leaves its Bull job to stall: its lock (60 s,
# renewed every 10 s) lapses and the next stalled-job check of a live worker (every 30 s) fails the
# execution (`error`). Reconciliation sees either within a grace (5 s): at most ~100 s after the kill.
WORKER_DEATH_BOUND = 120


def actions(stack: Stack, job_id: str) -> list[str]:
    return [event["action"] for event in stack.audit(job_id)]


def n8n_ended(stack: Stack, execution_id: str) -> str | None:
    status = str(stack.execution(execution_id)["status"])
    return None if status in ("new", "running", "waiting") else status


def test_an_n8n_worker_killed_mid_execution_ends_the_job_through_reconciliation(queue_stack: Stack) -> None:
    stack = queue_stack
    with receiving(stack) as receiver:
        # 60 s: under n8n's 65 s, the Wait node waits inside the worker's process (no `waiting` status)
        job_id = submit(stack, receiver, "slow_echo", {"seconds": 60}, timeout_seconds=DEADLINE)
        execution_id = status_is(stack, job_id, "running")["execution_id"]
        worker = wait_until(lambda: ran_on(stack, execution_id), 30, f"a worker running {execution_id}")[0]
        # checked against n8n while the worker runs it, and left alone
        wait_until(lambda: "reconcile_running" in actions(stack, job_id), 30, "a check of the running job")
        assert stack.client.status(job_id)["status"] == "running"

        pid = int(stack.supervisorctl("pid", worker).strip())
        os.killpg(pid, signal.SIGKILL)  # the worker and its task runner, as when its host or container dies
        killed = time.monotonic()
        try:
            other = submit(stack, receiver, "slow_echo", {"seconds": 0}, timeout_seconds=60)
            assert callback_of(receiver, other)["status"] == "success", "the queue goes on without it"
            result = callback_of(receiver, job_id, timeout=WORKER_DEATH_BOUND)
            took = time.monotonic() - killed
        finally:  # supervisord starts the worker again
            wait_until(lambda: rows(stack)[worker]["healthy"], 120, f"{worker} healthy again")

    n8n_status = n8n_ended(stack, execution_id)
    assert n8n_status in ("error", "crashed"), n8n_status
    assert (result["status"], result["error_code"], result["execution_id"]) == (
        "failed",
        "RESULT_LOST",
        execution_id,
    )
    assert result["error_message"] == (
        f"n8n execution {execution_id} ended ({n8n_status}) and no result reached the bridge"
    )
    assert "reconcile_ended" in actions(stack, job_id)
    print(f"n8n worker SIGKILLed mid-execution: RESULT_LOST {took:.1f} s after the kill (n8n: {n8n_status})")
    assert took < WORKER_DEATH_BOUND


def test_a_result_posted_while_the_bridge_was_down_ends_the_job_when_it_is_back(queue_stack: Stack) -> None:
    stack = queue_stack
    with receiving(stack) as receiver:
        job_id = submit(stack, receiver, "slow_echo", {"seconds": 10}, timeout_seconds=DEADLINE)
        execution_id = status_is(stack, job_id, "running")["execution_id"]
        assert "stopped" in stack.supervisorctl("stop", "bridge")
        try:
            # the worker posts the result into the void, retries for 52 s (docs/WORKFLOWS.md), then fails
            n8n_status = wait_until(lambda: n8n_ended(stack, execution_id), 120, "n8n to give up the result")
        finally:
            restarted = time.monotonic()
            assert "started" in stack.supervisorctl("start", "bridge")
        result = callback_of(receiver, job_id, timeout=60)
        took = time.monotonic() - restarted

    assert (result["status"], result["error_code"]) == ("failed", "RESULT_LOST")
    assert result["error_message"] == (
        f"n8n execution {execution_id} ended ({n8n_status}) and no result reached the bridge"
    )
    checked = next(e for e in stack.audit(job_id) if e["action"] == "reconcile_ended")
    assert checked["details"] == {"execution_id": execution_id, "n8n_status": n8n_status}
    print(f"result lost while the bridge was down: RESULT_LOST delivered {took:.1f} s after its restart")
    assert took < 30


def test_a_result_n8n_posts_again_once_the_bridge_is_back_is_accepted(queue_stack: Stack) -> None:
    """The bridge's address refuses n8n's first try (502, as nginx says with no replica up), then the
    bridge starts: the start's reconciliation finds the execution still running (n8n is waiting to
    retry) and leaves it; n8n's retry is accepted and FlowBiz gets the success, once."""
    stack = queue_stack
    with receiving(stack) as receiver:
        job_id = submit(stack, receiver, "slow_echo", {"seconds": 3}, timeout_seconds=DEADLINE)
        execution_id = status_is(stack, job_id, "running")["execution_id"]
        assert "stopped" in stack.supervisorctl("stop", "bridge")
        try:
            with refusing(stack.settings.bridge_port) as refused:
                assert refused.wait(60), "n8n never tried to post the result"
        finally:
            restarted = time.monotonic()
            assert "started" in stack.supervisorctl("start", "bridge")
        result = callback_of(receiver, job_id, timeout=90)
        took = time.monotonic() - restarted

    assert (result["status"], result["execution_id"]) == ("success", execution_id), result
    assert "reconcile_ended" not in actions(stack, job_id)
    assert stack.execution(execution_id)["status"] == "success"
    print(f"result refused while the bridge was down: n8n's retry accepted {took:.1f} s after its restart")


@contextmanager
def refusing(port: int) -> Iterator[threading.Event]:
    """Answer 502 on 127.0.0.1:`port` (the stopped bridge's); the event is set at n8n's first result."""
    posted = threading.Event()

    async def bad_gateway(request: Request) -> Response:
        posted.set()
        return Response(status_code=502)

    server = ServerThread(Starlette(routes=[Route("/v1/callbacks/n8n", bad_gateway, methods=["POST"])]), port)
    server.start()
    try:
        yield posted
    finally:
        server.stop()
