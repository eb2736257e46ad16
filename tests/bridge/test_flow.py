"""Jobs moving through the workers: dispatch, results, the callback outbox, deadlines, cancel."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import httpx
import standardwebhooks

from tests.conftest import CALLBACK_KEYS, eventually, holds, job_body


def _pipeline(**overrides):
    return job_body(workflow_key="content_pipeline", inputs={"campaign": "c", "plan": "p"}, **overrides)


async def test_job_is_dispatched_with_token_and_payload(start_bridge, secrets):
    async with start_bridge() as h:
        body = job_body()
        await h.submit(body)
        await eventually(lambda: h.n8n.calls, what="dispatch")
        call = h.n8n.calls[0]
        assert call["path"] == "/webhook/flowbiz/tiktok-live-helper"
        assert call["headers"]["x-bridge-token"] == secrets.token
        payload = call["payload"]
        assert payload["job_id"] == body["job_id"] and payload["inputs"] == body["inputs"]
        assert payload["callback_url"] == "http://127.0.0.1:8000/v1/callbacks/n8n"
        store = h.app.state.bridge.store
        job = await eventually(lambda: (j := store.get_job(body["job_id"]))["status"] == "running" and j)
        assert job["execution_id"] == "1001"


async def test_result_is_delivered_signed_with_the_exact_contract(start_bridge, secrets):
    async with start_bridge() as h:
        body = job_body()
        await h.submit(body)
        store = h.app.state.bridge.store  # n8n's answer recorded (the audit's "dispatched"), then its result
        await eventually(lambda: store.get_job(body["job_id"])["status"] == "running", what="dispatch")
        assert (await h.result(body["job_id"], outputs={"score": 7})).json()["recorded"] == "finished"
        await eventually(lambda: h.receiver.received, what="callback")
        headers, raw = h.receiver.received[0]
        delivered = standardwebhooks.Webhook(secrets.callback).verify(raw, headers)
        assert set(delivered) == CALLBACK_KEYS
        assert delivered["status"] == "success" and delivered["outputs"] == {"score": 7}
        assert delivered["execution_id"] == "1001"
        assert all(
            set(e) == {"timestamp", "action", "node_name", "details", "duration_ms"}
            for e in delivered["audit"]
        )
        actions = [(e["action"], e["node_name"]) for e in delivered["audit"]]
        assert actions[:2] == [("accepted", "bridge"), ("dispatched", "bridge")]
        assert ("scored", "Score comments") in actions
        view = await eventually(lambda: _delivered(h, body["job_id"]))
        assert view["callback"]["webhook_id"] == headers["webhook-id"]


async def test_a_results_callback_is_sent_by_the_result_itself_not_claimed_again(start_bridge, monkeypatch):
    """The result's transaction claims its callback (one transaction fewer on every job's path,
    docs/PERFORMANCE.md): the outbox loop never hands that delivery out, and it is attempted once."""
    async with start_bridge() as h:
        store = h.app.state.bridge.store
        handed_out: list[str] = []
        claim = store.claim_deliveries

        def spied(**kwargs):
            rows = claim(**kwargs)
            handed_out.extend(row["job_id"] for row in rows)
            return rows

        monkeypatch.setattr(store, "claim_deliveries", spied)
        body = job_body()
        await h.submit(body)
        await eventually(lambda: store.get_job(body["job_id"])["status"] == "running", what="dispatch")
        await h.result(body["job_id"])
        view = await eventually(lambda: _delivered(h, body["job_id"]), what="delivered")
        assert view["callback"]["attempts"] == 1 and len(h.receiver.received) == 1
        assert handed_out == []


async def _delivered(h, job_id):
    view = (await h.get(f"/v1/jobs/{job_id}")).json()
    return view if view["callback"] and view["callback"]["state"] == "delivered" else None


async def test_failed_result_carries_the_workflows_error_code(start_bridge, secrets):
    async with start_bridge() as h:
        body = job_body()
        await h.submit(body)
        await eventually(lambda: h.n8n.calls)
        await h.result(
            body["job_id"],
            status="failed",
            outputs=None,
            error_code="INPUT_REJECTED",
            error_message="comments missing",
        )
        await eventually(lambda: h.receiver.received)
        delivered = h.receiver.bodies()[0]
        assert (delivered["status"], delivered["error_code"]) == ("failed", "INPUT_REJECTED")


async def test_callback_retries_keep_the_webhook_id_then_deliver_once(start_bridge, secrets):
    async with start_bridge() as h:
        h.receiver.answers = [httpx.Response(500), httpx.Response(503), httpx.Response(502)]
        body = job_body()
        await h.submit(body)
        await eventually(lambda: h.n8n.calls)
        await h.result(body["job_id"])
        await eventually(lambda: len(h.receiver.received) == 4, what="4 attempts")
        ids = {headers["webhook-id"] for headers, _ in h.receiver.received}
        bodies = {raw for _, raw in h.receiver.received}
        assert len(ids) == 1 and len(bodies) == 1
        for headers, raw in h.receiver.received:
            standardwebhooks.Webhook(secrets.callback).verify(raw, headers)
        view = await eventually(lambda: _delivered(h, body["job_id"]))
        assert view["callback"]["attempts"] == 4


async def test_dead_letter_after_last_attempt_and_redeliver(start_bridge):
    async with start_bridge() as h:
        h.receiver.answers = [httpx.Response(500)] * 4
        body = job_body()
        await h.submit(body)
        await eventually(lambda: h.n8n.calls)
        await h.result(body["job_id"])

        async def dead():
            view = (await h.get(f"/v1/jobs/{body['job_id']}")).json()
            return view["callback"] and view["callback"]["state"] == "dead" and view

        view = await eventually(dead, what="dead letter")
        assert view["callback"]["attempts"] == 4 and view["callback"]["last_status_code"] == 500
        assert h.app.state.bridge.store.redeliver(all_dead=True, actor="ops") == [body["job_id"]]
        await eventually(lambda: _delivered(h, body["job_id"]), what="redelivery")
        assert len({headers["webhook-id"] for headers, _ in h.receiver.received}) == 1


async def test_410_stops_delivery(start_bridge):
    async with start_bridge() as h:
        h.receiver.answers = [httpx.Response(410)]
        body = job_body()
        await h.submit(body)
        await eventually(lambda: h.n8n.calls)
        await h.result(body["job_id"])

        async def stopped():
            return (await h.get(f"/v1/jobs/{body['job_id']}")).json()["callback"]["state"] == "stopped"

        await eventually(stopped)
        assert len(h.receiver.received) == 1


async def test_retry_after_is_honoured(start_bridge):
    async with start_bridge(bridge_callback_retry_schedule="0,0.1,5") as h:
        h.receiver.answers = [httpx.Response(503, headers={"Retry-After": "1"})]
        body = job_body()
        await h.submit(body)
        await eventually(lambda: h.n8n.calls)
        await h.result(body["job_id"])
        await eventually(lambda: h.receiver.received)
        view = (await h.get(f"/v1/jobs/{body['job_id']}")).json()["callback"]
        assert view["state"] == "pending" and view["attempts"] == 1
        await asyncio.sleep(0.5)  # the schedule alone would have retried after 0.1 s
        assert len(h.receiver.received) == 1
        await eventually(lambda: len(h.receiver.received) == 2, timeout=3)


async def test_freed_slot_goes_to_the_next_job(start_bridge):
    async with start_bridge(bridge_dispatch_start_limit=100) as h:  # the limit starts at the max
        bodies = [_pipeline() for _ in range(3)]
        for body in bodies:
            assert (await h.submit(body)).status_code == 202
        await eventually(lambda: len(h.n8n.calls) == 2, what="two dispatches (the cap)")
        await asyncio.sleep(0.3)
        assert len(h.n8n.calls) == 2, "content_pipeline's max_concurrency is 2"
        await h.result(h.n8n.calls[0]["payload"]["job_id"])
        await eventually(lambda: len(h.n8n.calls) == 3, what="the freed slot to be used")


async def test_the_limit_starts_at_one_grows_with_results_and_shows_in_metrics(start_bridge):
    """The cap passed to the claim is the adaptive limit: one job at a time until a result came
    back quickly, then more, never past the registry's max_concurrency (2 for content_pipeline)."""

    async def limit() -> str:
        text = (await h.client.get("/metrics")).text
        return next(
            line.rsplit(" ", 1)[1]
            for line in text.splitlines()
            if line.startswith('bridge_dispatch_concurrency_limit{workflow_key="content_pipeline"}')
        )

    async with start_bridge() as h:
        for _ in range(4):
            assert (await h.submit(_pipeline())).status_code == 202
        await eventually(lambda: h.n8n.calls, what="the first dispatch")
        assert await limit() == "1.0"
        await asyncio.sleep(0.3)  # several claims later, still alone
        assert len(h.n8n.calls) == 1
        await h.result(h.n8n.calls[0]["payload"]["job_id"])
        await eventually(lambda: len(h.n8n.calls) == 3, what="the limit grown to the max (2)")
        assert await limit() == "2.0"
        await asyncio.sleep(0.3)
        assert len(h.n8n.calls) == 3, "never past max_concurrency"


