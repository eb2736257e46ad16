"""Operator commands that work on the bridge's store: jobs list, redeliver, audit show/export."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from n8nctl.cli.main import cli
from n8nctl.store import Store
from tests.harness import ServerThread, free_port
from tests.store.test_store import new_job


@pytest.fixture
def store(project, monkeypatch):
    store = Store(f"sqlite:///{project / '.n8nctl' / 'bridge.db'}")
    store.migrate()
    store.submit_batch([new_job("job-a"), new_job("job-b", workflow_key="tiktok_live_helper")])
    store.record_result(
        {
            "job_id": "job-a",
            "execution_id": "77",
            "status": "success",
            "outputs": {"n": 1},
            "error_code": None,
            "error_message": None,
            "started_at": None,
            "completed_at": None,
            "audit": [
                {
                    "action": "split",
                    "node_name": "Split plan",
                    "details": {"posts": 3},
                    "duration_ms": 12,
                    "timestamp": None,
                }
            ],
        }
    )
    yield store
    store.close()


def test_jobs_list_table_and_json(store, runner):
    table = runner.invoke(cli, ["jobs", "list"])
    assert table.exit_code == 0, table.output
    assert "job-a" in table.output and "success" in table.output
    rows = json.loads(runner.invoke(cli, ["jobs", "list", "--json", "--status", "pending"]).output)
    assert [r["job_id"] for r in rows] == ["job-b"]
    assert "request_hash" not in rows[0]


def test_audit_show_links_job_and_execution(store, runner):
    result = runner.invoke(cli, ["audit", "show", "job-a", "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["execution_id"] == "77"
    actions = [(e["source"], e["action"]) for e in shown["events"]]
    assert actions == [("bridge", "accepted"), ("n8n", "split"), ("n8n", "success")]
    assert runner.invoke(cli, ["audit", "show", "job-a"]).output.startswith(
        "job job-a  workflow content_pipeline"
    )


def test_audit_show_unknown_job_exits_4(store, runner):
    result = runner.invoke(cli, ["audit", "show", "nope"])
    assert result.exit_code == 4
    assert "no job nope" in result.output


def test_audit_export_is_json_lines(store, runner, project):
    since = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S")
    result = runner.invoke(cli, ["audit", "export", "--since", since, "-o", str(project / "audit.jsonl")])
    assert result.exit_code == 0, result.output
    lines = (project / "audit.jsonl").read_text().splitlines()
    events = [json.loads(line) for line in lines]
    assert len(events) == 4
    assert {e["job_id"] for e in events} == {"job-a", "job-b"}
    assert all(e["at"].endswith("Z") for e in events)


def test_redeliver_requeues_with_same_webhook_id(store, runner):
    delivery = store.get_job("job-a")["delivery"]
    store.delivery_result({**delivery, "attempts": 8}, state="dead", status_code=500, error="boom")
    result = runner.invoke(cli, ["jobs", "redeliver", "--dead", "--actor", "alice"])
    assert result.exit_code == 0, result.output
    assert "queued 1 callback(s)" in result.output
    after = store.get_job("job-a")["delivery"]
    assert (after["state"], after["attempts"], after["message_id"]) == ("pending", 0, delivery["message_id"])
    assert store.audit_for("job-a")[-1]["actor"] == "alice"


def test_redeliver_needs_exactly_one_target(store, runner):
    assert runner.invoke(cli, ["jobs", "redeliver"]).exit_code == 2
    assert runner.invoke(cli, ["jobs", "redeliver", "job-a", "--dead"]).exit_code == 2
    missing = runner.invoke(cli, ["jobs", "redeliver", "job-b"])
    assert missing.exit_code == 4


def test_status_shows_the_bridges_last_hour_and_fails_on_a_threshold(store, runner):
    """Nothing runs (both services unhealthy); the store holds one succeeded job, one pending, and a
    dead-lettered callback: over N8NCTL_ALERT_DEAD_LETTERS (0), so status names it and exits 1."""
    delivery = store.get_job("job-a")["delivery"]
    store.delivery_result({**delivery, "attempts": 8}, state="dead", status_code=500, error="boom")
    env = {"N8N_PORT": str(free_port()), "BRIDGE_PORT": str(free_port())}
    table = runner.invoke(cli, ["status"], env=env)
    assert table.exit_code == 1, table.output
    assert "bridge, last hour: 2 accepted, 1 succeeded, 0 failed (0 timed out)" in table.output
    assert "queue 1; dead letters 1" in table.output
    assert "1 callbacks in the dead letter" in table.output.splitlines()[-1]
    report = json.loads(runner.invoke(cli, ["status", "--json"], env=env).output.split("\nn8nctl: ")[0])
    figures = report["bridge_last_hour"]
    assert (figures["jobs_accepted"], figures["dead_letters"]) == (2, 1)
    assert [b["figure"] for b in figures["breaches"]] == ["dead_letters"]
    assert report["problems"][:2] == ["unhealthy: n8n", "unhealthy: bridge"]


def test_status_shows_each_workflows_adaptive_dispatch_limit_from_the_bridge(store, runner):
    """A stand-in bridge answering /healthz, /v1/meta and /metrics as the real one does."""
    metrics = (
        "# TYPE bridge_dispatch_concurrency_limit gauge\n"
        'bridge_dispatch_concurrency_limit{workflow_key="content_pipeline"} 2.0\n'
        'bridge_dispatch_concurrency_limit{workflow_key="tiktok_live_helper"} 7.0\n'
        'bridge_dispatch_limit_changes_total{reason="grow",workflow_key="tiktok_live_helper"} 3.0\n'
    )
    bridge = ServerThread(
        Starlette(
            routes=[
                Route("/healthz", lambda _: JSONResponse({"status": "ok"})),
                Route("/v1/meta", lambda _: JSONResponse({"version": "0.1.0"})),
                Route("/metrics", lambda _: PlainTextResponse(metrics)),
            ]
        ),
        free_port(),
    )
    bridge.start()
    try:
        env = {"N8N_PORT": str(free_port()), "BRIDGE_PORT": str(bridge.port)}
        table = runner.invoke(cli, ["status"], env=env)
        assert "bridge, dispatch limits (adaptive): content_pipeline 2, tiktok_live_helper 7" in table.output
        report = json.loads(runner.invoke(cli, ["status", "--json"], env=env).output.split("\nn8nctl: ")[0])
        assert report["dispatch_limits"] == {"content_pipeline": 2, "tiktok_live_helper": 7}
    finally:
        bridge.stop()
    down = json.loads(runner.invoke(cli, ["status", "--json"], env=env).output.split("\nn8nctl: ")[0])
    assert down["dispatch_limits"] == {}, "no bridge answering: no limits, no error"
