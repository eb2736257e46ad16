"""How jobs end: n8n's results, cancel, deadlines, and the kill-switch's failures."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from n8nctl.store.core import (
    ACTIVE,
    AUDIT_INSERT,
    StoreBase,
    add_audit,
    audit_row,
    finish_job,
    utcnow,
)
from n8nctl.store.schema import Row, jobs


@dataclass(frozen=True)
class Recorded:
    outcome: str
    job: Row | None = None
    delivery: Row | None = None


class Outcomes(StoreBase):
    def record_result(self, result: Row, *, lease: timedelta | None = None) -> Recorded:
        """Apply n8n's result: 'finished' (with the job as it ended and its queued callback, claimed
        for its first attempt with `lease`), 'late' (the job had already ended: recorded only) or
        'unknown'."""
        now = utcnow()
        with self._write() as conn:
            job = conn.execute(sa.select(jobs).where(jobs.c.job_id == result["job_id"])).mappings().first()
            if job is None:
                return Recorded("unknown")
            entries = [
                audit_row(
                    job,
                    entry["action"],
                    source="n8n",
                    node_name=entry.get("node_name"),
                    details=entry.get("details"),
                    duration_ms=entry.get("duration_ms"),
                    at=entry.get("timestamp") or now,
                )
                for entry in result["audit"]
            ]
            if entries:
                AUDIT_INSERT.execute(conn, entries)
            ended = dict(job)
            delivery = job["status"] in ACTIVE and finish_job(
                conn,
                ended,
                now,
                status=result["status"],
                outputs=result["outputs"],
                error_code=result["error_code"],
                error_message=result["error_message"],
                execution_id=result["execution_id"] or job["execution_id"],
                started_at=result["started_at"] or job["started_at"] or now,
                completed_at=result["completed_at"] or now,
                source="n8n",
                lease=lease,
            )
            if not delivery:
                add_audit(
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
                return Recorded("late")
            return Recorded("finished", ended, delivery)

    def record(self, job: Row, action: str, **fields: Any) -> None:
        """Add one audit entry to a job's trail (fields as in the audit table)."""
        with self._write() as conn:
            add_audit(conn, job, action, **fields)

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
            add_audit(
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
                if finish_job(
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
