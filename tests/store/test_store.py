"""The store on SQLite and on a real PostgreSQL: schema migrations, claims, leases, crash recovery.

Every test taking `store` runs on both engines; the PostgreSQL cases are marked `postgres`. Without
PostgreSQL's binaries they fail; only N8NCTL_TEST_SKIP_POSTGRES=1 skips them (tests/conftest.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from n8nctl.store import NewJob, Store, migrations
from n8nctl.store.core import EMPTY_JOB, audit_row
from n8nctl.store.jobs import AUDIT_INSERT, JOB_INSERT
from n8nctl.store.schema import audit_events, deliveries, jobs, metadata
from tests.conftest import new_job

LEASE = timedelta(seconds=60)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request, tmp_path):
    if request.param == "postgres":
        return request.getfixturevalue("postgres_url")
    return f"sqlite:///{tmp_path / 'bridge.db'}"


@pytest.fixture
def store(store_url):
    store = Store(store_url)
    store.migrate()
    yield store
    store.close()


@pytest.fixture
def replica(store):
    """A second Store on the same database: another bridge process."""
    other = Store(store.url)
    yield other
    other.close()


def together(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run the calls in threads released at the same moment; their results in order."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], Any]) -> Any:
        barrier.wait(timeout=10)
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def count(store: Store, table: sa.Table, *where: Any) -> int:
    with store._read() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table).where(*where)).scalar_one())


def test_migrations_produce_exactly_the_declared_schema(store):
    with store._writer.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_migrate_twice_is_a_no_op(store):
    store.migrate()
    with store._writer.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == "0002"


def test_sqlite_runs_wal_with_full_sync(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'bridge.db'}")
    with store._writer.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL: fsync on every commit
    store.close()


@pytest.mark.postgres
def test_postgres_commits_synchronously(postgres_url):
    """A 202 is sent after commit: on PostgreSQL that is durable only with synchronous_commit=on."""
    store = Store(postgres_url)
    with store._writer.connect() as conn:
        assert conn.exec_driver_sql("SHOW synchronous_commit").scalar() == "on"
    store.close()


def test_claims_most_urgent_first_and_respects_caps(store):
    store.submit_batch(
        [
            new_job("low-old", priority=1, offset=-2),
            new_job("mid", priority=5),
            new_job("high-new", priority=10, offset=-1),
            new_job("high-newer", priority=10),
        ]
    )
    claimed = store.claim_for_dispatch({"content_pipeline": 3}, limit=10, lease=LEASE)
    assert [j["job_id"] for j in claimed] == ["high-new", "high-newer", "mid"]
    assert store.claim_for_dispatch({"content_pipeline": 3}, limit=10, lease=LEASE) == []  # cap reached
    assert store.claim_for_dispatch({"content_pipeline": 4}, limit=10, lease=LEASE)[0]["job_id"] == "low-old"


def test_a_claim_says_which_workflows_have_no_free_slot(store):
    store.submit_batch(
        [new_job(f"p{i}") for i in range(3)] + [new_job("t", workflow_key="tiktok_live_helper")]
    )
    caps = {"content_pipeline": 2, "tiktok_live_helper": 4}
    claim = store.claim(caps, limit=10, lease=LEASE)
    assert len(claim.jobs) == 3 and claim.full == {"content_pipeline"}
    again = store.claim(caps, limit=10, lease=LEASE)
    assert again.jobs == [] and again.full == {"content_pipeline"}, "still full: nothing was freed"
    assert store.claim({**caps, "content_pipeline": 4}, limit=10, lease=LEASE).full == set()


def test_a_claim_reports_which_watched_jobs_ended_with_status_and_error_code(store):
    store.submit_batch([new_job("done"), new_job("cancelled"), new_job("pending"), new_job("other")])
    claimed = store.claim_for_dispatch({"content_pipeline": 4}, limit=10, lease=LEASE)
    store.mark_running(next(job for job in claimed if job["job_id"] == "done"), "7")
    result = {"job_id": "done", "execution_id": "7", "status": "failed", "outputs": None, "started_at": None}
    store.record_result(
        {**result, "completed_at": None, "error_code": "BAD", "error_message": "x", "audit": []}
    )
    store.cancel("cancelled", reason=None, actor="flowbiz")
    store.cancel("other", reason=None, actor="flowbiz")
    watch = ["done", "cancelled", "pending", "missing"]
    assert store.claim({"content_pipeline": 4}, limit=10, lease=LEASE, watch=watch).ended == {
        "done": ("failed", "BAD"),
        "cancelled": ("cancelled", "CANCELLED"),
    }
    assert store.claim({"content_pipeline": 4}, limit=10, lease=LEASE).ended == {}


def test_a_result_claims_its_callback_for_the_caller_in_its_own_transaction(store):
    """With a lease the result's callback is the caller's to send at once: the outbox does not hand
    it to anyone else until that lease runs out (a crash mid-attempt), as a claim would."""
    store.submit_batch([new_job("now"), new_job("later")])
    for job in store.claim_for_dispatch({"content_pipeline": 4}, limit=10, lease=LEASE):
        store.mark_running(job, f"exec-{job['job_id']}")
    result = {"status": "success", "outputs": {"n": 1}, "error_code": None, "error_message": None}
    result |= {"audit": [], "started_at": None, "completed_at": None}
    recorded = store.record_result({**result, "job_id": "now", "execution_id": "exec-now"}, lease=LEASE)
    assert (recorded.outcome, recorded.job["status"], recorded.job["workflow_key"]) == (
        "finished",
        "success",
        "content_pipeline",
    )
    assert (recorded.delivery["job_id"], recorded.delivery["attempts"]) == ("now", 1)
    assert json.loads(recorded.delivery["payload"])["status"] == "success"
    assert (
        store.record_result({**result, "job_id": "later", "execution_id": "exec-later"}).delivery["attempts"]
        == 0
    )
    assert [d["job_id"] for d in store.claim_deliveries(limit=10, lease=LEASE)] == ["later"]
    store.delivery_result(recorded.delivery, state="delivered", status_code=200, error=None)
    attempts = [
        e["details"]["attempt"] for e in store.audit_for("now") if e["action"] == "callback_delivered"
    ]
    assert attempts == [1]
    assert store.record_result({**result, "job_id": "now", "execution_id": "exec-now"}).outcome == "late"


def test_workflow_without_a_cap_is_not_dispatched(store):
    store.submit_batch([new_job("a")])
    assert store.claim_for_dispatch({}, limit=10, lease=LEASE) == []


def test_expired_lease_is_claimed_again_after_a_crash(store):
    store.submit_batch([new_job("a")])
    assert len(store.claim_for_dispatch({"content_pipeline": 5}, limit=10, lease=timedelta(seconds=-1))) == 1
    again = store.claim_for_dispatch({"content_pipeline": 5}, limit=10, lease=LEASE)
    assert [j["job_id"] for j in again] == ["a"]
    assert again[0]["dispatch_attempts"] == 2 == store.get_job("a")["dispatch_attempts"]
    redispatched = [e for e in store.audit_for("a") if e["action"] == "redispatch"]
    assert len(redispatched) == 1 and redispatched[0]["details"]["attempt"] == 2, "a re-dispatch is audited"


def test_a_retry_after_a_failed_dispatch_is_no_redispatch(store):
    store.submit_batch([new_job("a")])
    [job] = store.claim_for_dispatch({"content_pipeline": 5}, limit=10, lease=LEASE)
    store.mark_dispatch_failed(job, retry_at=datetime.now(UTC), error="n8n answered HTTP 503")
    assert len(store.claim_for_dispatch({"content_pipeline": 5}, limit=10, lease=LEASE)) == 1
    actions = [e["action"] for e in store.audit_for("a")]
    assert "dispatch_failed" in actions and "redispatch" not in actions


def test_duplicate_job_ids_in_one_batch_make_one_row(store):
    outcomes = store.submit_batch([new_job("same"), new_job("same"), new_job("other")])
    assert [o.created for o in outcomes] == [True, False, True]
    assert len(store.list_jobs()) == 2


def test_a_batch_with_a_stored_job_returns_it_and_stores_the_others_once(store):
    """Intake inserts without reading first (ADR 64); a stored job in the batch makes it run again
    reading first: the stored job comes back as it was, every new one is stored with one audit row."""
    store.submit_batch([new_job("old", priority=2)])
    outcomes = store.submit_batch([new_job("new-1"), new_job("old", priority=9), new_job("new-2")])
    assert [o.created for o in outcomes] == [True, False, True]
    assert outcomes[1].job["priority"] == 2 and store.get_job("old")["priority"] == 2
    for job_id in ("old", "new-1", "new-2"):
        assert [e["action"] for e in store.audit_for(job_id)] == ["accepted"]
    assert len(store.list_jobs()) == 3


def test_a_driver_error_in_intake_rolls_the_batch_back_as_sqlalchemys_error(store):
    """Intake's commit runs on the driver's cursor (ADR 64): its errors still leave as SQLAlchemy's
    (an OperationalError is a 503 STORE_UNAVAILABLE), nothing of the batch stays, and the connection
    goes back to the pool usable."""
    with store._write() as conn:
        conn.exec_driver_sql("ALTER TABLE audit_events RENAME TO audit_gone")
    with pytest.raises(sa.exc.DBAPIError) as caught:
        store.submit_batch([new_job("a")])  # the job row is inserted, then its audit row fails
    assert isinstance(caught.value.orig, store._writer.dialect.loaded_dbapi.Error)
    assert "parameters" not in str(caught.value) and "flowbiz" not in str(caught.value)  # no values
    if store.url.startswith("sqlite"):
        assert isinstance(caught.value, sa.exc.OperationalError)
    with store._write() as conn:
        conn.exec_driver_sql("ALTER TABLE audit_gone RENAME TO audit_events")
    assert store.get_job("a") is None
    assert [o.created for o in store.submit_batch([new_job("a")])] == [True]


def test_times_come_back_aware_utc(store):
    store.submit_batch([new_job("a")])
    accepted = store.get_job("a")["accepted_at"]
    assert accepted.tzinfo is not None and accepted.utcoffset() == timedelta(0)
    with pytest.raises(ValueError, match="naive datetime"):  # bound by the column's type, then refused
        store.submit_batch([NewJob({**new_job("b").row, "accepted_at": datetime.now()})])


def test_intake_binds_rows_as_sqlalchemy_would(store):
    """Intake binds its rows itself (n8nctl/store/prebound.py): what it stores is what SQLAlchemy's own
    insert stores, value for value, on both engines; on SQLite times are sqlite.DATETIME's text."""
    row = {
        **EMPTY_JOB,
        **new_job("prebound").row,
        "inputs": {"text": "h\u00e9llo", "n": [1, 2.5, None, True]},
        "metadata": {"user_id": "u-1"},
        "status": "pending",
        "updated_at": datetime.now(UTC),
        "next_dispatch_at": datetime.now(UTC),
        "dispatch_attempts": 0,
    }
    with store._write() as conn:
        assert JOB_INSERT.execute(conn, [row]) == 1
        conn.execute(jobs.insert(), [{**row, "job_id": "sqlalchemy"}])
        event = audit_row(row, "accepted", source="bridge", details={"priority": 5})
        AUDIT_INSERT.execute(conn, [event])
        conn.execute(audit_events.insert(), [{**event, "job_id": "sqlalchemy"}])
    with store._read() as conn:
        stored = {r[0]: r[1:] for r in conn.exec_driver_sql("SELECT * FROM jobs")}
        events = {r[1]: r[2:] for r in conn.exec_driver_sql("SELECT * FROM audit_events")}
        dialect = conn.dialect
    assert stored["prebound"] == stored["sqlalchemy"]
    assert events["prebound"] == events["sqlalchemy"]
    if dialect.name == "sqlite":
        stamp = sa.dialects.sqlite.DATETIME().bind_processor(dialect)
        column = [c.name for c in jobs.columns].index("accepted_at") - 1
        assert stored["prebound"][column] == stamp(row["accepted_at"].replace(tzinfo=None))
    assert store.get_job("prebound")["inputs"] == row["inputs"]


