"""The adaptive dispatch limit as pure logic: observations in, the limit out (ADR 61).

`Model` stands in for n8n with a fluid approximation of what was measured on it: a lone execution
reaches `lone_share` of n8n's best rate, the rate grows with concurrency up to `best` and stays
there; past that point extra jobs only wait, so the result time is concurrency / rate (Little's
law). Rounds send `limit` jobs at once and finish them together after that time.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import count

from n8nctl.bridge.concurrency import (
    COLLAPSE,
    PROBE_SECONDS,
    PROBE_TIMEOUT,
    AdaptiveConcurrency,
)

KEY = "tiktok_live_helper"
_ids = count()


@dataclass
class Model:
    best: float = 15.0  # n8n's best rate, executions/s
    lone: float = 0.1  # a lone execution's result time, s
    dispatch_share: float = 0.75  # the webhook answers after this share of the result time

    def rate(self, concurrency: int) -> float:
        lone_rate = 1 / self.lone
        return min(self.best, lone_rate + (self.best - lone_rate) * (concurrency - 1) / 3)

    def result_time(self, concurrency: int) -> float:
        return concurrency / self.rate(concurrency)


@dataclass
class Driver:
    limiter: AdaptiveConcurrency
    now: float = 1000.0

    def round(
        self, result_time: float, *, dispatch_time: float | None = None, binding: bool = True
    ) -> list[str]:
        """Send as many jobs as the limit allows, all at once; they finish together after `result_time`."""
        jobs = [f"job-{next(_ids)}" for _ in range(self.limiter.limit(KEY))]
        for job_id in jobs:
            self.limiter.sent(KEY, job_id, now=self.now)
        if binding:
            self.limiter.binding(KEY)
        for job_id in jobs:
            self.limiter.accepted(job_id, dispatch_time if dispatch_time is not None else result_time * 0.75)
        self.now += result_time
        for job_id in jobs:
            self.limiter.finished(job_id, now=self.now)
        return jobs

    def run(self, model: Model, rounds: int) -> list[int]:
        """`rounds` rounds against `model`; the limit after each."""
        trajectory = []
        for _ in range(rounds):
            concurrency = self.limiter.limit(KEY)
            self.round(model.result_time(concurrency), dispatch_time=model.result_time(concurrency) * 0.75)
            trajectory.append(self.limiter.limit(KEY))
        return trajectory


def limiter(*, start: int = 1, maximum: int = 16, adaptive: bool = True) -> AdaptiveConcurrency:
    return AdaptiveConcurrency({KEY: maximum, "other": 2}, start=start, adaptive=adaptive)


def test_grows_while_latency_stays_flat_and_never_past_the_maximum() -> None:
    drive = Driver(limiter())
    assert drive.limiter.limit(KEY) == 1
    seen = []
    for _ in range(12):
        drive.round(0.1)
        seen.append(drive.limiter.limit(KEY))
    assert seen[:5] == [3, 5, 7, 9, 11], "additive increase: QUEUE (2) more slots per flat round"
    assert seen[-1] == 16 and max(seen) == 16, "bounded by the registry's max_concurrency"
    assert drive.limiter.limit("other") == 1, "state is per workflow: the other one did not move"


def test_does_not_grow_when_the_limit_held_nothing_back() -> None:
    drive = Driver(limiter())
    drive.round(0.1)  # a first round that binds: the baseline comes from its lone job
    before = drive.limiter.limit(KEY)
    assert before == 3
    for _ in range(10):
        drive.round(0.1, binding=False)
    assert drive.limiter.limit(KEY) == before, "a trickle of jobs is no evidence n8n takes more"


def test_halves_on_an_error_once_per_round_and_never_below_one() -> None:
    drive = Driver(limiter())
    while drive.limiter.limit(KEY) < 8:
        drive.round(0.1)
    limit = drive.limiter.limit(KEY)
    in_flight = [f"late-{i}" for i in range(limit)]
    for job_id in in_flight:
        drive.limiter.sent(KEY, job_id, now=drive.now)
    drive.limiter.refused(in_flight[0], now=drive.now)
    assert drive.limiter.limit(KEY) == limit // 2
    for job_id in in_flight[1:]:  # sent before the cut: the cut already answered them
        drive.limiter.refused(job_id, now=drive.now)
    assert drive.limiter.limit(KEY) == limit // 2
    for _ in range(6):
        drive.limiter.sent(KEY, "after", now=drive.now)
        drive.limiter.refused("after", now=drive.now)
    assert drive.limiter.limit(KEY) == 1, "each error of a job sent after the last cut halves again"


def test_a_result_that_never_came_counts_as_an_error() -> None:
    drive = Driver(limiter(start=8))
    drive.limiter.sent(KEY, "lost", now=drive.now)
    drive.limiter.finished("lost", now=drive.now + 300, ok=False)  # TIMEOUT: no result from n8n
    assert drive.limiter.limit(KEY) == 4


def test_halves_when_latency_collapses() -> None:
    drive = Driver(limiter())
    drive.round(0.1)  # lone job: baseline 0.1 s
    while drive.limiter.limit(KEY) < 8:
        drive.round(0.1)
    limit = drive.limiter.limit(KEY)
    drive.round(0.1 * COLLAPSE * 1.5)
    assert drive.limiter.limit(KEY) <= limit // 2, "at least halved"
    assert drive.limiter.changes()[KEY, "collapse"] == 1


def test_backs_off_in_proportion_when_n8n_only_queues_the_extra_jobs() -> None:
    drive = Driver(limiter())
    drive.round(0.1)
    while drive.limiter.limit(KEY) < 12:
        drive.round(0.1)
    drive.round(0.1 * 4)  # 4x slower: not a collapse, yet more than the tolerance
    assert 8 <= drive.limiter.limit(KEY) < 12


def test_dispatch_latency_alone_can_hold_the_limit_back() -> None:
    """Queue mode can answer webhooks fast while executions wait; regular mode the other way round:
    either time growing counts."""
    drive = Driver(limiter())
    drive.round(0.1, dispatch_time=0.05)
    while drive.limiter.limit(KEY) < 10:
        drive.round(0.1, dispatch_time=0.05)
    limit = drive.limiter.limit(KEY)
    drive.round(0.1, dispatch_time=0.05 * COLLAPSE * 2)
    assert drive.limiter.limit(KEY) <= limit // 2


def test_finds_n8ns_best_pace_from_one_and_stays_below_collapse() -> None:
    model = Model()
    drive = Driver(limiter())
    trajectory = drive.run(model, 40)
    settled = trajectory[10:]
    assert all(model.rate(limit) >= 0.95 * model.best for limit in settled), trajectory
    assert all(model.result_time(limit) < COLLAPSE * model.lone for limit in settled), trajectory
    assert max(settled) - min(settled) <= 2, f"settles instead of oscillating: {trajectory}"
    assert trajectory.index(next(x for x in trajectory if model.rate(x) >= 0.95 * model.best)) <= 4


def test_from_the_maximum_it_probes_a_lone_job_then_comes_down_to_the_same_pace() -> None:
    model = Model()
    drive = Driver(limiter(start=16))
    drive.round(model.result_time(16))  # the first round: no job ran alone, no baseline yet
    assert drive.limiter.probing(KEY) and drive.limiter.limit(KEY) == 1
    drive.round(model.result_time(1))  # the lone job: the baseline, against which the first round
    assert not drive.limiter.probing(KEY)  # (10x slower: a collapse) is judged: straight down
    assert drive.limiter.limit(KEY) == 6
    trajectory = drive.run(model, 30)
    from_one = Driver(limiter()).run(model, 30)
    assert abs(trajectory[-1] - from_one[-1]) <= 1, (trajectory, from_one)
    assert trajectory[-1] < 16 and model.rate(trajectory[-1]) >= 0.95 * model.best, trajectory


def test_backs_off_when_n8n_slows_down_and_recovers_when_it_comes_back() -> None:
    drive = Driver(limiter(maximum=32))
    fast, slow = Model(best=30.0), Model(best=12.0)  # e.g. one of two queue-mode workers stopped
    before = drive.run(fast, 30)[-1]
    during = drive.run(slow, 30)[-1]
    after = drive.run(fast, 30)[-1]
    assert during < before * 0.7, (before, during)
    assert abs(after - before) <= 2, (before, during, after)
    assert slow.rate(during) >= 0.95 * slow.best


def test_the_baseline_is_measured_again_after_a_while() -> None:
    drive = Driver(limiter())
    model = Model()
    drive.run(model, 10)
    assert not drive.limiter.probing(KEY)
    limit = drive.limiter.limit(KEY)
    while not drive.limiter.probing(KEY):
        drive.round(model.result_time(drive.limiter.limit(KEY)))
    assert drive.now - 1000 > PROBE_SECONDS
    drive.round(model.result_time(1))
    assert not drive.limiter.probing(KEY) and abs(drive.limiter.limit(KEY) - limit) <= 2


def test_a_probe_that_gets_no_lone_job_ends_after_its_timeout() -> None:
    drive = Driver(limiter(start=16))
    drive.round(1.0)
    assert drive.limiter.probing(KEY)
    assert drive.limiter.limits(now=drive.now + 1)[KEY] == 1
    assert drive.limiter.limits(now=drive.now + PROBE_TIMEOUT + 1)[KEY] == 16
    drive.round(1.0)  # the next round does not probe again at once
    assert not drive.limiter.probing(KEY)


def test_cancelled_jobs_say_nothing_and_free_their_slot_in_the_count() -> None:
    drive = Driver(limiter(start=4))
    drive.limiter.sent(KEY, "cancelled", now=drive.now)
    drive.limiter.forget("cancelled")
    assert drive.limiter.watched() == []
    drive.limiter.sent(KEY, "lone", now=drive.now)  # nothing else in flight: it runs alone
    drive.limiter.finished("lone", now=drive.now + 0.1)
    assert drive.limiter.limit(KEY) == 4
    drive.round(0.1)
    assert drive.limiter.limit(KEY) == 6, "the baseline came from the lone job; the round was flat"


def test_a_fixed_cap_when_not_adaptive() -> None:
    drive = Driver(limiter(start=1, adaptive=False))
    assert drive.limiter.limit(KEY) == 16
    drive.limiter.sent(KEY, "x", now=drive.now)
    drive.limiter.refused("x", now=drive.now)
    drive.round(5.0)
    assert drive.limiter.current() == {KEY: 16, "other": 2}


def test_a_stalled_n8n_halves_the_limit_before_any_result_comes() -> None:
    drive = Driver(limiter())
    drive.round(0.1)
    while drive.limiter.limit(KEY) < 8:
        drive.round(0.1)
    limit = drive.limiter.limit(KEY)
    for i in range(limit):
        drive.limiter.sent(KEY, f"stuck-{i}", now=drive.now)
    assert drive.limiter.limits(now=drive.now + 0.1 * COLLAPSE * 0.9)[KEY] == limit, "not late yet"
    assert drive.limiter.limits(now=drive.now + 0.1 * COLLAPSE * 1.1)[KEY] == limit // 2
    assert drive.limiter.limits(now=drive.now + 0.1 * COLLAPSE * 1.2)[KEY] == limit // 2, (
        "once: the late jobs were sent before the cut"
    )
