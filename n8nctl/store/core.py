"""The store's foundation: engines and transactions, the job row helpers every part shares.

Each public method of the store is one transaction, so a crash between two methods leaves a consistent
state that the workers pick up again at start."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from n8nctl.contract import callback_body
from n8nctl.errors import UnreachableError
from n8nctl.signing import new_message_id
from n8nctl.store.prebound import PreboundInsert
from n8nctl.store.schema import Row, audit_events, deliveries, jobs

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


class StoreBase:
    """Engines and transactions; the parts of the store (jobs, dispatch, outcomes, outbox,
    switches) are mixins over it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._writer = _engine(url, immediate=True)
        self._reader = _engine(url, immediate=False) if url.startswith("sqlite") else self._writer

    def migrate(self) -> tuple[str | None, str]:
        """Upgrade the schema to head; returns the revisions before and after."""
        from n8nctl.store import migrations

        with self._writer.connect() as conn:
            # Two migrations at once would race on CREATE TABLE: one migrates, the other waits, then
            # finds the schema at head (SQLite: BEGIN IMMEDIATE already serializes them).
            serialize(conn, MIGRATE_LOCK)
            before = migrations.current(conn)
            migrations.upgrade(conn)
            conn.commit()
        return before, migrations.head()

    def check_schema(self) -> None:
        """SchemaError unless the database is at this code's head revision (a bridge refuses to serve)."""
        from n8nctl.store import migrations

        with self._read() as conn:
            migrations.check(conn)

    def close(self) -> None:
        self._writer.dispose()
        self._reader.dispose()

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self._writer.begin() as conn:
            yield conn

    @contextmanager
    def _driver_write(self) -> Iterator[Any]:
        """A write transaction straight on the driver: a DB-API cursor, for intake's group commit,
        where SQLAlchemy's Connection costs more CPU than the statements themselves (ADR 64). SQLite
        begins IMMEDIATE as every writer does; a driver error leaves as SQLAlchemy's own (an
        OperationalError is a 503 STORE_UNAVAILABLE, as on every other path)."""
        dialect = self._writer.dialect
        error = dialect.loaded_dbapi.Error
        try:
            raw = self._writer.raw_connection()
        except error as exc:
            raise sa.exc.DBAPIError.instance(None, None, exc, error) from None
        try:
            cursor = raw.cursor()
            if dialect.name == "sqlite":
                cursor.execute("BEGIN IMMEDIATE")
            yield cursor
            raw.commit()
        except error as exc:
            raise sa.exc.DBAPIError.instance(None, None, exc, error) from None
        finally:
            raw.close()  # back to the pool, which rolls back what is left open (its reset on return)

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._reader.connect() as conn:
            yield conn

    def ping(self) -> None:
        with self._read() as conn:
            conn.execute(sa.text("SELECT 1"))


@contextmanager
def answering() -> Iterator[None]:
    """A job store that does not answer, as one line for the operator (never its URL: it may hold a
    password)."""
    from sqlalchemy.exc import OperationalError

    try:
        yield
    except OperationalError:
        raise UnreachableError(
            "the bridge's job store did not answer",
            why="its database is down or refuses the connection (BRIDGE_DATABASE_URL, or the prod "
            "stack's PostgreSQL on POSTGRES_PORT)",
            fix="Check the database server (n8nctl status), then retry.",
        ) from None


def dialect_insert(conn: Connection, table: sa.Table) -> Any:
    """The dialect's INSERT, for ON CONFLICT (same SQL on SQLite and PostgreSQL)."""
    # the dialect's own module: sqlalchemy.dialects.postgresql alone imports every PostgreSQL driver's
    # dialect, which operator commands on SQLite never need
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table)
    from sqlalchemy.dialects import sqlite

    return sqlite.insert(table)


def serialize(conn: Connection, key: int) -> None:
    """Hold a PostgreSQL advisory lock until the transaction ends. On SQLite every write transaction
    already holds the database lock (BEGIN IMMEDIATE)."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(key)))


def lease_free(table: sa.Table, now: datetime | sa.BindParameter[datetime]) -> sa.ColumnElement[bool]:
    return sa.or_(table.c.lease_until.is_(None), table.c.lease_until <= now)


def audit_row(
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


def operator_event(conn: Connection, workflow_key: str, action: str, actor: str, details: Any) -> None:
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


AUDIT_INSERT = PreboundInsert(audit_events, skip=("id",))


def add_audit(conn: Connection, job: Any, action: str, **fields: Any) -> None:
    AUDIT_INSERT.execute(conn, [audit_row(job, action, **fields)])


def finish_job(
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
    lease: timedelta | None = None,
) -> Row | None:
    """End an active job and queue its callback to FlowBiz, in the caller's transaction. Returns
    the delivery queued; with `lease`, already claimed by the caller for its first attempt (as
    `claim_deliveries` would: the result's path delivers at once, without a second transaction).

    None when the job was no longer active: the update re-checks the status, so a concurrent cancel
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
        return None
    job.update(values)
    add_audit(
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
    delivery: Row = {
        "job_id": job["job_id"],
        "message_id": new_message_id(),
        "url": job["callback_url"],
        "payload": callback_body(job, [dict(a) for a in audit]),
        "state": "pending",
        "attempts": 0 if lease is None else 1,
        "next_attempt_at": now,
        "lease_until": None if lease is None else now + lease,
        "created_at": now,
    }
    inserted = conn.execute(deliveries.insert().values(delivery)).inserted_primary_key
    assert inserted is not None
    delivery["id"] = inserted[0]
    return delivery
