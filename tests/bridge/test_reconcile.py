"""Reconciliation (ADR 51): a running job whose result is overdue is checked against its n8n
execution; ended in n8n without a result -> failed with RESULT_LOST, callback delivered, slot freed,
long before its deadline. Still running -> left alone and checked again later."""

from __future__ import annotations

import time

import pytest

from n8nctl.registry import Registry
from tests.bridge.conftest import FakeN8n
from tests.conftest import eventually, holds, job_body

GRACE = 0.3  # BRIDGE_RECONCILE_GRACE_SECONDS in these tests
# the caps are fixed here (BRIDGE_ADAPTIVE_CONCURRENCY=false): a lost result halves an adaptive limit


@pytest.fixture
def prompt(registry: Registry) -> Registry:
    """content_pipeline (cap 2) expected to take no time: overdue GRACE seconds after dispatch."""
    entry = registry.workflows["content_pipeline"].model_copy(update={"expected_duration_seconds": 0})
    return registry.model_copy(update={"workflows": {**registry.workflows, "content_pipeline": entry}})


def _pipeline() -> dict:
    return job_body(workflow_key="content_pipeline", inputs={"campaign": "c", "plan": "p"})


def _job(h, job_id):
    return h.app.state.bridge.store.get_job(job_id)


async def _running(h, body):
    return await eventually(
        lambda: (j := _job(h, body["job_id"]))["status"] == "running" and j, what="running"
    )


@pytest.mark.parametrize("n8n_status", ["crashed", "error", "canceled", "success"])
async def test_an_execution_that_ended_without_a_result_fails_the_job_and_frees_its_slot(
    start_bridge, prompt, n8n_status
):
    async with start_bridge(
        registry_=prompt, bridge_reconcile_grace_seconds=GRACE, bridge_adaptive_concurrency=False
    ) as h:
        bodies = [_pipeline() for _ in range(3)]  # cap 2: the third waits for a slot
        for body in bodies:
            assert (await h.submit(body)).status_code == 202
        first = await _running(h, bodies[0])
        await _running(h, bodies[1])
        assert len(h.n8n.calls) == 2
        started = time.monotonic()
        h.n8n.executions[first["execution_id"]] = n8n_status

        await eventually(lambda: h.receiver.received, timeout=5, what="the RESULT_LOST callback")
        elapsed = time.monotonic() - started
        delivered = h.receiver.bodies()[0]
        assert (delivered["job_id"], delivered["status"]) == (bodies[0]["job_id"], "failed")
        assert delivered["error_code"] == "RESULT_LOST"
        assert delivered["error_message"] == (
            f"n8n execution {first['execution_id']} ended ({n8n_status}) and no result reached the bridge"
        )
        assert delivered["execution_id"] == first["execution_id"]
        ended = [e for e in delivered["audit"] if e["action"] == "reconcile_ended"]
        assert ended[0]["details"] == {"execution_id": first["execution_id"], "n8n_status": n8n_status}
        assert elapsed < 3, f"{elapsed:.1f} s: the deadline is {first['timeout_seconds']} s"
        await eventually(lambda: len(h.n8n.calls) == 3, what="the freed slot going to the third job")
        assert _job(h, bodies[1]["job_id"])["status"] == "running", "a running execution was failed"
        metrics = (await h.client.get("/metrics")).text
        assert 'bridge_reconciliations_total{outcome="result_lost"} 1.0' in metrics


async def test_an_execution_still_running_is_left_alone_and_checked_again(start_bridge, prompt):
    async with start_bridge(
        registry_=prompt, bridge_reconcile_grace_seconds=GRACE, bridge_adaptive_concurrency=False
    ) as h:
        body = _pipeline()
        await h.submit(body)
        job = await _running(h, body)
        store = h.app.state.bridge.store

        def checked() -> list:
            return [e for e in store.audit_for(body["job_id"]) if e["action"] == "reconcile_running"]

        audit = await eventually(lambda: len(checked()) >= 3 and checked(), what="three checks")
        assert _job(h, body["job_id"])["status"] == "running"
        assert audit[0]["details"] == {"execution_id": job["execution_id"], "n8n_status": "running"}
        assert (audit[1]["at"] - audit[0]["at"]).total_seconds() >= GRACE * 0.9, "checked again too soon"

        assert (await h.result(body["job_id"], execution_id=job["execution_id"])).json()[
            "recorded"
        ] == "finished"
        await eventually(lambda: h.receiver.received, what="the success callback")
        assert h.receiver.bodies()[0]["status"] == "success"


