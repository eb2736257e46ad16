"""What the store says about a window of time: counts for monitoring (n8nctl/monitoring.py)."""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa

from n8nctl.store.core import ACTIVE, StoreBase
from n8nctl.store.schema import Row, audit_events, deliveries, jobs

CALLBACK_OUTCOMES = ("callback_delivered", "callback_pending", "callback_dead", "callback_stopped")


DEAD = sa.select(sa.func.count()).where(deliveries.c.state == "dead")


class Figures(StoreBase):
    def dead_letters(self) -> int:
        with self._read() as conn:
            return int(conn.execute(DEAD).scalar_one())

    def figures_since(self, since: datetime) -> Row:
        """Jobs accepted and finished since `since` (with their durations), callback attempts by
        outcome since then, and the queue and dead letters now. One read transaction."""
        finished = sa.select(jobs.c.status, jobs.c.error_code, jobs.c.accepted_at, jobs.c.completed_at).where(
            jobs.c.completed_at >= since, jobs.c.status.in_(("success", "failed"))
        )
        attempts = (
            sa.select(audit_events.c.action, sa.func.count())
            .where(audit_events.c.at >= since, audit_events.c.action.in_(CALLBACK_OUTCOMES))
            .group_by(audit_events.c.action)
        )
        with self._read() as conn:
            accepted = conn.execute(
                sa.select(sa.func.count()).where(jobs.c.accepted_at >= since)
            ).scalar_one()
            ended = conn.execute(finished).all()
            outcomes = {action: count for action, count in conn.execute(attempts).all()}
            queued = conn.execute(sa.select(sa.func.count()).where(jobs.c.status.in_(ACTIVE))).scalar_one()
            dead = conn.execute(DEAD).scalar_one()
        return {
            "accepted": int(accepted),
            "finished": [
                (status, error_code, (completed - accepted_at) / timedelta(seconds=1))
                for status, error_code, accepted_at, completed in ended
            ],
            "callback_outcomes": outcomes,
            "queue_depth": int(queued),
            "dead_letters": int(dead),
        }
