"""Dispatch to n8n: claims under the concurrency caps and the kill-switch, then running or retry."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa

from n8nctl.store.core import (
    ACTIVE,
    CLAIM_LOCK,
    GLOBAL_SWITCH,
    StoreBase,
    add_audit,
    lease_free,
    serialize,
    utcnow,
)
from n8nctl.store.schema import Row, jobs, switches


@dataclass
class Claim:
    jobs: list[Row] = field(default_factory=list)
    full: set[str] = field(default_factory=set)  # workflows whose every slot is taken after the claim
    ended: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    """Of the jobs the claim was asked to watch, those in a final status: job_id -> (status,
    error_code). Read in the claim's transaction: a slot this claim found free is never that of a
    job still reported as running."""


# The claim's statements, built once: building them on every claim cost ten times what SQLite
# spends running them (docs/PERFORMANCE.md, "End to end"); each call only binds its values.
_NOW = sa.bindparam("now", type_=jobs.c.lease_until.type)
_ENDED = sa.select(jobs.c.job_id, jobs.c.status, jobs.c.error_code).where(
    jobs.c.job_id.in_(sa.bindparam("watched", expanding=True)), jobs.c.status.not_in(ACTIVE)
)
_KILLED = sa.select(switches.c.workflow_key).where(switches.c.killed)
_IN_FLIGHT = (
    sa.select(jobs.c.workflow_key, sa.func.count())
    .where(sa.or_(jobs.c.status == "running", sa.and_(jobs.c.status == "pending", jobs.c.lease_until > _NOW)))
    .group_by(jobs.c.workflow_key)
)
_DUE = (
    sa.select(jobs)
    .where(
        jobs.c.status == "pending",
        jobs.c.workflow_key == sa.bindparam("key"),
        jobs.c.next_dispatch_at <= _NOW,
        lease_free(jobs, _NOW),
    )
    .order_by(jobs.c.priority.desc(), jobs.c.accepted_at)
    .limit(sa.bindparam("free", type_=sa.Integer))
)
_LEASE = (
    jobs.update()
    .where(jobs.c.job_id == sa.bindparam("claimed"), jobs.c.status == "pending", lease_free(jobs, _NOW))
    .values(lease_until=sa.bindparam("until"), dispatch_attempts=jobs.c.dispatch_attempts + 1)
)


class Dispatch(StoreBase):
    def claim_for_dispatch(self, caps: dict[str, int], *, limit: int, lease: timedelta) -> list[Row]:
        """Lease pending jobs, most urgent first, without exceeding any workflow's concurrency cap."""
        return self.claim(caps, limit=limit, lease=lease).jobs

    def claim(
        self, caps: dict[str, int], *, limit: int, lease: timedelta, watch: Iterable[str] = ()
    ) -> Claim:
        """Lease pending jobs, most urgent first, without exceeding any workflow's concurrency cap,
        say which workflows have no free slot left (their cap holds jobs back, or would), and which
        of the `watch`ed jobs have ended.

        A job counts against its workflow's cap while it is leased or running, whichever bridge
        process claimed it. Claims are compare-and-set on the lease, so two bridge processes never
        dispatch the same job, and they take turns (on PostgreSQL an advisory lock), so together
        they never exceed the cap of the process claiming."""
        now = utcnow()
        claimed: list[Row] = []
        busy: dict[str, int] = {}
        watched = list(watch)
        ended: dict[str, tuple[str, str | None]] = {}
        with self._write() as conn:
            serialize(conn, CLAIM_LOCK)
            if watched:
                ended = {
                    job_id: (status, code)
                    for job_id, status, code in conn.execute(_ENDED, {"watched": watched})
                }
            # The kill-switch is read here, in the claim's transaction: once `n8nctl kill` has
            # committed, no bridge process claims a job of that workflow (or any, for the global switch).
            killed = set(conn.execute(_KILLED).scalars())
            if GLOBAL_SWITCH in killed:
                return Claim(ended=ended)
            caps = {key: cap for key, cap in caps.items() if key not in killed}
            busy = {key: count for key, count in conn.execute(_IN_FLIGHT, {"now": now}).all()}
            # Each workflow's most urgent jobs up to its free slots (so a backlog of one never hides
            # another), then the most urgent of those overall.
            candidates: list[Row] = []
            for key, cap in caps.items():
                if busy.get(key, 0) < cap:
                    due = conn.execute(_DUE, {"key": key, "now": now, "free": cap - busy.get(key, 0)})
                    candidates += [dict(row) for row in due.mappings()]
            candidates.sort(key=lambda job: (-job["priority"], job["accepted_at"]))
            for job in candidates[:limit]:
                # re-checked under the row lock: a cancel committed since the select wins
                if conn.execute(
                    _LEASE, {"claimed": job["job_id"], "now": now, "until": now + lease}
                ).rowcount:
                    claimed.append({**job, "dispatch_attempts": job["dispatch_attempts"] + 1})
                    if job["lease_until"] is not None:
                        # an earlier claim expired unresolved (its bridge died, or hung, between
                        # claiming and recording n8n's answer): n8n may have this job already
                        add_audit(
                            conn,
                            job,
                            "redispatch",
                            source="bridge",
                            status="pending",
                            details={
                                "attempt": job["dispatch_attempts"] + 1,
                                "previous_claim_expired_at": job["lease_until"].isoformat(),
                            },
                        )
        for job in claimed:
            busy[job["workflow_key"]] = busy.get(job["workflow_key"], 0) + 1
        return Claim(claimed, {key for key, cap in caps.items() if busy.get(key, 0) >= cap}, ended)

    def mark_running(self, job: Row, execution_id: str | None) -> None:
        now = utcnow()
        with self._write() as conn:
            updated = conn.execute(
                jobs.update()
                .where(jobs.c.job_id == job["job_id"], jobs.c.status == "pending")
                .values(
                    error_message=None,
                    status="running",
                    dispatched_at=now,
                    started_at=now,
                    lease_until=None,
                    execution_id=sa.func.coalesce(jobs.c.execution_id, execution_id),
                    updated_at=now,
                )
            ).rowcount
            if updated:
                add_audit(
                    conn,
                    job,
                    "dispatched",
                    source="bridge",
                    status="running",
                    details={"execution_id": execution_id},
                )
                return
            # n8n's result came before its answer to the dispatch (the workflow ran faster than the
            # bridge recorded the answer): the job stays as the result left it; the trail still shows
            # the dispatch and its execution_id
            status = conn.execute(sa.select(jobs.c.status).where(jobs.c.job_id == job["job_id"])).scalar()
            if status is not None and status not in ACTIVE:
                add_audit(
                    conn,
                    job,
                    "dispatched",
                    source="bridge",
                    status=status,
                    details={"execution_id": execution_id, "job_already": status},
                )

    def mark_dispatch_failed(self, job: Row, *, retry_at: datetime, error: str) -> None:
        with self._write() as conn:
            updated = conn.execute(
                jobs.update()
                .where(jobs.c.job_id == job["job_id"], jobs.c.status == "pending")
                .values(lease_until=None, next_dispatch_at=retry_at, error_message=error, updated_at=utcnow())
            ).rowcount
            if updated:
                add_audit(
                    conn,
                    job,
                    "dispatch_failed",
                    source="bridge",
                    status="pending",
                    details={"error": error, "retry_at": retry_at.isoformat()},
                )
