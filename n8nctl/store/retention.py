"""Retention: delete audit events past `at` + `retention_days`, then finished jobs (and their callback)
none of whose events remain (security/AUDIT_REQUIREMENTS.md section 5).

Batched: each batch is its own short transaction over ids found by an index range scan
(ix_audit_events_retention, ix_jobs_retention), so the bridge keeps writing while millions of rows go,
and the cost of a batch does not grow with the table. Retention values are few (90, 365): they are
found by seeks on the same index (a loose index scan), never by reading the table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from n8nctl.store.core import StoreBase, utcnow
from n8nctl.store.schema import audit_events, deliveries, jobs

FINAL = ("success", "failed", "cancelled")
BATCH = 1000


@dataclass
class Pruned:
    events: int = 0
    jobs: int = 0


class Retention(StoreBase):
    def _retention_classes(self, table: sa.Table) -> Iterator[int]:
        """Each distinct retention_days of `table`, by one index seek apiece."""
        previous = -1
        while True:
            with self._read() as conn:
                found = conn.execute(
                    sa.select(sa.func.min(table.c.retention_days)).where(table.c.retention_days > previous)
                ).scalar()
            if found is None:
                return
            yield int(found)
            previous = found

    def expired_events(self, days: int, now: datetime) -> sa.Select[tuple[int]]:
        cutoff = now - timedelta(days=days)
        return (
            sa.select(audit_events.c.id)
            .where(audit_events.c.retention_days == days, audit_events.c.at < cutoff)
            .order_by(audit_events.c.at)  # the index's order: a batch is its first entries, no sort
        )

    def expired_jobs(self, days: int, now: datetime) -> sa.Select[tuple[str]]:
        cutoff = now - timedelta(days=days)
        remaining = sa.select(audit_events.c.id).where(audit_events.c.job_id == jobs.c.job_id)
        return (
            sa.select(jobs.c.job_id)
            .where(
                jobs.c.retention_days == days,
                jobs.c.completed_at < cutoff,
                jobs.c.status.in_(FINAL),
                ~remaining.exists(),
            )
            .order_by(jobs.c.completed_at)
        )

    def prune_audit(
        self,
        *,
        now: datetime | None = None,
        dry_run: bool = False,
        batch: int = BATCH,
        progress: Callable[[Pruned], None] = lambda pruned: None,
    ) -> Pruned:
        """Delete (or, with `dry_run`, count) what is past retention; returns the counts."""
        now = now or utcnow()
        pruned = Pruned()
        for days in list(self._retention_classes(audit_events)):
            pruned.events += self._in_batches(
                self.expired_events(days, now), audit_events.c.id, dry_run, batch
            )
            progress(pruned)
        for days in list(self._retention_classes(jobs)):
            pruned.jobs += self._in_batches(self.expired_jobs(days, now), jobs.c.job_id, dry_run, batch)
            progress(pruned)
        return pruned

    def _in_batches(self, query: sa.Select[Any], key: sa.Column[Any], dry_run: bool, batch: int) -> int:
        if dry_run:
            with self._read() as conn:
                return int(
                    conn.execute(sa.select(sa.func.count()).select_from(query.subquery())).scalar_one()
                )
        total = 0
        while True:
            with self._write() as conn:
                ids = list(conn.execute(query.limit(batch)).scalars())
                if not ids:
                    return total
                if key is jobs.c.job_id:  # a job goes with its callback
                    conn.execute(deliveries.delete().where(deliveries.c.job_id.in_(ids)))
                    conn.execute(jobs.delete().where(jobs.c.job_id.in_(ids)))
                else:
                    conn.execute(audit_events.delete().where(audit_events.c.id.in_(ids)))
            total += len(ids)