def test_audit_since_reads_in_batches(store):
    store.submit_batch([new_job(f"j{i}") for i in range(25)])
    events = list(store.audit_since(datetime.now(UTC) - timedelta(minutes=1), batch=10))
    assert len(events) == 25 and len({e["id"] for e in events}) == 25
    assert list(store.audit_since(datetime.now(UTC) + timedelta(minutes=1))) == []


def test_jobs_table_rejects_unknown_status(store):
    store.submit_batch([new_job("a")])
    with pytest.raises(sa.exc.IntegrityError), store._write() as conn:
        conn.execute(jobs.update().values(status="done"))


def test_backlog_of_a_full_workflow_does_not_hide_others(store):
    store.submit_batch([new_job(f"busy-{i}", priority=10) for i in range(300)])
    store.submit_batch([new_job("other", workflow_key="tiktok_live_helper", priority=1)])
    caps = {"content_pipeline": 1, "tiktok_live_helper": 1}
    assert len(store.claim_for_dispatch(caps, limit=10, lease=LEASE)) == 2
    store.submit_batch([new_job("other-2", workflow_key="tiktok_live_helper", priority=1)])
    assert (
        store.claim_for_dispatch({**caps, "tiktok_live_helper": 2}, limit=10, lease=LEASE)[0]["job_id"]
        == "other-2"
    )


