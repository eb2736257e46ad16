"""The callback outbox: deliveries to FlowBiz, their retries, dead letters and redelivery."""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa

from n8nctl.store.core import (
    StoreBase,
    add_audit,
    lease_free,
    utcnow,
)
from n8nctl.store.schema import Row, deliveries, jobs


class Outbox(StoreBase):
    def claim_deliveries(self, *, limit: int, lease: timedelta) -> list[Row]:
        now = utcnow()
        with self._write() as conn:
            due = (
                conn.execute(
                    sa.select(deliveries)
                    .where(
                        deliveries.c.state == "pending",
                        deliveries.c.next_attempt_at <= now,
                        lease_free(deliveries, now),
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
            add_audit(
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
                add_audit(
                    conn,
                    job,
                    "callback_redeliver",
                    source="operator",
                    actor=actor,
                    status=job["status"],
                    details={"previous_state": row["state"], "webhook_id": row["message_id"]},
                )
        return [row["job_id"] for row in rows]
