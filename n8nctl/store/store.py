"""Store: every read and write of bridge state, over SQLAlchemy Core, synchronous.

The async bridge calls these methods in worker threads. Each method is one transaction, so a crash
between two methods leaves a consistent state that the workers pick up again at start.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from n8nctl.contract import callback_body
from n8nctl.signing import new_message_id
from n8nctl.store.schema import Row, audit_events, deliveries, jobs, switches

ACTIVE = ("pending", "running")
GLOBAL_SWITCH = "*"
EMPTY_JOB: Row = {column.name: None for column in jobs.c}
# PostgreSQL advisory lock keys (transaction-scoped): what SQLite's single writer gives for free.
MIGRATE_LOCK = 0x6E38_6E01
CLAIM_LOCK = 0x6E38_6E02


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class NewJob:
    row: Row
    """Values for the jobs table (without bookkeeping columns)."""


@dataclass(frozen=True)
class SubmitOutcome:
    created: bool
    job: Row


def _engine(url: str, *, immediate: bool) -> Engine:
    if not url.startswith("sqlite"):
        return sa.create_engine(url, pool_pre_ping=True, pool_size=8, max_overflow=32)
    path = url.split("///", 1)[1] if "///" in url else ""
    if path and path != ":memory:":
        # Jobs carry business inputs: the state folder and database are private to the bridge's user
        # (SQLite gives the -wal and -shm files the database file's mode).
        Path(path).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    engine = sa.create_engine(url, pool_size=8, max_overflow=32, connect_args={"check_same_thread": False})

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # transactions are begun explicitly below
        for pragma in ("journal_mode=WAL", "synchronous=FULL", "busy_timeout=10000", "foreign_keys=ON"):
            dbapi_conn.execute(f"PRAGMA {pragma}")

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        # Writers take the lock up front: a deferred transaction that upgrades later fails with
        # SQLITE_BUSY instead of waiting. Readers begin deferred and never block writers under WAL.
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


class Store:
    def __init__(self, url: str) -> None:
        self.url = url
        self._writer = _engine(url, immediate=True)
        self._reader = _engine(url, immediate=False) if url.startswith("sqlite") else self._writer

    def migrate(self) -> None:
        from n8nctl.store.migrations import upgrade

        with self._writer.connect() as conn:
            # Replicas starting together would race on CREATE TABLE: one migrates, the others wait,
            # then find the schema at head (SQLite: BEGIN IMMEDIATE already serializes them).
            _serialize(conn, MIGRATE_LOCK)
            upgrade(conn)
            conn.commit()

    def close(self) -> None:
        self._writer.dispose()
        self._reader.dispose()

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self._writer.begin() as conn:
            yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._reader.connect() as conn:
            yield conn

    def ping(self) -> None:
        with self._read() as conn:
            conn.execute(sa.text("SELECT 1"))

    # -- intake ---------------------------------------------------------------------------------------

    def submit_batch(self, batch: list[NewJob]) -> list[SubmitOutcome]:
        """Insert many new jobs in one transaction (group commit). Existing job_ids are returned as
        stored, so the caller decides between 200 (same request) and 409 (different request).

        INSERT ... ON CONFLICT DO NOTHING, then a re-read of the job_ids it skipped: a job stored by a
        concurrent transaction (another bridge process on PostgreSQL) is a replay, not an error."""
        now = utcnow()
        fresh: dict[str, Row] = {}  # first occurrence of each job_id in the batch
        for item in batch:
            fresh.setdefault(
                item.row["job_id"],
                {
                    **EMPTY_JOB,
                    **item.row,
                    "status": "pending",
                    "updated_at": now,
                    "next_dispatch_at": now,
                    "dispatch_attempts": 0,
                },
            )
        with self._write() as conn:
            insert = _insert(conn, jobs).on_conflict_do_nothing(index_elements=[jobs.c.job_id])
            # One multi-row statement; job_id order so two overlapping batches lock keys in one order
            # (no deadlock on PostgreSQL).
            rows = sorted(fresh.values(), key=lambda row: str(row["job_id"]))
            inserted = set(conn.execute(insert.returning(jobs.c.job_id), rows).scalars())
            skipped = fresh.keys() - inserted  # stored before, maybe a moment ago by another process
            query = sa.select(jobs).where(jobs.c.job_id.in_(skipped))
            stored = {r["job_id"]: dict(r) for r in conn.execute(query).mappings()} if skipped else {}
            created = [row for job_id, row in fresh.items() if job_id in inserted]
            if created:
                conn.execute(
                    audit_events.insert(),
                    [
                        _audit_row(
                            row,
                            "accepted",
                            source="bridge",
                            actor=row["client_id"],
                            status="pending",
                            details={"priority": row["priority"], "timeout_seconds": row["timeout_seconds"]},
                        )
                        for row in created
                    ],
                )
        outcomes: list[SubmitOutcome] = []
        for item in batch:
            job_id = item.row["job_id"]
            if job_id in inserted:
                inserted.discard(job_id)  # a repeat later in this batch is a replay of this one
                outcomes.append(SubmitOutcome(True, fresh[job_id]))
                stored[job_id] = fresh[job_id]
            else:
                outcomes.append(SubmitOutcome(False, stored[job_id]))
        return outcomes

    # -- reads ----------------------------------------------------------------------------------------

    def get_job(self, job_id: str) -> Row | None:
        with self._read() as conn:
            job = conn.execute(sa.select(jobs).where(jobs.c.job_id == job_id)).mappings().first()
            if job is None:
                return None
            delivery = (
                conn.execute(sa.select(deliveries).where(deliveries.c.job_id == job_id)).mappings().first()
            )
        return {**job, "delivery": dict(delivery) if delivery else None}

    def list_jobs(
        self,
        *,
        status: str | None = None,
        workflow_key: str | None = None,
        client_id: str | None = None,
        limit: int = 50,
    ) -> list[Row]:
        query = sa.select(jobs).order_by(jobs.c.accepted_at.desc()).limit(limit)
        for column, value in (
            (jobs.c.status, status),
            (jobs.c.workflow_key, workflow_key),
            (jobs.c.client_id, client_id),
        ):
            if value is not None:
                query = query.where(column == value)
        with self._read() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    def audit_for(self, job_id: str) -> list[Row]:
        query = sa.select(audit_events).where(audit_events.c.job_id == job_id).order_by(audit_events.c.id)
        with self._read() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    def audit_since(self, since: datetime, *, batch: int = 1000) -> Iterator[Row]:
        """Every audit event at or after `since`, oldest first, read in batches (for export)."""
        last_id = 0
        while True:
            query = (
                sa.select(audit_events)
                .where(audit_events.c.at >= since, audit_events.c.id > last_id)
                .order_by(audit_events.c.id)
                .limit(batch)
            )
            with self._read() as conn:
                rows = [dict(r) for r in conn.execute(query).mappings()]
            yield from rows
            if len(rows) < batch:
                return
            last_id = rows[-1]["id"]

    def queue_depth(self) -> dict[str, int]:
        query = (
            sa.select(jobs.c.status, sa.func.count()).where(jobs.c.status.in_(ACTIVE)).group_by(jobs.c.status)
        )
        with self._read() as conn:
            return {status: count for status, count in conn.execute(query).all()}

    # -- dispatch -------------------------------------------------------------------------------------

    def claim_for_dispatch(self, caps: dict[str, int], *, limit: int, lease: timedelta) -> list[Row]:
        """Lease pending jobs, most urgent first, without exceeding any workflow's concurrency cap.

        A job counts against its workflow's cap while it is leased or running. Claims are
        compare-and-set on the lease, so two bridge processes never dispatch the same job, and they
        take turns (on PostgreSQL an advisory lock), so together they never exceed a cap."""
        now = utcnow()
        in_flight = (
            sa.select(jobs.c.workflow_key, sa.func.count())
            .where(
                sa.or_(
                    jobs.c.status == "running", sa.and_(jobs.c.status == "pending", jobs.c.lease_until > now)
                )
            )
            .group_by(jobs.c.workflow_key)
        )
        claimed: list[Row] = []
        with self._write() as conn:
            _serialize(conn, CLAIM_LOCK)
            # The kill-switch is read here, in the claim's transaction: once `n8nctl kill` has
            # committed, no bridge process claims a job of that workflow (or any, for the global switch).
            killed = set(conn.execute(sa.select(switches.c.workflow_key).where(switches.c.killed)).scalars())
            if GLOBAL_SWITCH in killed:
                return []
            caps = {key: cap for key, cap in caps.items() if key not in killed}
            busy: dict[str, int] = {key: count for key, count in conn.execute(in_flight).all()}
            # Each workflow's most urgent jobs up to its free slots (so a backlog of one never hides
            # another), then the most urgent of those overall.
            candidates: list[Row] = []
            for key, cap in caps.items():
                if busy.get(key, 0) < cap:
                    query = (
                        sa.select(jobs)
                        .where(
                            jobs.c.status == "pending",
                            jobs.c.workflow_key == key,
                            jobs.c.next_dispatch_at <= now,
                            _lease_free(jobs, now),
                        )
                        .order_by(jobs.c.priority.desc(), jobs.c.accepted_at)
                        .limit(cap - busy.get(key, 0))
                    )
                    candidates += [dict(row) for row in conn.execute(query).mappings()]
            candidates.sort(key=lambda job: (-job["priority"], job["accepted_at"]))
            for job in candidates[:limit]:
                # re-checked under the row lock: a cancel committed since the select wins
                if conn.execute(
                    jobs.update()
                    .where(jobs.c.job_id == job["job_id"], jobs.c.status == "pending", _lease_free(jobs, now))
                    .values(lease_until=now + lease, dispatch_attempts=jobs.c.dispatch_attempts + 1)
                ).rowcount:
                    claimed.append({**job, "dispatch_attempts": job["dispatch_attempts"] + 1})
        return claimed

    def mark_running(self, job: Row, execution_id: str | None) -> None:
        now = utcnow()
        with self._write() as conn:
            updated = conn.execute(
                jobs.update()
                .where(jobs.c.job_id == job["job_id"], jobs.c.status == "pending")
                .values(
                    error_message=None,
                    status="running",
                    dispatched_at=now,
                    started_at=now,
                    lease_until=None,
                    execution_id=sa.func.coalesce(jobs.c.execution_id, execution_id),
                    updated_at=now,
                )
            ).rowcount
            if updated:
                _audit(
                    conn,
                    job,
                    "dispatched",
                    source="bridge",
                    status="running",
                    details={"execution_id": execution_id},
                )

    def mark_dispatch_failed(self, job: Row, *, retry_at: datetime, error: str) -> None:
        with self._write() as conn:
            updated = conn.execute(
                jobs.update()
                .where(jobs.c.job_id == job["job_id"], jobs.c.status == "pending")
                .values(lease_until=None, next_dispatch_at=retry_at, error_message=error, updated_at=utcnow())
            ).rowcount
            if updated:
                _audit(
                    conn,
                    job,
                    "dispatch_failed",
                    source="bridge",
                    status="pending",
                    details={"error": error, "retry_at": retry_at.isoformat()},
                )

    # -- results, cancel, deadlines -------------------------------------------------------------------

    def record_result(self, result: Row) -> str:
        """Apply n8n's result. Returns 'finished', 'late' (job already ended: recorded only) or 'unknown'."""
        now = utcnow()
        with self._write() as conn:
            job = conn.execute(sa.select(jobs).where(jobs.c.job_id == result["job_id"])).mappings().first()
            if job is None:
                return "unknown"
            for entry in result["audit"]:
                _audit(
                    conn,
                    job,
                    entry["action"],
                    source="n8n",
                    node_name=entry.get("node_name"),
                    details=entry.get("details"),
                    duration_ms=entry.get("duration_ms"),
                    at=entry.get("timestamp") or now,
                )
            finished = job["status"] in ACTIVE and _finish(
                conn,
                dict(job),
                now,
                status=result["status"],
                outputs=result["outputs"],
                error_code=result["error_code"],
                error_message=result["error_message"],
                execution_id=result["execution_id"] or job["execution_id"],
                started_at=result["started_at"] or job["started_at"] or now,
                completed_at=result["completed_at"] or now,
                source="n8n",
            )
            if not finished:
                _audit(
                    conn,
                    job,
                    "late_result",
                    source="n8n",
                    status=job["status"],
                    details={
                        "reported_status": result["status"],
                        "execution_id": result["execution_id"],
                        "error_code": result["error_code"],
                    },
                )
                return "late"
            return "finished"

    def record(self, job: Row, action: str, **fields: Any) -> None:
        """Add one audit entry to a job's trail (fields as in the audit table)."""
        with self._write() as conn:
            _audit(conn, job, action, **fields)

    def cancel(self, job_id: str, *, reason: str | None, actor: str) -> tuple[bool, Row | None]:
        """Cancel an active job. Returns (changed, job); no callback is sent for a cancelled job."""
        now = utcnow()
        with self._write() as conn:
            job = conn.execute(sa.select(jobs).where(jobs.c.job_id == job_id)).mappings().first()
            if job is None or job["status"] not in ACTIVE:
                return False, dict(job) if job else None
            values = {
                "status": "cancelled",
                "completed_at": now,
                "updated_at": now,
                "lease_until": None,
                "error_code": "CANCELLED",
                "error_message": reason or "cancelled by client",
            }
            if not conn.execute(
                jobs.update().where(jobs.c.job_id == job_id, jobs.c.status.in_(ACTIVE)).values(values)
            ).rowcount:
                return False, dict(job)
            _audit(
                conn,
                job,
                "cancelled",
                source="bridge",
                actor=actor,
                status="cancelled",
                details={"reason": reason},
            )
            return True, {**job, **values}

    def expire_overdue(self) -> list[Row]:
        """Fail every active job past its deadline with TIMEOUT and queue its callback."""

        def message(job: Row) -> str:
            # FlowBiz sees the cause, not n8n's address or answer: those are in the audit trail.
            never_ran = job["status"] == "pending"
            why = "never dispatched: n8n did not accept it" if never_ran else "no result before the deadline"
            return f"job exceeded timeout_seconds={job['timeout_seconds']}: {why}"

        overdue = sa.and_(jobs.c.status.in_(ACTIVE), jobs.c.deadline_at <= utcnow())
        return self._fail(overdue, "TIMEOUT", message, source="bridge")

    def fail_active(
        self,
        workflow_keys: Collection[str] | None,
        *,
        statuses: Collection[str] = ACTIVE,
        error_code: str,
        error_message: str,
    ) -> list[Row]:
        """Fail the jobs in `statuses` of these workflows (None: all) and queue their callbacks.

        The kill-switch's way to end jobs it will not run."""
        condition: sa.ColumnElement[bool] = jobs.c.status.in_([s for s in statuses if s in ACTIVE])
        if workflow_keys is not None:
            condition = sa.and_(condition, jobs.c.workflow_key.in_(list(workflow_keys)))
        return self._fail(condition, error_code, lambda job: error_message, source="operator")

    def _fail(
        self, condition: Any, error_code: str, message: Callable[[Row], str], *, source: str
    ) -> list[Row]:
        """Fail the active jobs matching `condition`, queue their callbacks; returns them as they were."""
        now = utcnow()
        failed = []
        with self._write() as conn:
            # job_id order: two processes failing overlapping sets lock rows in one order
            for job in (
                conn.execute(sa.select(jobs).where(condition).order_by(jobs.c.job_id)).mappings().all()
            ):
                if _finish(
                    conn,
                    dict(job),
                    now,
                    status="failed",
                    outputs=None,
                    error_code=error_code,
                    error_message=message(dict(job)),
                    execution_id=job["execution_id"],
                    started_at=job["started_at"],
                    completed_at=now,
                    source=source,
                ):
                    failed.append(dict(job))
        return failed

    # -- callback outbox ------------------------------------------------------------------------------

    def claim_deliveries(self, *, limit: int, lease: timedelta) -> list[Row]:
        now = utcnow()
        with self._write() as conn:
            due = (
                conn.execute(
                    sa.select(deliveries)
                    .where(
                        deliveries.c.state == "pending",
                        deliveries.c.next_attempt_at <= now,
                        _lease_free(deliveries, now),
                    )
                    .order_by(deliveries.c.next_attempt_at)
                    .limit(limit)
                    # PostgreSQL: another process's claim holds these rows: take the next ones.
                    # SQLite has one writer at a time and ignores the clause.
                    .with_for_update(skip_locked=True)
                )
                .mappings()
                .all()
            )
            for row in due:
                conn.execute(
                    deliveries.update()
                    .where(deliveries.c.id == row["id"])
                    .values(lease_until=now + lease, attempts=deliveries.c.attempts + 1)
                )
        return [{**row, "attempts": row["attempts"] + 1} for row in due]

    def delivery_result(
        self,
        delivery: Row,
        *,
        state: str,
        status_code: int | None,
        error: str | None,
        retry_at: datetime | None = None,
    ) -> None:
        """Record one attempt: `state` is delivered, stopped, dead, or pending (with retry_at)."""
        now = utcnow()
        values: Row = {
            "state": state,
            "lease_until": None,
            "last_status_code": status_code,
            "last_error": error,
        }
        if state == "delivered":
            values["delivered_at"] = now
        if retry_at is not None:
            values["next_attempt_at"] = retry_at
        with self._write() as conn:
            conn.execute(deliveries.update().where(deliveries.c.id == delivery["id"]).values(values))
            job = conn.execute(sa.select(jobs).where(jobs.c.job_id == delivery["job_id"])).mappings().one()
            _audit(
                conn,
                job,
                f"callback_{state}",
                source="bridge",
                status=job["status"],
                details={
                    "attempt": delivery["attempts"],
                    "status_code": status_code,
                    "error": error,
                    "webhook_id": delivery["message_id"],
                },
            )

    def redeliver(self, *, job_id: str | None = None, all_dead: bool = False, actor: str) -> list[str]:
        """Queue delivery again (same webhook-id): one job's callback, or every dead letter."""
        now = utcnow()
        query = sa.select(deliveries)
        if job_id is not None:
            query = query.where(deliveries.c.job_id == job_id)
        elif all_dead:
            query = query.where(deliveries.c.state == "dead")
        else:
            raise ValueError("name a job_id or all_dead")
        with self._write() as conn:
            rows = conn.execute(query).mappings().all()
            for row in rows:
                conn.execute(
                    deliveries.update()
                    .where(deliveries.c.id == row["id"])
                    .values(state="pending", attempts=0, next_attempt_at=now, lease_until=None)
                )
                job = conn.execute(sa.select(jobs).where(jobs.c.job_id == row["job_id"])).mappings().one()
                _audit(
                    conn,
                    job,
                    "callback_redeliver",
                    source="operator",
                    actor=actor,
                    status=job["status"],
                    details={"previous_state": row["state"], "webhook_id": row["message_id"]},
                )
        return [row["job_id"] for row in rows]

    # -- kill switches --------------------------------------------------------------------------------

    def switch_states(self) -> dict[str, Row]:
        with self._read() as conn:
            return {r["workflow_key"]: dict(r) for r in conn.execute(sa.select(switches)).mappings()}

    def set_switch(self, workflow_key: str, *, killed: bool, reason: str | None, actor: str) -> None:
        """Turn a kill-switch on or off ('*': the global one), audited with who and why."""
        values = {"killed": killed, "reason": reason, "actor": actor, "changed_at": utcnow()}
        with self._write() as conn:
            # an upsert: two operators flipping one switch at once must not collide on the key
            conn.execute(
                _insert(conn, switches)
                .values(workflow_key=workflow_key, **values)
                .on_conflict_do_update(index_elements=[switches.c.workflow_key], set_=values)
            )
            _operator_event(conn, workflow_key, "killed" if killed else "revived", actor, {"reason": reason})

    def record_operator_event(self, workflow_key: str, action: str, *, actor: str, details: Any) -> None:
        """An audit event of an operator action on a workflow ('*': all), not tied to one job."""
        with self._write() as conn:
            _operator_event(conn, workflow_key, action, actor, details)