def test_sqlite_files_are_private(tmp_path):
    import stat

    store = Store(f"sqlite:///{tmp_path / 'state' / 'bridge.db'}")
    store.migrate()
    store.submit_batch([new_job("a")])
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700
    for name in ("bridge.db", "bridge.db-wal"):
        assert stat.S_IMODE((tmp_path / "state" / name).stat().st_mode) == 0o600, name
    store.close()


def test_claims_skip_killed_workflows_whatever_the_caller_asks(store):
    """The switch is read in the claim's transaction: a stale cache in a bridge cannot dispatch."""
    store.submit_batch([new_job("a", workflow_key="content_pipeline"), new_job("b", workflow_key="tiktok")])
    caps = {"content_pipeline": 4, "tiktok": 4}
    store.set_switch("tiktok", killed=True, reason="incident", actor="ops")
    assert [job["job_id"] for job in store.claim_for_dispatch(caps, limit=10, lease=LEASE)] == ["a"]
    store.set_switch("*", killed=True, reason="incident", actor="ops")
    store.submit_batch([new_job("c", workflow_key="content_pipeline")])
    assert store.claim_for_dispatch(caps, limit=10, lease=LEASE) == []
    store.set_switch("*", killed=False, reason=None, actor="ops")
    store.set_switch("tiktok", killed=False, reason=None, actor="ops")
    assert {job["job_id"] for job in store.claim_for_dispatch(caps, limit=10, lease=LEASE)} == {"b", "c"}


