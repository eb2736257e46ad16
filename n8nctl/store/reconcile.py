"""Reconciliation: running jobs whose result is overdue, checked against their n8n execution
(docs/adr/0051). One replica checks a job at a time: the claim locks its row (SKIP LOCKED) and
leases it; the lease is also the wait before a job n8n still runs is checked again."""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa

from n8nctl.contract import RESULT_LOST
from n8nctl.store.core import StoreBase, add_audit, finish_job, lease_free, utcnow
from n8nctl.store.schema import Row, jobs


class Reconcile(StoreBase):
    def claim_overdue(
        self, cutoffs: dict[str, datetime], *, default: datetime, limit: int, lease: timedelta
    ) -> list[Row]:
        """Lease running jobs with an execution_id dispatched before their workflow's cutoff
        (`default` for workflows not in `cutoffs`), oldest first."""
        now = utcnow()
        overdue = sa.or_(
            *(
                sa.and_(jobs.c.workflow_key == key, jobs.c.dispatched_at <= cut)
                for key, cut in cutoffs.items()
            ),
            sa.and_(jobs.c.workflow_key.not_in(list(cutoffs)), jobs.c.dispatched_at <= default),
        )
        with self._write() as conn:
            due = (
                conn.execute(
                    sa.select(jobs)
                    .where(
                        jobs.c.status == "running",
                        jobs.c.execution_id.is_not(None),
                        lease_free(jobs, now),
                        overdue,
                    )
                    .order_by(jobs.c.dispatched_at)
                    .limit(limit)
                    # PostgreSQL: rows another replica is claiming are skipped, not waited for
                    .with_for_update(skip_locked=True)
                )
                .mappings()
                .all()
            )
            for job in due:
                conn.execute(
                    jobs.update().where(jobs.c.job_id == job["job_id"]).values(lease_until=now + lease)
                )
        return [dict(job) for job in due]

    def record_check(self, job: Row, n8n_status: str, *, ended: bool) -> bool:
        """What n8n said of a running job's execution. `ended`: the job fails with RESULT_LOST and
        its callback is queued (True), unless a result or a cancel came first. Else audited only."""
        now = utcnow()
        details = {"execution_id": job["execution_id"], "n8n_status": n8n_status}
        with self._write() as conn:
            if not ended:
                add_audit(conn, job, "reconcile_running", source="bridge", status="running", details=details)
                return False
            add_audit(conn, job, "reconcile_ended", source="bridge", status="running", details=details)
            delivery = finish_job(
                conn,
                dict(job),
                now,
                status="failed",
                outputs=None,
                error_code=RESULT_LOST,
                error_message=result_lost_message(job["execution_id"], n8n_status),
                execution_id=job["execution_id"],
                started_at=job["started_at"],
                completed_at=now,
                source="bridge",
            )
            return delivery is not None


def result_lost_message(execution_id: str, n8n_status: str) -> str:
    if n8n_status == "missing":
        return f"n8n has no execution {execution_id} and no result reached the bridge"
    return f"n8n execution {execution_id} ended ({n8n_status}) and no result reached the bridge"