async def test_n8n_down_halves_the_limit_to_one_and_it_grows_back_when_n8n_returns(start_bridge):
    async with start_bridge(bridge_dispatch_start_limit=100) as h:
        bridge = h.app.state.bridge
        assert bridge.concurrency.limit("tiktok_live_helper") == 16
        h.n8n.up = False
        bodies = [job_body() for _ in range(3)]
        for body in bodies:
            await h.submit(body)
        await eventually(lambda: bridge.concurrency.limit("tiktok_live_helper") == 1, what="halvings to 1")
        h.n8n.up = True
        await eventually(lambda: h.n8n.calls, timeout=5, what="a dispatch once n8n is back")
        assert len(h.n8n.calls) == 1, "one at a time while the limit is 1"
        await h.result(h.n8n.calls[0]["payload"]["job_id"])
        await eventually(lambda: len(h.n8n.calls) == 3, what="the other two, the limit grown")
        assert bridge.concurrency.limit("tiktok_live_helper") == 3
        text = (await h.client.get("/metrics")).text
        changes = 'bridge_dispatch_limit_changes_total{reason="%s",workflow_key="tiktok_live_helper"}'
        assert changes % "grow" + " 1.0" in text
        assert changes % "error" in text


async def test_n8n_down_jobs_queue_and_dispatch_when_it_returns(start_bridge):
    async with start_bridge() as h:
        h.n8n.up = False
        body = job_body()
        response = await h.submit(body)
        assert response.status_code == 202
        store = h.app.state.bridge.store
        await eventually(
            lambda: any(e["action"] == "dispatch_failed" for e in store.audit_for(body["job_id"]))
        )
        assert store.get_job(body["job_id"])["status"] == "pending"
        h.n8n.up = True
        await eventually(lambda: store.get_job(body["job_id"])["status"] == "running", timeout=5)