def test_fail_active_ends_only_the_asked_jobs_and_queues_their_callbacks(store):
    store.submit_batch([new_job("p1"), new_job("r1"), new_job("other", workflow_key="tiktok")])
    running = store.claim_for_dispatch({"content_pipeline": 1}, limit=1, lease=LEASE)[0]
    store.mark_running(running, "exec-1")
    failed = store.fail_active(["content_pipeline"], error_code="WORKFLOW_KILLED", error_message="killed")
    assert {job["job_id"]: job["status"] for job in failed} == {
        running["job_id"]: "running",
        ({"p1", "r1"} - {running["job_id"]}).pop(): "pending",
    }
    assert store.get_job("other")["status"] == "pending"
    assert store.get_job("p1")["error_code"] == store.get_job("r1")["error_code"] == "WORKFLOW_KILLED"
    assert {d["job_id"] for d in store.claim_deliveries(limit=10, lease=LEASE)} == {"p1", "r1"}
    assert store.fail_active(["content_pipeline"], error_code="WORKFLOW_KILLED", error_message="x") == []


def test_a_result_before_the_dispatch_answer_keeps_the_job_and_still_audits_the_dispatch(store):
    """n8n may post a job's result before the bridge records n8n's answer to the dispatch."""
    store.submit_batch([new_job("fast")])
    claimed = store.claim_for_dispatch({"content_pipeline": 1}, limit=1, lease=LEASE)[0]
    result = {"job_id": "fast", "execution_id": "exec-7", "status": "success", "outputs": {"n": 1}}
    result |= {"error_code": None, "error_message": None, "audit": [], "started_at": None}
    assert store.record_result({**result, "completed_at": None}).outcome == "finished"
    store.mark_running(claimed, "exec-7")
    job = store.get_job("fast")
    assert (job["status"], job["execution_id"]) == ("success", "exec-7"), "the result stands"
    dispatched = [e for e in store.audit_for("fast") if e["action"] == "dispatched"]
    assert [(e["status"], e["details"]) for e in dispatched] == [
        ("success", {"execution_id": "exec-7", "job_already": "success"})
    ]


