"""Bridge: everything one bridge process holds (no module globals), and its background workers.

Workers are loops over the database: intake (group commit), dispatch to n8n, the deadline sweeper,
reconciliation with n8n and the callback outbox. Each wakes on an event or every poll interval, so a
job written by another replica, or left behind by a crash, is picked up again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx

from n8nctl.adapters.callbacks import (
    Attempt,
    CallbackSender,
    OutboundPolicy,
    Resolver,
    system_resolver,
)
from n8nctl.adapters.n8n import DispatchError, N8nClient
from n8nctl.bridge import operator
from n8nctl.bridge.concurrency import AdaptiveConcurrency
from n8nctl.bridge.errors import ApiError
from n8nctl.bridge.guards import GuardUnavailable, create_guards
from n8nctl.bridge.metrics import Metrics
from n8nctl.bridge.switchview import SwitchView
from n8nctl.contract import WORKFLOW_KILLED_MESSAGE
from n8nctl.registry import Registry
from n8nctl.settings import Settings
from n8nctl.store import NewJob, Store, SubmitOutcome
from n8nctl.store.schema import Row

log = logging.getLogger("n8nctl.bridge")
T = TypeVar("T")

DISPATCH_LEASE = timedelta(seconds=60)
MAX_DISPATCH_BACKOFF = 30.0
BATCH_LIMIT = 128
# n8n execution statuses after which no result will come; any other (running, waiting, new, unknown)
# leaves the job to its result or its deadline. `missing`: n8n has no such execution.
ENDED = frozenset({"success", "error", "crashed", "canceled", "missing"})
# error codes of jobs n8n never delivered a result for (an error to the concurrency limit), and of
# jobs ended for reasons that say nothing about n8n (ignored by it)
NO_RESULT = frozenset({"TIMEOUT", "RESULT_LOST"})
NOT_N8N = frozenset({"CANCELLED", "WORKFLOW_KILLED", "N8N_KILLED"})


class Bridge:
    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        *,
        n8n_transport: httpx.AsyncBaseTransport | None = None,
        callback_transport: httpx.AsyncBaseTransport | None = None,
        resolver: Resolver | None = None,
        operator_socket: Path | None = None,
    ) -> None:
        """`operator_socket`: where `n8nctl kill` reaches this bridge (`bridge serve` passes the state
        folder's; none in-process)."""
        settings.check_bridge_secrets()  # a malformed or reused secret stops the bridge here, at start
        self.settings, self.registry = settings, registry
        self.store = Store(settings.database_url)
        self.n8n = N8nClient(
            settings.n8n_url,
            api_key=settings.n8n_api_key_value,
            webhook_header=settings.bridge_n8n_webhook_header,
            webhook_token=settings.bridge_n8n_webhook_token.get_secret_value(),
            transport=n8n_transport,
        )
        self.callbacks = CallbackSender(
            OutboundPolicy(settings.callback_allow_hosts, resolve=resolver or system_resolver),
            deadline=settings.bridge_callback_timeout_seconds,
            secrets=settings.callback_signing_keys.live,
            transport=callback_transport,
        )
        self.switches = SwitchView(self.store, registry)  # the kill-switch, cached (ADR 62)
        self.guards = create_guards(settings)  # replay guard and rate limit: memory, or Redis (ADR 50)
        # per-workflow dispatch limits found from n8n's latency, up to the registry's max (ADR 61)
        self.concurrency = AdaptiveConcurrency(
            {key: entry.max_concurrency for key, entry in registry.workflows.items()},
            start=settings.bridge_dispatch_start_limit,
            adaptive=settings.bridge_adaptive_concurrency,
        )
        self.metrics = Metrics(
            self.store.queue_depth,
            self.store.dead_letters,
            self.concurrency.current,
            self.concurrency.changes,
        )
        self.wake_dispatch, self.wake_delivery = asyncio.Event(), asyncio.Event()
        self._intake: asyncio.Queue[tuple[NewJob, asyncio.Future[SubmitOutcome]]] = asyncio.Queue()
        self._reconciled_at_start = False
        self.operator_socket = operator_socket
        self._operator: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- lifecycle ------------------------------------------------------------------------------------

    async def start(self, *, workers: bool = True) -> None:
        # never migrates: `n8nctl bridge migrate` (or up) does, once, before replicas roll out (ADR 40)
        await asyncio.to_thread(self.store.check_schema)
        loops = [self._intake_loop]
        if workers:
            loops += [self._dispatch_loop, self._delivery_loop, self._sweep_loop, self._reconcile_loop]
        for loop in loops:
            self._spawn(self._forever(loop))
        if self.operator_socket:
            self._operator = await operator.listen(self, self.operator_socket)

    async def stop(self) -> None:
        if self.operator_socket:
            await operator.close(self._operator, self.operator_socket)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.n8n.aclose()
        await self.callbacks.aclose()
        await self.guards.aclose()
        self.store.close()

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _forever(self, step: Callable[[], Awaitable[None]]) -> None:
        """Run one worker step after another; a failing step is logged and retried, never fatal."""
        while True:
            try:
                await step()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("worker %s failed; retrying", step.__name__)
                await asyncio.sleep(self.settings.bridge_poll_interval_seconds)

    async def _wait(self, event: asyncio.Event) -> None:
        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow the cancellation sent by stop()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.settings.bridge_poll_interval_seconds):
                await event.wait()
        event.clear()

    # -- policy helpers used by the API ---------------------------------------------------------------

    async def check_replay(self, who: str, msg_id: str) -> None:
        """Refuse a webhook-id already seen from `who` (by any replica, with Redis)."""
        if await self._guarded(self.guards.seen(f"{who}:{msg_id}")):
            raise ApiError("SIGNATURE_REPLAYED", "this webhook-id was already used; sign each request anew")

    async def check_rate(self, client_id: str, kind: str) -> None:
        """Count one signed request of `client_id`; reads and writes have a budget each."""
        wait = await self._guarded(self.guards.hit(f"{client_id}:{kind}"))
        if wait:
            retry_after = math.ceil(wait)
            raise ApiError(
                "RATE_LIMITED",
                f"client {client_id} is over {self.settings.bridge_rate_limit}",
                detail={"retry_after_seconds": retry_after},
                headers={"Retry-After": str(retry_after)},
            )

    @staticmethod
    async def _guarded(check: Awaitable[T]) -> T:
        """A guard's answer; a guard that cannot answer refuses the request (fail closed, ADR 50)."""
        try:
            return await check
        except GuardUnavailable as exc:
            raise ApiError(
                "GUARD_UNAVAILABLE", f"{exc}; retry shortly, re-signed", headers={"Retry-After": "5"}
            ) from None

    # -- intake: group commit -------------------------------------------------------------------------

    async def submit(self, job: NewJob) -> SubmitOutcome:
        """Store a job durably. Concurrent submissions share one transaction (one fsync)."""
        future: asyncio.Future[SubmitOutcome] = asyncio.get_running_loop().create_future()
        self._intake.put_nowait((job, future))
        outcome = await future
        if outcome.created:
            self.wake_dispatch.set()
        return outcome

    async def _intake_loop(self) -> None:
        """Commit everything queued so far in one transaction. Every waiter gets an outcome or the error."""
        batch = [await self._intake.get()]
        while len(batch) < BATCH_LIMIT and not self._intake.empty():
            batch.append(self._intake.get_nowait())
        try:
            outcomes = await asyncio.to_thread(self.store.submit_batch, [job for job, _ in batch])
        except BaseException as exc:  # nothing was committed: each request answers with the error
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            raise
        self.metrics.intake_batch.observe(len(batch))
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if not future.done():
                future.set_result(outcome)

    # -- dispatch to n8n ------------------------------------------------------------------------------

    async def _dispatch_loop(self) -> None:
        await self._wait(self.wake_dispatch)
        limits = self.concurrency.limits(now=time.monotonic())
        # killed workflows are left out by the store itself, in the claim's transaction
        caps = {key: limits[key] for key, e in self.registry.workflows.items() if e.enabled}
        claim = await asyncio.to_thread(
            self.store.claim, caps, limit=32, lease=DISPATCH_LEASE, watch=self.concurrency.watched()
        )
        self._observe_ended(claim.ended)  # before the new jobs: they were claimed into those slots
        for key in claim.full:
            self.concurrency.binding(key)
        for job in claim.jobs:
            self.concurrency.sent(job["workflow_key"], job["job_id"], now=time.monotonic())
            self._spawn(self._dispatch_one(job))
        if self.concurrency.current() != limits:  # a limit moved: claim again under the new one
            self.wake_dispatch.set()

    def _observe_ended(self, ended: dict[str, tuple[str, str | None]]) -> None:
        """Tell the concurrency limit which of the jobs it watches have ended, and how: a result
        (its time), no result from n8n (an error), or cancelled or killed (nothing about n8n)."""
        now = time.monotonic()
        for job_id, (status, error_code) in ended.items():
            if status == "cancelled" or error_code in NOT_N8N:
                self.concurrency.forget(job_id)
            else:
                self.concurrency.finished(job_id, now=now, ok=error_code not in NO_RESULT)

    async def _dispatch_one(self, job: Row) -> None:
        entry = self.registry.workflows[job["workflow_key"]]
        payload = {
            "job_id": job["job_id"],
            "workflow_key": job["workflow_key"],
            "client_id": job["client_id"],
            "inputs": job["inputs"],
            "metadata": job["metadata"],
            "priority": job["priority"],
            "deadline_at": job["deadline_at"].isoformat(),
            "callback_url": self.settings.public_url + "/v1/callbacks/n8n",
        }
        started = time.perf_counter()
        try:
            execution_id = await self.n8n.trigger(entry.webhook_path, payload)
        except DispatchError as exc:
            self.concurrency.refused(job["job_id"], now=time.monotonic())
            self.metrics.dispatches.labels("failed").inc()
            backoff = min(MAX_DISPATCH_BACKOFF, 2.0 ** (job["dispatch_attempts"] - 1))
            retry_at = datetime.now(UTC) + timedelta(seconds=backoff)
            log.warning(
                "dispatch of job %s failed (attempt %d): %s", job["job_id"], job["dispatch_attempts"], exc
            )
            await asyncio.to_thread(self.store.mark_dispatch_failed, job, retry_at=retry_at, error=str(exc))
            return
        self.concurrency.accepted(job["job_id"], time.perf_counter() - started)
        self.metrics.dispatch_seconds.observe(time.perf_counter() - started)
        self.metrics.dispatches.labels("accepted").inc()
        await asyncio.to_thread(self.store.mark_running, job, execution_id)

    # -- deadlines ------------------------------------------------------------------------------------

    async def _sweep_loop(self) -> None:
        await asyncio.sleep(self.settings.bridge_poll_interval_seconds)
        expired = await asyncio.to_thread(self.store.expire_overdue)
        for job in expired:
            self.stop_execution(job)
        _, killed = await self.switches.killed()
        if killed:  # jobs accepted while the switch was turning (another replica's cache): not run
            expired += await asyncio.to_thread(
                self.store.fail_active,
                killed,
                statuses=("pending",),
                error_code="WORKFLOW_KILLED",
                error_message=WORKFLOW_KILLED_MESSAGE,
            )
        now = datetime.now(UTC)
        for job in expired:
            self.metrics.finish(job["workflow_key"], "failed", (now - job["accepted_at"]).total_seconds())
        if expired:
            self.wake_delivery.set()
            self.wake_dispatch.set()

    def stop_execution(self, job: Row) -> None:
        """Ask n8n to stop the job's execution, in the background (callers never wait on n8n), and
        audit whether it did: when it did not, a late result may still come and is recorded only."""
        if job["execution_id"]:
            self._spawn(self._stop_execution(job))

    async def _stop_execution(self, job: Row) -> None:
        stopped = await self.n8n.stop_execution(job["execution_id"])
        action = "execution_stopped" if stopped else "execution_stop_failed"
        details = {"execution_id": job["execution_id"]}
        await asyncio.to_thread(self.store.record, job, action, source="bridge", details=details)

    # -- reconciliation with n8n (ADR 51) -------------------------------------------------------------

    async def _reconcile_loop(self) -> None:
        """Check running jobs whose result is overdue against their n8n execution: every running job
        once at start (results posted while no bridge ran are lost), then those a grace period past
        their workflow's expected duration."""
        now = datetime.now(UTC)
        grace = timedelta(seconds=self.settings.bridge_reconcile_grace_seconds)
        if self._reconciled_at_start:
            await asyncio.sleep(self.settings.bridge_poll_interval_seconds)
            now = datetime.now(UTC)
            cutoffs = {
                key: now - timedelta(seconds=entry.expected_duration_seconds) - grace
                for key, entry in self.registry.workflows.items()
            }
            default = now - grace
        else:
            cutoffs, default = {}, now
        claimed = await asyncio.to_thread(
            self.store.claim_overdue, cutoffs, default=default, limit=BATCH_LIMIT, lease=grace
        )
        self._reconciled_at_start = True
        for job in claimed:
            self._spawn(self._reconcile_one(job))

    async def _reconcile_one(self, job: Row) -> None:
        status = await self.n8n.execution_status(job["execution_id"])
        if status is None:  # n8n did not say: checked again once the claim's lease has passed
            self.metrics.reconciliations.labels("unanswered").inc()
            return
        failed = await asyncio.to_thread(self.store.record_check, job, status, ended=status in ENDED)
        self.metrics.reconciliations.labels("result_lost" if failed else "running").inc()
        if failed:
            log.warning(
                "job %s failed with RESULT_LOST: n8n execution %s is %s",
                job["job_id"],
                job["execution_id"],
                status,
            )
            self.metrics.finish(
                job["workflow_key"], "failed", (datetime.now(UTC) - job["accepted_at"]).total_seconds()
            )
            self.wake_delivery.set()
            self.wake_dispatch.set()

    # -- callback outbox ------------------------------------------------------------------------------

    @property
    def delivery_lease(self) -> timedelta:
        """How long a claimed delivery is this process's: longer than an attempt's deadline, so a
        delivery is never attempted twice at once; a crash mid-attempt frees it after that."""
        return timedelta(seconds=self.settings.bridge_callback_timeout_seconds * 3)

    async def _delivery_loop(self) -> None:
        await self._wait(self.wake_delivery)
        for delivery in await asyncio.to_thread(
            self.store.claim_deliveries, limit=32, lease=self.delivery_lease
        ):
            self.deliver(delivery)

    def deliver(self, delivery: Row) -> None:
        """Attempt a delivery claimed by this process, in the background."""
        self._spawn(self._deliver_one(delivery))

    async def _deliver_one(self, delivery: Row) -> None:
        started = time.perf_counter()
        try:
            attempt = await self.callbacks.post(
                delivery["url"], delivery["payload"].encode(), message_id=delivery["message_id"]
            )
        except Exception as exc:  # whatever failed, the attempt is recorded: the schedule ends in dead
            log.exception("callback attempt for job %s failed", delivery["job_id"])
            attempt = Attempt(None, f"attempt failed: {type(exc).__name__}")
        state, retry_at = next_state(attempt, delivery["attempts"], self.settings.retry_schedule)
        self.metrics.callback_seconds.observe(time.perf_counter() - started)
        self.metrics.callbacks.labels(state).inc()
        await asyncio.to_thread(
            self.store.delivery_result,
            delivery,
            state=state,
            status_code=attempt.status_code,
            error=attempt.error,
            retry_at=retry_at,
        )


def next_state(attempt: Attempt, attempts: int, schedule: tuple[float, ...]) -> tuple[str, datetime | None]:
    """delivered, stopped (410), dead (schedule spent), or pending with the next attempt's time:
    the schedule's delay with +/-20% jitter, never earlier than Retry-After, never beyond the
    schedule's longest delay."""
    if attempt.delivered:
        return "delivered", None
    if attempt.status_code == 410:
        return "stopped", None
    if attempts >= len(schedule):
        return "dead", None
    delay = schedule[attempts] * random.uniform(0.8, 1.2)  # noqa: S311 (jitter)
    if attempt.retry_after is not None:
        delay = min(max(delay, attempt.retry_after), max(schedule))
    return "pending", datetime.now(UTC) + timedelta(seconds=delay)