def _insert(conn: Connection, table: sa.Table) -> Any:
    """The dialect's INSERT, for ON CONFLICT (same SQL on SQLite and PostgreSQL)."""
    return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(table)


def _serialize(conn: Connection, key: int) -> None:
    """Hold a PostgreSQL advisory lock until the transaction ends. On SQLite every write transaction
    already holds the database lock (BEGIN IMMEDIATE)."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(key)))


def _lease_free(table: sa.Table, now: datetime) -> sa.ColumnElement[bool]:
    return sa.or_(table.c.lease_until.is_(None), table.c.lease_until <= now)


def _audit_row(
    job: Any,
    action: str,
    *,
    source: str,
    actor: str | None = None,
    status: str | None = None,
    node_name: str | None = None,
    details: Any = None,
    duration_ms: int | None = None,
    at: datetime | None = None,
) -> Row:
    return {
        "job_id": job["job_id"],
        "client_id": job["client_id"],
        "workflow_key": job["workflow_key"],
        "at": at or utcnow(),
        "source": source,
        "actor": actor,
        "action": action,
        "status": status,
        "node_name": node_name,
        "details": details,
        "duration_ms": duration_ms,
        "retention_days": job["retention_days"],
    }


def _operator_event(conn: Connection, workflow_key: str, action: str, actor: str, details: Any) -> None:
    conn.execute(
        audit_events.insert().values(
            workflow_key=workflow_key,
            at=utcnow(),
            source="operator",
            actor=actor,
            action=action,
            details=details,
            retention_days=365,
        )
    )


def _audit(conn: Connection, job: Any, action: str, **fields: Any) -> None:
    conn.execute(audit_events.insert(), [_audit_row(job, action, **fields)])


def _finish(
    conn: Connection,
    job: Row,
    now: datetime,
    *,
    status: str,
    outputs: Any,
    error_code: str | None,
    error_message: str | None,
    execution_id: str | None,
    started_at: datetime | None,
    completed_at: datetime,
    source: str,
) -> bool:
    """End an active job and queue its callback to FlowBiz, in the caller's transaction.

    False when the job was no longer active: the update re-checks the status, so a concurrent cancel
    or result on another connection wins cleanly (PostgreSQL re-reads the row under its lock)."""
    values = {
        "status": status,
        "outputs": outputs,
        "error_code": error_code,
        "error_message": error_message,
        "execution_id": execution_id,
        "started_at": started_at,
        "completed_at": completed_at,
        "updated_at": now,
        "lease_until": None,
    }
    updated = conn.execute(
        jobs.update().where(jobs.c.job_id == job["job_id"], jobs.c.status.in_(ACTIVE)).values(values)
    ).rowcount
    if not updated:
        return False
    job.update(values)
    _audit(
        conn,
        job,
        status,
        source=source,
        status=status,
        details={"error_code": error_code, "error_message": error_message} if error_code else None,
    )
    audit = (
        conn.execute(
            sa.select(audit_events).where(audit_events.c.job_id == job["job_id"]).order_by(audit_events.c.id)
        )
        .mappings()
        .all()
    )
    conn.execute(
        deliveries.insert().values(
            job_id=job["job_id"],
            message_id=new_message_id(),
            url=job["callback_url"],
            payload=callback_body(job, [dict(a) for a in audit]),
            state="pending",
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
    )
    return True
