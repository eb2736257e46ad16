"""The store as one consistent snapshot, and back: what `n8nctl backup` and `restore` do to the bridge.

A logical dump (JSON lines, gzip) read in one transaction (SQLite: one WAL read snapshot; PostgreSQL:
REPEATABLE READ), so a backup taken while jobs flow holds no job without its audit and no outbox row
without its job. The same code reads and writes SQLite and PostgreSQL, whichever the bridge uses
(ADR 31). A dump restores at its own schema revision, then migrates to this code's head.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from n8nctl.store.core import ACTIVE, StoreBase, add_audit, finish_job, operator_event, utcnow
from n8nctl.store.schema import UTCDateTime, audit_events, deliveries, jobs, metadata, switches

# parents before children (deliveries reference jobs)
TABLES = (jobs, deliveries, audit_events, switches)
BATCH = 1000
RESTORE_DEADLINE_PASSED = "RESTORE_DEADLINE_PASSED"


class DumpError(Exception):
    """The dump file is not a store dump this code can read."""


@dataclass(frozen=True)
class Requeued:
    requeued: list[str]  # dispatched again (deadline still ahead)
    failed: list[str]  # failed with RESTORE_DEADLINE_PASSED


def _encode(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _decoder(table: sa.Table) -> dict[str, Any]:
    return {c.name: datetime.fromisoformat for c in table.c if isinstance(c.type, UTCDateTime)}


class Snapshot(StoreBase):
    def revision(self) -> str | None:
        with self._read() as conn:
            if not sa.inspect(conn).has_table("alembic_version"):
                return None
            return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()

    def dump(self, path: Path) -> dict[str, int]:
        """Write every row to `path`; returns the row count of each table."""
        counts = {}
        with self._snapshot() as conn, gzip.open(path, "wt", encoding="utf-8") as out:
            revision = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
            out.write(json.dumps({"revision": revision}) + "\n")
            for table in TABLES:
                counts[table.name] = 0
                primary = list(table.primary_key.columns)
                result = conn.execution_options(yield_per=BATCH).execute(sa.select(table).order_by(*primary))
                for row in result.mappings():
                    record = {key: _encode(value) for key, value in row.items()}
                    out.write(json.dumps({"t": table.name, "r": record}, ensure_ascii=False) + "\n")
                    counts[table.name] += 1
        return counts

    def _snapshot(self) -> Any:
        if self._writer.dialect.name == "postgresql":
            conn = self._writer.connect().execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True
            )
        else:
            conn = self._reader.connect()
        return _Transaction(conn)

    def load(self, path: Path) -> dict[str, int]:
        """Replace the whole store with the dump at `path`, in one transaction: the schema at the dump's
        revision, its rows, then migrations to head."""
        from n8nctl.store.migrations import upgrade

        with gzip.open(path, "rt", encoding="utf-8") as lines:
            try:
                revision = json.loads(next(lines))["revision"]
            except (StopIteration, ValueError, KeyError, OSError):
                raise DumpError(f"{path.name} is not a bridge store dump") from None
            counts = dict.fromkeys((t.name for t in TABLES), 0)
            with self._writer.begin() as conn:
                metadata.drop_all(conn)
                conn.execute(sa.text("DROP TABLE IF EXISTS alembic_version"))
                upgrade(conn, revision)
                tables = {t.name: (t, _decoder(t)) for t in TABLES}
                pending: dict[str, list[dict[str, Any]]] = {name: [] for name in tables}
                for line in lines:
                    item = json.loads(line)
                    table, decode = tables[item["t"]]
                    row = {
                        k: decode[k](v) if k in decode and v is not None else v for k, v in item["r"].items()
                    }
                    pending[table.name].append(row)
                    counts[table.name] += 1
                    if len(pending[table.name]) >= BATCH:
                        self._flush(conn, pending)
                self._flush(conn, pending)
                _reset_sequences(conn)
                upgrade(conn, "head")
        return counts

    @staticmethod
    def _flush(conn: Connection, pending: dict[str, list[dict[str, Any]]]) -> None:
        for table in TABLES:  # parents first, whatever order the rows came in
            if pending[table.name]:
                conn.execute(table.insert(), pending[table.name])
                pending[table.name] = []

    def requeue_after_restore(self, backup_id: str, *, actor: str) -> Requeued:
        """Jobs that were pending or running when the backup was taken: dispatched again when their
        deadline is still ahead (at least once, as after a crash), else failed with
        RESTORE_DEADLINE_PASSED and a callback. Each says which in its audit trail."""
        now = utcnow()
        requeued, failed = [], []
        with self._write() as conn:
            active = sa.select(jobs).where(jobs.c.status.in_(ACTIVE)).order_by(jobs.c.job_id)
            for job in [dict(row) for row in conn.execute(active).mappings()]:
                if job["deadline_at"] > now:
                    conn.execute(
                        jobs.update()
                        .where(jobs.c.job_id == job["job_id"])
                        .values(
                            status="pending",
                            lease_until=None,
                            next_dispatch_at=now,
                            execution_id=None,
                            updated_at=now,
                        )
                    )
                    add_audit(
                        conn,
                        job,
                        "requeued_after_restore",
                        source="operator",
                        actor=actor,
                        status="pending",
                        details={
                            "backup_id": backup_id,
                            "previous_status": job["status"],
                            "previous_execution_id": job["execution_id"],
                        },
                    )
                    requeued.append(job["job_id"])
                elif finish_job(
                    conn,
                    job,
                    now,
                    status="failed",
                    outputs=None,
                    error_code=RESTORE_DEADLINE_PASSED,
                    error_message=f"the job was {job['status']} in the restored backup {backup_id}, and "
                    "its deadline passed before the restore",
                    execution_id=job["execution_id"],
                    started_at=job["started_at"],
                    completed_at=now,
                    source="operator",
                ):
                    failed.append(job["job_id"])
        return Requeued(requeued, failed)

    def record_restore(self, action: str, *, actor: str, details: Any) -> None:
        """An operator event of the restore itself (workflow_key '*': it concerns every workflow)."""
        with self._write() as conn:
            operator_event(conn, "*", action, actor, details)


class _Transaction:
    """One read transaction over `conn` for the whole dump, closed on exit."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def __enter__(self) -> Connection:
        self.conn.begin()
        return self.conn

    def __exit__(self, *exc: object) -> None:
        self.conn.rollback()
        self.conn.close()


def _reset_sequences(conn: Connection) -> None:
    """PostgreSQL: the id sequences continue after the loaded rows (SQLite takes max(id) + 1 itself)."""
    if conn.dialect.name != "postgresql":
        return
    for table in (deliveries, audit_events):
        conn.execute(
            sa.text(
                f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "  # noqa: S608 (fixed names)
                f"COALESCE((SELECT MAX(id) FROM {table.name}), 0) + 1, false)"
            )
        )
