"""Intake and reads: jobs, their audit trail, queue depth."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import sqlalchemy as sa

from n8nctl.store.core import (
    ACTIVE,
    EMPTY_JOB,
    NewJob,
    StoreBase,
    SubmitOutcome,
    audit_row,
    dialect_insert,
    utcnow,
)
from n8nctl.store.schema import Row, audit_events, deliveries, jobs


class Jobs(StoreBase):
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
            insert = dialect_insert(conn, jobs).on_conflict_do_nothing(index_elements=[jobs.c.job_id])
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
                        audit_row(
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
