"""Adaptive dispatch concurrency: how many jobs of a workflow the bridge lets n8n run at once.

The registry's `max_concurrency` is the ceiling; the limit itself follows what n8n shows (ADR 61).
Each dispatched job is one observation: how long n8n took to accept it (dispatch latency), how long
until its result came back (result time), or that it failed (n8n refused or was unreachable, or the
result never came). Against the times of a job that ran alone (the baseline), once per round
(as many results as the limit, from jobs sent since the last change: a round trip), the limit moves
like a gradient controller with additive increase and multiplicative decrease:

    slowdown = round's median / baseline                        (the worse of both times)
    limit    = limit * min(1, TOLERANCE / slowdown) + QUEUE      (within 1 .. max)

While the times stay flat the limit grows by QUEUE per round (only while the limit was binding: a
trickle of jobs does not grow it). Once n8n is saturated, more jobs only queue inside n8n and the
times grow in proportion; `limit * TOLERANCE / slowdown` is then about what n8n takes at TOLERANCE
times a lone job's latency (Little's law), and QUEUE jobs wait on top of it, so n8n never idles
between two dispatches yet its latency is not driven up further. TOLERANCE is 3, not the 1.5 of
services whose lone request uses the whole machine: a lone n8n execution leaves most of it idle
(measured: 0.7x of n8n's best rate at concurrency 1, the best from about 4 jobs at once, at about
3x a lone job's latency). A collapse (a round's median above COLLAPSE times the baseline) at least
halves the limit, as does an error; once per round: what jobs sent before the last change show is
not answered twice. The baseline is the median of the last lone jobs' times, the slowdown the
round's median over it: one lucky or unlucky job moves neither.

The baseline is refreshed by a probe: when no job ran alone for PROBE_SECONDS (or never, as when
starting at the maximum under a backlog), the limit drops to 1 until one job has run alone; the
round that started the probe is then judged against it. Pure logic: time comes in as `now`
(seconds, monotonic); no I/O, no global state; one instance per bridge, state per workflow.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

TOLERANCE = 3.0  # times up to 3x a lone job's count as flat (see above)
QUEUE = 2.0  # jobs let wait inside n8n on top of what it runs, so it never idles between dispatches
COLLAPSE = 10.0  # a round this much slower than a lone job at least halves the limit
DECREASE = 0.5  # what an error or a collapse keeps of the limit
PROBE_SECONDS = 60.0  # a baseline older than this is measured again (a probe costs a round trip)
PROBE_TIMEOUT = 10.0  # a probe that got no lone job by then ends anyway (e.g. other replicas' jobs)
BASELINE_SAMPLES = 3  # the baseline is the median of the last few lone jobs (robust to a lucky one)


@dataclass
class _Job:
    key: str
    sent_at: float
    epoch: int
    alone: bool
    dispatch_seconds: float | None = None


@dataclass
class _Workflow:
    maximum: int
    limit: float
    in_flight: int = 0
    epoch: int = 0  # bumped at every change of the limit: a round only counts jobs sent since
    results: list[float] = field(default_factory=list)  # this round's result times
    dispatches: list[float] = field(default_factory=list)  # this round's dispatch latencies
    binding: bool = False  # the limit held jobs back during this round
    base_result: deque[float] = field(default_factory=lambda: deque(maxlen=BASELINE_SAMPLES))
    base_dispatch: deque[float] = field(default_factory=lambda: deque(maxlen=BASELINE_SAMPLES))
    base_at: float | None = None  # when the last lone job finished
    probe_since: float | None = None  # probing: the limit is 1 until a lone job finished
    saved: float = 1.0  # the limit to return to after a probe


class AdaptiveConcurrency:
    """Per-workflow dispatch limits between 1 and each workflow's maximum.

    The bridge calls `sent` when it hands a job to n8n, then `accepted` (n8n answered 2xx) or
    `refused` (it did not), and `finished` when the job reached a final status (`ok=False` when
    n8n never delivered a result: timeout, lost) or `forget` (cancelled, killed: says nothing
    about n8n). `binding(key)` says the last claim filled every slot. `limits()` are the caps for
    the next claim. With `adaptive=False` every limit stays at its maximum (a fixed cap)."""

    def __init__(self, maxima: Mapping[str, int], *, start: int = 1, adaptive: bool = True) -> None:
        self.adaptive = adaptive
        self._workflows = {
            key: _Workflow(maximum, float(min(maximum, start) if adaptive else maximum))
            for key, maximum in maxima.items()
        }
        self._jobs: dict[str, _Job] = {}
        self._changes: dict[tuple[str, str], int] = {}

    # -- what the claim and the metrics read ----------------------------------------------------------

    def limit(self, key: str) -> int:
        state = self._workflows[key]
        if state.probe_since is not None:
            return 1
        return max(1, min(state.maximum, math.floor(state.limit)))

    def current(self) -> dict[str, int]:
        """Every workflow's limit now (for metrics)."""
        return {key: self.limit(key) for key in self._workflows}

    def limits(self, *, now: float) -> dict[str, int]:
        """The caps for a claim at `now`. A round whose verdict is already a collapse (more than
        half of its results are, or will be, slower than COLLAPSE x the baseline: jobs still out
        for longer than that count) is judged now, not when its last result comes: a stalled n8n
        sends no results. A probe that found no lone job within PROBE_TIMEOUT ends (other
        replicas' jobs may keep every slot taken) and is not tried again for PROBE_SECONDS."""
        for key, state in self._workflows.items():
            if state.probe_since is not None and now - state.probe_since > PROBE_TIMEOUT:
                state.base_at = now
                self._resume(key, state)
            elif self.adaptive and state.probe_since is None and state.base_result:
                late = COLLAPSE * statistics.median(state.base_result)
                slow = sum(seconds > late for seconds in state.results) + sum(
                    1
                    for job in self._jobs.values()
                    if job.key == key and job.epoch == state.epoch and now - job.sent_at > late
                )
                if slow > self.limit(key) / 2:
                    self._count(key, "collapse")
                    state.limit = max(1.0, state.limit * DECREASE)
                    self._next_round(state)
        return self.current()

    def changes(self) -> dict[tuple[str, str], int]:
        """How often each workflow's limit moved, by reason: grow, shrink, collapse, error, probe."""
        return dict(self._changes)

    def watched(self) -> list[str]:
        """Jobs sent and not finished yet: the bridge asks the store which of them have ended."""
        return list(self._jobs)

    def probing(self, key: str) -> bool:
        return self._workflows[key].probe_since is not None

    # -- observations ---------------------------------------------------------------------------------

    def sent(self, key: str, job_id: str, *, now: float) -> None:
        self._end(job_id)  # sent again (a retry): the earlier attempt is over
        state = self._workflows[key]
        for job in self._jobs.values():
            if job.key == key:
                job.alone = False  # it no longer runs alone: its time says nothing of the baseline
        self._jobs[job_id] = _Job(key, now, state.epoch, alone=state.in_flight == 0)
        state.in_flight += 1

    def binding(self, key: str) -> None:
        self._workflows[key].binding = True

    def accepted(self, job_id: str, seconds: float) -> None:
        job = self._jobs.get(job_id)
        if job is not None:
            job.dispatch_seconds = seconds

    def refused(self, job_id: str, *, now: float) -> None:
        """n8n did not take the job (unreachable, 4xx/5xx): it goes back to the queue; an error."""
        job = self._end(job_id)
        if job is not None:
            self._error(job, now)

    def finished(self, job_id: str, *, now: float, ok: bool = True) -> None:
        job = self._end(job_id)
        if job is None:
            return
        if not ok:
            self._error(job, now)
            return
        state = self._workflows[job.key]
        seconds = now - job.sent_at
        if job.alone:
            state.base_result.append(seconds)
            if job.dispatch_seconds is not None:
                state.base_dispatch.append(job.dispatch_seconds)
            state.base_at = now
            if state.probe_since is not None:  # the probe has its baseline: back to the limit before
                self._resume(job.key, state)
                return
        if job.epoch != state.epoch or state.probe_since is not None or not self.adaptive:
            return
        state.results.append(seconds)
        if job.dispatch_seconds is not None:
            state.dispatches.append(job.dispatch_seconds)
        if len(state.results) >= self.limit(job.key):  # a round: as many results as there are slots
            self._end_round(job.key, state, now)

    def forget(self, job_id: str) -> None:
        """The job ended without telling anything about n8n (cancelled, killed)."""
        self._end(job_id)

    # -- the controller -------------------------------------------------------------------------------

    def _end(self, job_id: str) -> _Job | None:
        job = self._jobs.pop(job_id, None)
        if job is not None:
            self._workflows[job.key].in_flight -= 1
        return job

    def _error(self, job: _Job, now: float) -> None:
        state = self._workflows[job.key]
        if not self.adaptive or job.epoch != state.epoch:
            return  # sent before the last change: that change already answered what it shows
        if state.probe_since is not None:
            state.probe_since, state.limit = None, state.saved
        self._count(job.key, "error")
        state.limit = max(1.0, state.limit * DECREASE)
        self._next_round(state)

    def _end_round(self, key: str, state: _Workflow, now: float) -> None:
        if (state.base_at is None or now - state.base_at > PROBE_SECONDS) and state.limit > 1:
            # no lone job lately: measure the baseline again; this round is judged against it then
            self._count(key, "probe")
            state.probe_since, state.saved = now, state.limit
            state.epoch += 1
            return
        self._judge(key, state)

    def _resume(self, key: str, state: _Workflow) -> None:
        """End a probe: back to the limit from before it, judging the round that started it."""
        state.probe_since, state.limit = None, state.saved
        self._judge(key, state)

    def _judge(self, key: str, state: _Workflow) -> None:
        """The round's verdict: the limit in proportion to how much slower than a lone job n8n
        answered (plus QUEUE while it bound), at least halved on a collapse; then a new round."""
        if state.base_result and state.results:
            slowdown = _slowdown(state.base_result, state.results)
            if state.base_dispatch and state.dispatches:
                slowdown = max(slowdown, _slowdown(state.base_dispatch, state.dispatches))
            target = state.limit * min(1.0, TOLERANCE / slowdown) + QUEUE
            if slowdown > COLLAPSE:
                target, reason = min(target, state.limit * DECREASE), "collapse"
            elif not state.binding:  # the limit held nothing back: no evidence n8n could take more
                target, reason = min(target, state.limit), "shrink"
            else:
                reason = "grow" if target > state.limit else "shrink"
            target = max(1.0, min(float(state.maximum), target))
            if math.floor(target) != math.floor(state.limit):
                self._count(key, reason)
            state.limit = target
        self._next_round(state)

    def _count(self, key: str, reason: str) -> None:
        self._changes[key, reason] = self._changes.get((key, reason), 0) + 1

    @staticmethod
    def _next_round(state: _Workflow) -> None:
        state.epoch += 1
        state.results.clear()
        state.dispatches.clear()
        state.binding = False


def _slowdown(baseline: deque[float], samples: list[float]) -> float:
    base = statistics.median(baseline)
    return statistics.median(samples) / base if base > 0 else 1.0