async def test_deadline_fails_job_with_timeout_and_late_result_is_not_delivered(start_bridge):
    async with start_bridge() as h:
        body = job_body(timeout_seconds=1)
        await h.submit(body)
        await eventually(lambda: h.n8n.calls)
        await eventually(lambda: h.receiver.received, timeout=4, what="TIMEOUT callback")
        delivered = h.receiver.bodies()[0]
        assert (delivered["status"], delivered["error_code"]) == ("failed", "TIMEOUT")
        assert h.n8n.stopped == ["1001"], "the running execution is stopped in n8n"
        late = await h.result(body["job_id"])
        assert late.json()["recorded"] == "late"
        await asyncio.sleep(0.3)
        assert len(h.receiver.received) == 1
        actions = [e["action"] for e in h.app.state.bridge.store.audit_for(body["job_id"])]
        assert "late_result" in actions
        assert h.app.state.bridge.store.get_job(body["job_id"])["status"] == "failed"


async def test_never_dispatched_job_times_out_saying_why(start_bridge):
    async with start_bridge() as h:
        h.n8n.up = False
        body = job_body(timeout_seconds=1)
        await h.submit(body)
        await eventually(lambda: h.receiver.received, timeout=4)
        delivered = h.receiver.bodies()[0]
        assert delivered["error_code"] == "TIMEOUT"
        assert "never dispatched" in delivered["error_message"]


async def test_cancel_running_job_stops_execution_and_sends_no_success(start_bridge):
    async with start_bridge() as h:
        body = job_body()
        await h.submit(body)
        store = h.app.state.bridge.store
        await eventually(lambda: store.get_job(body["job_id"])["status"] == "running")
        response = await h.cancel(body["job_id"], reason="not needed")
        assert response.json()["status"] == "cancelled"
        assert h.n8n.stopped == ["1001"]
        await eventually(
            lambda: "execution_stopped" in [e["action"] for e in store.audit_for(body["job_id"])],
            what="the stop audited",
        )
        assert (await h.result(body["job_id"])).json()["recorded"] == "late"
        await asyncio.sleep(0.3)
        assert h.receiver.received == []


