"""One schema for SQLite and PostgreSQL. Changes go through an alembic revision in migrations/."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on both engines."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def bind_processor(self, dialect: Dialect) -> Callable[[datetime | None], Any] | None:
        """process_bind_param, then on SQLite the text SQLAlchemy's DATETIME stores, in one step:
        intake binds five times per job (store/prebound.py), through four layers otherwise."""
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        def process(value: datetime | None) -> str | None:
            moment = self.process_bind_param(value, dialect)
            # = sqlite.DATETIME's storage format, "%Y-%m-%d %H:%M:%S.%f" (tests/store checks it)
            return None if moment is None else moment.isoformat(" ", "microseconds")

        return process

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = sa.MetaData()

JOB_STATUSES = ("pending", "running", "success", "failed", "cancelled")
DELIVERY_STATES = ("pending", "delivered", "dead", "stopped")

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("job_id", sa.String(128), primary_key=True),
    sa.Column("client_id", sa.String(64), nullable=False),
    sa.Column("workflow_key", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("priority", sa.SmallInteger, nullable=False),
    sa.Column("timeout_seconds", sa.Integer, nullable=False),
    sa.Column("inputs", sa.JSON, nullable=False),
    sa.Column("callback_url", sa.Text, nullable=False),
    sa.Column("metadata", sa.JSON, nullable=False),
    sa.Column("user_id", sa.String(128)),
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("retention_days", sa.Integer, nullable=False),
    sa.Column("accepted_at", UTCDateTime, nullable=False),
    sa.Column("deadline_at", UTCDateTime, nullable=False),
    sa.Column("dispatched_at", UTCDateTime),
    sa.Column("started_at", UTCDateTime),
    sa.Column("completed_at", UTCDateTime),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("execution_id", sa.String(64)),
    sa.Column("outputs", sa.JSON),
    sa.Column("error_code", sa.String(64)),
    sa.Column("error_message", sa.Text),
    sa.Column("dispatch_attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_dispatch_at", UTCDateTime, nullable=False),
    sa.Column("lease_until", UTCDateTime),
    sa.CheckConstraint(f"status IN {JOB_STATUSES}", name="ck_jobs_status"),
    sa.CheckConstraint("priority BETWEEN 1 AND 10", name="ck_jobs_priority"),
)
sa.Index("ix_jobs_dispatch", jobs.c.status, jobs.c.priority.desc(), jobs.c.accepted_at)
sa.Index("ix_jobs_deadline", jobs.c.status, jobs.c.deadline_at)
sa.Index("ix_jobs_client", jobs.c.client_id, jobs.c.accepted_at)
sa.Index("ix_jobs_retention", jobs.c.retention_days, jobs.c.completed_at)  # prune (store/retention.py)

deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("job_id", sa.String(128), sa.ForeignKey("jobs.job_id"), nullable=False, unique=True),
    sa.Column("message_id", sa.String(64), nullable=False, unique=True),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", UTCDateTime, nullable=False),
    sa.Column("lease_until", UTCDateTime),
    sa.Column("last_status_code", sa.Integer),
    sa.Column("last_error", sa.Text),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("delivered_at", UTCDateTime),
    sa.CheckConstraint(f"state IN {DELIVERY_STATES}", name="ck_deliveries_state"),
)
sa.Index("ix_deliveries_due", deliveries.c.state, deliveries.c.next_attempt_at)

audit_events = sa.Table(
    "audit_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("job_id", sa.String(128), index=True),
    sa.Column("client_id", sa.String(64)),
    sa.Column("workflow_key", sa.String(64)),
    sa.Column("at", UTCDateTime, nullable=False, index=True),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("actor", sa.String(128)),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16)),
    sa.Column("node_name", sa.String(255)),
    sa.Column("details", sa.JSON),
    sa.Column("duration_ms", sa.Integer),
    sa.Column("retention_days", sa.Integer, nullable=False),
)
sa.Index("ix_audit_events_retention", audit_events.c.retention_days, audit_events.c.at)

switches = sa.Table(
    "switches",
    metadata,
    sa.Column("workflow_key", sa.String(64), primary_key=True),
    sa.Column("killed", sa.Boolean, nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("actor", sa.String(128)),
    sa.Column("changed_at", UTCDateTime, nullable=False),
)
"""Kill-switch state; the row with workflow_key '*' is the global switch."""

Row = dict[str, Any]