async def test_n8n_unanswered_leaves_the_job_running_until_it_answers(start_bridge, prompt):
    async with start_bridge(
        registry_=prompt, bridge_reconcile_grace_seconds=GRACE, bridge_adaptive_concurrency=False
    ) as h:
        body = _pipeline()
        await h.submit(body)
        job = await _running(h, body)
        h.n8n.up = False
        h.n8n.executions[job["execution_id"]] = "crashed"
        await eventually(
            lambda: 'outcome="unanswered"} 2.0' in h.app.state.bridge.metrics.render().decode(),
            what="two unanswered checks",
        )
        assert _job(h, body["job_id"])["status"] == "running"
        h.n8n.up = True
        failed = await eventually(lambda: (j := _job(h, body["job_id"]))["status"] == "failed" and j)
        assert failed["error_code"] == "RESULT_LOST"


async def test_at_start_every_running_job_is_checked_though_not_overdue(start_bridge, registry):
    """A result n8n posted while no bridge ran is lost: a starting bridge checks every running job
    at once (content_pipeline expects 20 s, the grace is the default 60 s)."""
    n8n = FakeN8n()
    async with start_bridge(n8n=n8n, bridge_adaptive_concurrency=False) as h:
        lost, alive = _pipeline(), _pipeline()
        for body in (lost, alive):
            await h.submit(body)
        lost_job, alive_job = await _running(h, lost), await _running(h, alive)
    n8n.executions[lost_job["execution_id"]] = "success"  # finished while the bridge was down

    started = time.monotonic()
    async with start_bridge(n8n=n8n) as h:
        failed = await eventually(lambda: (j := _job(h, lost["job_id"]))["status"] == "failed" and j)
        assert failed["error_code"] == "RESULT_LOST"
        assert time.monotonic() - started < 3
        await eventually(lambda: h.receiver.received, what="its callback")
        assert _job(h, alive["job_id"])["status"] == "running"
        assert n8n.looked_up.count(alive_job["execution_id"]) == 1


async def test_an_execution_n8n_does_not_know_fails_the_job(start_bridge, prompt):
    async with start_bridge(
        registry_=prompt, bridge_reconcile_grace_seconds=GRACE, bridge_adaptive_concurrency=False
    ) as h:
        body = _pipeline()
        await h.submit(body)
        job = await _running(h, body)
        del h.n8n.executions[job["execution_id"]]  # pruned, or n8n's database was replaced
        failed = await eventually(lambda: (j := _job(h, body["job_id"]))["status"] == "failed" and j)
        assert failed["error_message"] == (
            f"n8n has no execution {job['execution_id']} and no result reached the bridge"
        )


async def test_a_result_after_reconciliation_is_recorded_and_not_delivered(start_bridge, prompt):
    async with start_bridge(
        registry_=prompt, bridge_reconcile_grace_seconds=GRACE, bridge_adaptive_concurrency=False
    ) as h:
        body = _pipeline()
        await h.submit(body)
        job = await _running(h, body)
        h.n8n.executions[job["execution_id"]] = "crashed"
        await eventually(lambda: h.receiver.received, what="the RESULT_LOST callback")
        late = await h.result(body["job_id"], execution_id=job["execution_id"])
        assert late.json()["recorded"] == "late"
        await holds(lambda: len(h.receiver.received) == 1, duration=0.5, what="one callback")
        actions = [e["action"] for e in h.app.state.bridge.store.audit_for(body["job_id"])]
        assert actions.count("late_result") == 1