# -- two bridge processes on one database --------------------------------------------------------------


def test_concurrent_submissions_of_one_job_id_make_one_job(store, replica):
    """Batches from two processes race on the primary key: one creates, every other sees the stored job."""
    for round_ in range(10):
        job_id = f"dup-{round_}"
        calls = [
            partial(s.submit_batch, [new_job(f"own-{round_}-{i}"), new_job(job_id)])
            for i, s in enumerate([store, replica] * 4)
        ]
        outcomes = [batch[1] for batch in together(calls)]
        assert sum(o.created for o in outcomes) == 1
        assert {o.job["job_id"] for o in outcomes} == {job_id}
        assert all(o.job["request_hash"] == "h" and o.job["status"] == "pending" for o in outcomes)
        assert count(store, audit_events, audit_events.c.job_id == job_id) == 1
    assert count(store, jobs) == 10 * 9


def test_overlapping_batches_in_opposite_orders_both_succeed(store, replica):
    for round_ in range(10):
        ids = [f"r{round_}-{i}" for i in range(20)]
        forward, backward = together(
            [
                partial(store.submit_batch, [new_job(i) for i in ids]),
                partial(replica.submit_batch, [new_job(i) for i in reversed(ids)]),
            ]
        )
        created = [o.job["job_id"] for o in forward + backward if o.created]
        assert sorted(created) == sorted(ids)
    assert count(store, audit_events) == 10 * 20


def test_two_processes_never_claim_the_same_job(store, replica):
    store.submit_batch([new_job(f"j{i}") for i in range(200)])
    claimed: list[str] = []

    def drain(s: Store) -> list[str]:
        mine: list[str] = []
        while batch := s.claim_for_dispatch({"content_pipeline": 1000}, limit=7, lease=LEASE):
            mine += [job["job_id"] for job in batch]
        return mine

    for ids in together([lambda: drain(store), lambda: drain(replica)] * 3):
        claimed += ids
    assert len(claimed) == len(set(claimed)) == 200
    assert count(store, jobs, jobs.c.dispatch_attempts == 1) == 200


def test_concurrent_claims_respect_the_cap_across_processes(store, replica):
    store.submit_batch([new_job(f"j{i}") for i in range(50)])
    caps = {"content_pipeline": 5}
    results = together(
        [lambda s=s: s.claim_for_dispatch(caps, limit=5, lease=LEASE) for s in [store, replica] * 4]
    )
    assert sum(len(batch) for batch in results) == 5


def test_two_processes_never_claim_the_same_delivery(store, replica):
    store.submit_batch([new_job(f"j{i}") for i in range(60)])
    assert len(store.fail_active(None, error_code="WORKFLOW_KILLED", error_message="killed")) == 60
    results = together([lambda s=s: s.claim_deliveries(limit=60, lease=LEASE) for s in [store, replica] * 3])
    claimed = [d["job_id"] for batch in results for d in batch]
    assert len(claimed) == len(set(claimed)) == 60
    assert count(store, deliveries, deliveries.c.attempts == 1) == 60


