"""Intake and reads: jobs, their audit trail, queue depth."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import sqlalchemy as sa

from n8nctl.store.core import (
    ACTIVE,
    AUDIT_INSERT,
    EMPTY_JOB,
    NewJob,
    StoreBase,
    SubmitOutcome,
    audit_row,
    utcnow,
)
from n8nctl.store.prebound import PreboundInsert
from n8nctl.store.schema import Row, audit_events, deliveries, jobs

# The rows of a group commit, sent by the driver (store/prebound.py). A job_id already stored (a
# client's retry, or a concurrent transaction of another bridge process on PostgreSQL) is skipped by
# ON CONFLICT, and makes the batch run again, reading the stored ones first.
JOB_INSERT = PreboundInsert(jobs, ignore_conflict_on="job_id")
BATCH_ATTEMPTS = 5
STORED_IDS = sa.select(jobs.c.job_id).where(jobs.c.job_id.in_(sa.bindparam("ids", expanding=True)))


class _Raced(Exception):
    """One of the batch's job_ids was stored already (before the batch, or by another transaction
    after the batch read them): the batch rolls back to run again."""


class Jobs(StoreBase):
    def submit_batch(self, batch: list[NewJob]) -> list[SubmitOutcome]:
        """Insert many new jobs in one transaction (group commit). Existing job_ids are returned as
        stored, so the caller decides between 200 (same request) and 409 (different request).

        One insert of the batch in job_id order (two overlapping batches lock keys in one order: no
        deadlock on PostgreSQL), with no read before it. A batch with a job stored already (a retry,
        or a concurrent transaction of another bridge process) runs again: one read of its job_ids,
        then the insert of the new ones."""
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
        for attempt in range(1, BATCH_ATTEMPTS + 1):
            try:
                stored = self._insert_new(fresh, read_first=attempt > 1)
                break
            except _Raced:
                if attempt == BATCH_ATTEMPTS:
                    raise RuntimeError(f"job_ids raced with other transactions {attempt} times") from None
        outcomes: list[SubmitOutcome] = []
        for item in batch:
            job_id = item.row["job_id"]
            if job_id in stored:
                outcomes.append(SubmitOutcome(False, stored[job_id]))
            else:
                outcomes.append(SubmitOutcome(True, fresh[job_id]))
                stored[job_id] = fresh[job_id]  # a repeat later in this batch is a replay of this one
        return outcomes

    def _insert_new(self, fresh: dict[str, Row], *, read_first: bool) -> dict[str, Row]:
        """Insert the jobs of `fresh` not stored yet, with their audit rows; the stored ones.

        Without `read_first` every job is taken to be new, the common case: the insert and the
        audit go straight to the driver, with no read before them (ADR 64); a batch with a stored
        job rolls back (_Raced) and runs again, reading the stored ones first."""
        if not read_first:
            created = [fresh[job_id] for job_id in sorted(fresh)]
            with self._driver_write() as cursor:
                if JOB_INSERT.executemany(cursor, self._writer.dialect, created) != len(created):
                    raise _Raced
                AUDIT_INSERT.executemany(cursor, self._writer.dialect, _accepted(created))
            return {}
        with self._write() as conn:
            found = conn.execute(STORED_IDS, {"ids": list(fresh)}).scalars().all()
            query = sa.select(jobs).where(jobs.c.job_id.in_(found))
            stored = {r["job_id"]: dict(r) for r in conn.execute(query).mappings()} if found else {}
            created = [fresh[job_id] for job_id in sorted(fresh) if job_id not in stored]
            if created:
                if JOB_INSERT.execute(conn, created) != len(created):
                    raise _Raced  # the transaction rolls back; nothing of this batch is stored
                AUDIT_INSERT.execute(conn, _accepted(created))
        return stored

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


def _accepted(created: list[Row]) -> list[Row]:
    """The `accepted` audit rows of newly stored jobs."""
    return [
        audit_row(
            row,
            "accepted",
            source="bridge",
            actor=row["client_id"],
            status="pending",
            details={"priority": row["priority"], "timeout_seconds": row["timeout_seconds"]},
        )
        for row in created
    ]
