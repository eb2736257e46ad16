"""The bridge's API and workers on PostgreSQL: intake, idempotency under concurrency, claims, the
kill-switch, deadlines and the callback outbox.

The tests imported below are tests/bridge's, collected again here so they run against PostgreSQL (the
`bridge_database_url` fixture of this folder). A machine without PostgreSQL fails them; only
N8NCTL_TEST_SKIP_POSTGRES=1 skips them (tests/conftest.py).
"""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.bridge.conftest import FakeN8n
from tests.bridge.test_api import (  # noqa: F401  (collected here, on PostgreSQL)
    test_accepts_job_with_202_and_stores_it,
    test_cancel_pending_job_then_cancel_again_is_409,
    test_health_readiness_meta_metrics_openapi,
    test_hundred_concurrent_identical_submissions_make_one_job,
    test_killed_workflow_is_423_and_global_kill_is_503,
    test_retry_of_an_accepted_job_after_a_kill_is_still_200,
    test_same_job_id_different_body_is_409,
    test_same_request_again_is_200_with_the_stored_job,
)
from tests.bridge.test_flow import (  # noqa: F401
    test_callback_retries_keep_the_webhook_id_then_deliver_once,
    test_cancel_running_job_stops_execution_and_sends_no_success,
    test_dead_letter_after_last_attempt_and_redeliver,
    test_deadline_fails_job_with_timeout_and_late_result_is_not_delivered,
    test_freed_slot_goes_to_the_next_job,
    test_pending_job_of_a_killed_workflow_fails_with_workflow_killed,
    test_result_before_dispatch_is_recorded_is_kept,
    test_result_is_delivered_signed_with_the_exact_contract,
)
from tests.bridge.test_reconcile import (  # noqa: F401
    prompt,
    test_an_execution_that_ended_without_a_result_fails_the_job_and_frees_its_slot,
    test_at_start_every_running_job_is_checked_though_not_overdue,
)
from tests.conftest import eventually, job_body

pytestmark = pytest.mark.postgres


async def test_two_bridges_racing_on_one_job_id_answer_200_or_409_never_500(start_bridge):
    """Two bridge processes on one database: the same job_id reaches both at once. The loser of the
    primary-key race answers as a replay (200, same body) or a conflict (409, different body)."""
    async with start_bridge(workers=False) as one, start_bridge(workers=False) as two:
        for _ in range(5):
            body = job_body()
            codes = await asyncio.gather(*(h.submit(body) for h in [one, two] * 10))
            assert sorted(r.status_code for r in codes) == [200] * 19 + [202]
            assert len({r.json()["accepted_at"] for r in codes}) == 1

            other = job_body()
            bodies = [other, {**other, "priority": 9}] * 10
            answers = await asyncio.gather(
                *(h.submit(b) for h, b in zip([one, two] * 10, bodies, strict=True))
            )
            winner = [b for b, r in zip(bodies, answers, strict=True) if r.status_code == 202]
            assert len(winner) == 1
            for sent, answer in zip(bodies, answers, strict=True):
                if answer.status_code != 202:
                    assert answer.status_code == (200 if sent == winner[0] else 409), answer.text
        assert len(one.app.state.bridge.store.list_jobs(limit=100)) == 10


async def test_two_bridges_run_each_job_once_and_deliver_each_callback_once(start_bridge):
    """Both bridges' dispatchers and outboxes work the same tables; content_pipeline's cap (2) holds
    for the pair, not per bridge."""
    async with start_bridge() as one, start_bridge() as two:
        bodies = [
            job_body(workflow_key="content_pipeline", inputs={"campaign": "c", "plan": "p"}) for _ in range(8)
        ]
        for body in bodies:
            assert (await one.submit(body)).status_code == 202
        store = one.app.state.bridge.store
        finished: list[str] = []

        def dispatched() -> list[str]:
            return [call["payload"]["job_id"] for call in one.n8n.calls + two.n8n.calls]

        while len(finished) < len(bodies):
            await eventually(lambda: set(dispatched()) - set(finished), what="a dispatch")
            in_flight = [
                j for j in store.list_jobs(limit=100) if j["status"] == "running" or j["lease_until"]
            ]
            assert len(in_flight) <= 2, in_flight
            for job_id in [j for j in dispatched() if j not in finished]:
                assert (await one.result(job_id)).json()["recorded"] == "finished"
                finished.append(job_id)
        assert sorted(dispatched()) == sorted(b["job_id"] for b in bodies)  # each exactly once
        await eventually(
            lambda: len(one.receiver.received) + len(two.receiver.received) == len(bodies), what="callbacks"
        )
        delivered = [json.loads(raw)["job_id"] for r in (one.receiver, two.receiver) for _, raw in r.received]
        assert sorted(delivered) == sorted(finished)


async def test_replicas_starting_together_check_each_running_job_once(start_bridge, registry):
    """Both replicas check every running job as they start; the claim's row lock and lease give
    each job to one of them: n8n is asked about each execution once, and each lost job fails once."""
    wide = registry.model_copy(
        update={
            "workflows": {
                **registry.workflows,
                "content_pipeline": registry.workflows["content_pipeline"].model_copy(
                    update={"max_concurrency": 40}
                ),
            }
        }
    )
    n8n = FakeN8n()
    bodies = [
        job_body(workflow_key="content_pipeline", inputs={"campaign": "c", "plan": "p"}) for _ in range(40)
    ]
    # a fixed cap: all 40 at once (an adaptive limit, ADR 61, starts at 1 and grows with results)
    async with start_bridge(n8n=n8n, registry_=wide, bridge_adaptive_concurrency=False) as h:
        for body in bodies:
            assert (await h.submit(body)).status_code == 202
        store = h.app.state.bridge.store
        await eventually(
            lambda: len(store.list_jobs(status="running", limit=100)) == 40, timeout=10, what="40 running"
        )
    for execution_id in list(n8n.executions)[::2]:
        n8n.executions[execution_id] = "crashed"  # half of them died while no bridge ran

    async with start_bridge(n8n=n8n, registry_=wide) as one, start_bridge(n8n=n8n, registry_=wide) as two:
        store = one.app.state.bridge.store
        await eventually(
            lambda: len(store.list_jobs(status="failed", limit=100)) == 20, timeout=10, what="20 failed"
        )
        await eventually(lambda: len(n8n.looked_up) == 40, what="every execution checked")
        assert sorted(n8n.looked_up) == sorted(n8n.executions), "an execution was checked twice"
        await eventually(
            lambda: len(one.receiver.received) + len(two.receiver.received) == 20, what="20 callbacks"
        )
        assert all(j["error_code"] == "RESULT_LOST" for j in store.list_jobs(status="failed", limit=100))