async def test_result_before_dispatch_is_recorded_is_kept(start_bridge):
    """n8n can answer its webhook and post the result before the bridge records 'running'."""
    async with start_bridge(workers=False) as h:
        body = job_body()
        await h.submit(body)
        store = h.app.state.bridge.store
        job = store.claim_for_dispatch({"tiktok_live_helper": 1}, limit=1, lease=timedelta(seconds=60))[0]
        await h.result(body["job_id"])
        store.mark_running(job, "1001")
        assert store.get_job(body["job_id"])["status"] == "success"
        assert json.loads(store.get_job(body["job_id"])["delivery"]["payload"])["status"] == "success"


async def test_pending_job_of_a_killed_workflow_fails_with_workflow_killed(start_bridge):
    """A job accepted just before the switch (or by a replica with a stale cache) is never run."""
    async with start_bridge() as h:
        h.n8n.up = False
        body = job_body()
        await h.submit(body)
        h.app.state.bridge.store.set_switch(body["workflow_key"], killed=True, reason="incident", actor="ops")
        await eventually(lambda: h.receiver.received, timeout=4, what="WORKFLOW_KILLED callback")
        delivered = h.receiver.bodies()[0]
        assert (delivered["status"], delivered["error_code"]) == ("failed", "WORKFLOW_KILLED")
        h.n8n.up = True
        await asyncio.sleep(0.3)
        assert all(call["payload"]["job_id"] != body["job_id"] for call in h.n8n.calls)


async def test_metrics_count_intake_dispatch_results_deliveries_and_latency(start_bridge):
    async with start_bridge() as h:
        body = job_body()
        await h.submit(body)
        await eventually(lambda: h.n8n.calls, what="dispatch")
        await h.result(body["job_id"])
        await h.result(body["job_id"])  # a duplicate: recorded late
        await eventually(lambda: _delivered(h, body["job_id"]), what="delivery")
        text = (await h.client.get("/metrics")).text
        for line in (
            "bridge_intake_seconds_count 1.0",
            'bridge_dispatches_total{outcome="accepted"} 1.0',
            "bridge_dispatch_seconds_count 1.0",
            'bridge_n8n_results_total{recorded="finished",status="success"} 1.0',
            'bridge_n8n_results_total{recorded="late",status="success"} 1.0',
            'bridge_job_duration_seconds_count{status="success",workflow_key="tiktok_live_helper"} 1.0',
            'bridge_callback_attempts_total{outcome="delivered"} 1.0',
            "bridge_callback_attempt_seconds_count 1.0",
            "bridge_callbacks_dead 0.0",
        ):
            assert line in text, f"{line!r} not in /metrics"


async def test_a_second_result_of_one_job_is_audited_and_never_delivered(start_bridge):
    """n8n can run one webhook call twice: the first result finishes the job; the second, from
    another execution, is recorded as late_result with its execution_id, and FlowBiz gets one callback."""
    async with start_bridge() as h:
        body = job_body()
        await h.submit(body)
        await eventually(lambda: h.n8n.calls)
        assert (await h.result(body["job_id"], execution_id="1001")).json()["recorded"] == "finished"
        second = await h.result(body["job_id"], execution_id="1002", outputs={"ok": "again"})
        assert second.json()["recorded"] == "late"
        await eventually(lambda: _delivered(h, body["job_id"]), what="the one callback delivered")
        await holds(lambda: len(h.receiver.received) == 1, duration=0.5, what="one callback")
        assert h.receiver.bodies()[0]["execution_id"] == "1001"
        audit = h.app.state.bridge.store.audit_for(body["job_id"])
        late = [e for e in audit if e["action"] == "late_result"]
        assert [e["details"] for e in late] == [
            {"reported_status": "success", "execution_id": "1002", "error_code": None}
        ]
        assert [e["action"] for e in audit].count("scored") == 2, "the second run's own audit is kept"
        metrics = (await h.client.get("/metrics")).text
        assert 'bridge_n8n_results_total{recorded="late",status="success"} 1.0' in metrics
