"""The store's backup side (snapshot: dump, load, requeue after a restore) and its retention (prune),
on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import re
import threading
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa

from n8nctl.store import Store
from n8nctl.store.core import utcnow
from n8nctl.store.schema import audit_events, deliveries, jobs, switches
from n8nctl.store.snapshot import RESTORE_DEADLINE_PASSED, DumpError
from tests.store.test_store import count, new_job, store, store_url

__all__ = ["store", "store_url"]  # the fixtures, on both engines


def finish(store: Store, job_id: str) -> None:
    """A job through its whole life: claimed, running, result recorded (callback queued)."""
    store.claim_for_dispatch({"content_pipeline": 1000}, limit=1000, lease=timedelta(seconds=60))
    store.mark_running(store.get_job(job_id), "e-" + job_id)
    store.record_result(
        {
            "job_id": job_id,
            "execution_id": "e-" + job_id,
            "status": "success",
            "outputs": {"n": 1},
            "error_code": None,
            "error_message": None,
            "audit": [{"action": "step", "node_name": "Code", "details": {"i": 1}, "duration_ms": 3}],
            "started_at": None,
            "completed_at": None,
        }
    )


def rows(store: Store) -> dict[str, list[dict]]:
    with store._read() as conn:
        return {
            t.name: [dict(r) for r in conn.execute(sa.select(t).order_by(*t.primary_key.columns)).mappings()]
            for t in (jobs, deliveries, audit_events, switches)
        }


def test_dump_then_load_gives_back_every_row_exactly(store, tmp_path, postgres_url_or_sqlite):
    store.submit_batch([new_job(f"j{i}") for i in range(5)])
    finish(store, "j0")
    store.set_switch("content_pipeline", killed=True, reason="INC-1", actor="ops")
    before = rows(store)
    counts = store.dump(tmp_path / "store.jsonl.gz")
    assert counts == {name: len(table_rows) for name, table_rows in before.items()}
    # into a fresh store on the other engine: the dump is engine-independent
    target = Store(postgres_url_or_sqlite)
    try:
        assert target.load(tmp_path / "store.jsonl.gz") == counts
        assert rows(target) == before
        assert target.revision() == store.revision()
        # ids continue after the loaded rows (PostgreSQL: the sequences were moved on)
        target.record_restore("restored", actor="ops", details={})
        assert (
            max(e["id"] for e in rows(target)["audit_events"])
            == max(e["id"] for e in before["audit_events"]) + 1
        )
    finally:
        target.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def postgres_url_or_sqlite(request, tmp_path):
    if request.param == "postgres":
        return request.getfixturevalue("postgres_server").create_database()
    return f"sqlite:///{tmp_path / 'restored.db'}"


def test_load_replaces_what_was_there(store, tmp_path):
    store.submit_batch([new_job("kept")])
    store.dump(tmp_path / "dump.gz")
    store.submit_batch([new_job("after-the-backup")])
    store.load(tmp_path / "dump.gz")
    assert [j["job_id"] for j in rows(store)["jobs"]] == ["kept"]


def test_load_refuses_a_file_that_is_no_dump(store, tmp_path):
    import gzip

    with gzip.open(tmp_path / "x.gz", "wt") as out:
        out.write("not json\n")
    store.submit_batch([new_job("stays")])
    with pytest.raises(DumpError):
        store.load(tmp_path / "x.gz")
    assert count(store, jobs) == 1, "the store is untouched"


def test_a_dump_taken_while_jobs_flow_is_consistent(store, tmp_path):
    """Writers keep submitting and finishing jobs while the dump runs: the dump holds no job without
    its `accepted` event and no outbox row without its job (one read snapshot)."""
    stop = threading.Event()

    def writer(prefix: str) -> None:
        n = 0
        while not stop.is_set():
            store.submit_batch([new_job(f"{prefix}-{n}")])
            finish(store, f"{prefix}-{n}")
            n += 1

    threads = [threading.Thread(target=writer, args=(p,)) for p in ("a", "b")]
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + 10
        while count(store, jobs) < 50 and time.monotonic() < deadline:
            time.sleep(0.05)
        store.dump(tmp_path / "live.gz")
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    restored = Store(f"sqlite:///{tmp_path / 'check.db'}")
    try:
        counts = restored.load(tmp_path / "live.gz")
        assert counts["jobs"] >= 50
        data = rows(restored)
        job_ids = {j["job_id"] for j in data["jobs"]}
        accepted = {e["job_id"] for e in data["audit_events"] if e["action"] == "accepted"}
        assert job_ids == accepted, "every job has its accepted event and no event lacks its job"
        assert {d["job_id"] for d in data["deliveries"]} <= job_ids
        finished = {j["job_id"] for j in data["jobs"] if j["status"] == "success"}
        assert finished == {d["job_id"] for d in data["deliveries"]}, "a result and its callback together"
    finally:
        restored.close()


def test_jobs_in_flight_are_requeued_or_failed_after_a_restore(store):
    store.submit_batch([new_job("ahead"), new_job("running"), new_job("late"), new_job("done")])
    store.claim_for_dispatch({"content_pipeline": 10}, limit=10, lease=timedelta(seconds=60))
    store.mark_running(store.get_job("running"), "exec-9")
    finish(store, "done")
    with store._write() as conn:  # as if the restore came after this job's deadline
        conn.execute(jobs.update().where(jobs.c.job_id == "late").values(deadline_at=utcnow() - timedelta(1)))
    outcome = store.requeue_after_restore("20261201T020000Z", actor="ops")
    assert sorted(outcome.requeued) == ["ahead", "running"] and outcome.failed == ["late"]
    running = store.get_job("running")
    assert (
        running["status"] == "pending" and running["execution_id"] is None and running["lease_until"] is None
    )
    event = store.audit_for("running")[-1]
    assert event["action"] == "requeued_after_restore"
    assert event["details"] == {
        "backup_id": "20261201T020000Z",
        "previous_status": "running",
        "previous_execution_id": "exec-9",
    }
    late = store.get_job("late")
    assert (late["status"], late["error_code"]) == ("failed", RESTORE_DEADLINE_PASSED)
    assert store.audit_for("late")[-1]["details"]["error_code"] == RESTORE_DEADLINE_PASSED
    assert count(store, deliveries, deliveries.c.job_id == "late") == 1, "FlowBiz is told"
    assert store.get_job("done")["status"] == "success"
    claimed = store.claim_for_dispatch({"content_pipeline": 10}, limit=10, lease=timedelta(seconds=60))
    assert sorted(j["job_id"] for j in claimed) == ["ahead", "running"], "dispatched again"


def _age(store: Store, job_id: str, days: float) -> None:
    moment = utcnow() - timedelta(days=days)
    with store._write() as conn:
        conn.execute(audit_events.update().where(audit_events.c.job_id == job_id).values(at=moment))
        conn.execute(jobs.update().where(jobs.c.job_id == job_id).values(completed_at=moment))


def test_prune_deletes_only_what_is_past_its_retention(store):
    store.submit_batch([new_job("old"), new_job("fresh"), new_job("old-but-active")])
    for job_id in ("old", "fresh"):
        finish(store, job_id)
    financial = new_job("old-financial")
    financial.row["retention_days"] = 365
    store.submit_batch([financial])
    finish(store, "old-financial")
    for job_id, days in (("old", 91), ("fresh", 89), ("old-financial", 200), ("old-but-active", 91)):
        _age(store, job_id, days)
    store.set_switch("*", killed=False, reason=None, actor="ops")  # an operator event, kept 365 days
    dry = store.prune_audit(dry_run=True)
    old_events = count(store, audit_events, audit_events.c.job_id == "old")
    assert (dry.events, dry.jobs) == (old_events + 1, 0), "the active job's event too, but not the job"
    assert count(store, audit_events) > old_events, "a dry run deletes nothing"
    pruned = store.prune_audit(batch=2)  # several batches
    assert (pruned.events, pruned.jobs) == (old_events + 1, 1)
    assert store.get_job("old") is None and count(store, deliveries, deliveries.c.job_id == "old") == 0
    assert store.get_job("old-but-active")["status"] == "pending", "an active job never goes"
    for job_id in ("fresh", "old-financial"):
        assert store.get_job(job_id) and store.audit_for(job_id), job_id
    assert store.prune_audit().events == 0


def test_prune_finds_expired_rows_by_index_range_scans(store):
    """The plans behind the batches (docs/PERFORMANCE.md): index range scans, never a table scan."""
    now = utcnow()
    with store._read() as conn:
        for query in (store.expired_events(90, now), store.expired_jobs(90, now)):
            statement = query.limit(1000).compile(conn, compile_kwargs={"literal_binds": True})
            if conn.dialect.name == "sqlite":
                plan = " | ".join(r[-1] for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}"))
                assert re.search(
                    r"SEARCH (audit_events|jobs) USING (COVERING )?INDEX ix_\w+_retention", plan
                ), plan
                assert "SCAN" not in plan and "TEMP B-TREE" not in plan, plan  # no sort of what matches
            else:
                conn.exec_driver_sql("SET enable_seqscan = off")  # tiny tables: ask what it would use
                plan = " | ".join(r[0] for r in conn.exec_driver_sql(f"EXPLAIN {statement}"))
                assert "ix_audit_events_retention" in plan or "ix_jobs_retention" in plan, plan