def test_concurrent_expiry_fails_each_job_once(store, replica):
    store.submit_batch([new_job(f"j{i}", offset=-400) for i in range(40)])
    failed = together([store.expire_overdue, replica.expire_overdue, store.expire_overdue])
    ids = [job["job_id"] for batch in failed for job in batch]
    assert len(ids) == len(set(ids)) == 40
    assert count(store, deliveries) == 40
    assert count(store, jobs, jobs.c.error_code == "TIMEOUT") == 40


def test_migrations_run_together_migrate_once(store_url):
    """`n8nctl bridge migrate` from two hosts (or beside `up`) must not race on CREATE TABLE: one
    migrates, the others wait on the lock and find the schema at head. Separate processes, as in
    production (alembic's migration context is per process)."""
    code = "import sys; from n8nctl.store import Store; print(Store(sys.argv[1]).migrate()[0])"
    replicas = [
        subprocess.Popen(
            [sys.executable, "-c", code, store_url], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(4)
    ]
    outputs = [p.communicate(timeout=60) for p in replicas]
    assert [p.returncode for p in replicas] == [0] * 4, [err.decode()[-500:] for _, err in outputs]
    before = [out.decode().strip() for out, _ in outputs]
    assert sorted(before) == sorted(["None", *[migrations.head()] * 3]), "exactly one of them migrated"
    store = Store(store_url)
    with store._writer.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all() == ["0002"]
    store.close()


def test_concurrent_kills_of_one_workflow_keep_one_switch(store, replica):
    together(
        [
            lambda s=s, i=i: s.set_switch("tiktok", killed=True, reason=f"incident {i}", actor="ops")
            for i, s in enumerate([store, replica] * 4)
        ]
    )
    assert store.switch_states()["tiktok"]["killed"] is True
    assert count(store, audit_events, audit_events.c.action == "killed") == 8


def _running(store: Store, count_: int) -> None:
    """`count_` content_pipeline jobs dispatched a minute ago, running as executions e0, e1, ..."""
    store.submit_batch([new_job(f"r{i}", offset=-60) for i in range(count_)])
    for job in store.claim_for_dispatch({"content_pipeline": 1000}, limit=count_, lease=LEASE):
        store.mark_running(job, f"e{job['job_id'][1:]}")


def test_two_processes_never_reconcile_the_same_job(store, replica):
    _running(store, 60)
    now = datetime.now(UTC)
    results = together(
        [lambda s=s: s.claim_overdue({}, default=now, limit=25, lease=LEASE) for s in [store, replica] * 3]
    )
    claimed = [job["job_id"] for batch in results for job in batch]
    assert len(claimed) == len(set(claimed)) == 60
    assert store.claim_overdue({}, default=now, limit=100, lease=LEASE) == [], "the lease holds them"


def test_reconcile_claims_only_overdue_running_jobs_with_an_execution(store):
    _running(store, 2)
    store.submit_batch([new_job("pending")])
    cutoff = datetime.now(UTC) - timedelta(seconds=30)
    assert store.claim_overdue({"content_pipeline": cutoff}, default=cutoff, limit=10, lease=LEASE) == []
    due = store.claim_overdue({"content_pipeline": datetime.now(UTC)}, default=cutoff, limit=10, lease=LEASE)
    assert sorted(job["job_id"] for job in due) == ["r0", "r1"]

    assert store.record_check(due[0], "running", ended=False) is False
    assert store.get_job(due[0]["job_id"])["status"] == "running"
    assert store.record_check(due[1], "crashed", ended=True) is True
    failed = store.get_job(due[1]["job_id"])
    assert (failed["status"], failed["error_code"], failed["lease_until"]) == ("failed", "RESULT_LOST", None)
    assert (
        failed["error_message"]
        == f"n8n execution {due[1]['execution_id']} ended (crashed) and no result reached the bridge"
    )
    assert failed["delivery"]["state"] == "pending"
    actions = [event["action"] for event in store.audit_for(due[1]["job_id"])]
    assert actions[-2:] == ["reconcile_ended", "failed"]
    assert store.record_check(due[1], "crashed", ended=True) is False, "a final status never changes"
