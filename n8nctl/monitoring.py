"""The bridge's figures over the last hour, from the job store, against the thresholds in settings.

`last_hour` is the one source for `n8nctl status` (the bridge's line), `n8nctl check` (alerts) and
the thresholds the Prometheus alert rules are rendered with: the same numbers, decided once.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel

from n8nctl.settings import Settings
from n8nctl.store import Store

WINDOW = timedelta(hours=1)
FAILED_ATTEMPTS = ("callback_pending", "callback_dead")  # an attempt that did not deliver


class Breach(BaseModel):
    """A figure over its threshold."""

    figure: str
    value: float
    threshold: float
    message: str


class BridgeFigures(BaseModel):
    window_start: datetime
    window_end: datetime
    jobs_accepted: int
    jobs_succeeded: int
    jobs_failed: int
    """Every failed job, timed-out ones included."""
    jobs_timed_out: int
    job_failure_rate: float | None
    """failed / (succeeded + failed); None when no job finished in the window."""
    callback_attempts: int
    callback_failure_rate: float | None
    """Attempts that did not deliver (retried or dead) / all attempts; None without attempts."""
    latency_p50_seconds: float | None
    latency_p95_seconds: float | None
    """From acceptance to the final status, of the jobs that finished in the window."""
    queue_depth: int
    """Jobs pending or running now."""
    dead_letters: int
    """Callbacks in the dead letter now."""
    breaches: list[Breach]


def percentile(values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile (the value at rank ceil(fraction * n)); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def last_hour(settings: Settings, store: Store, *, now: datetime | None = None) -> BridgeFigures:
    end = now or datetime.now(UTC)
    raw = store.figures_since(end - WINDOW)
    finished = raw["finished"]
    succeeded = sum(1 for status, _, _ in finished if status == "success")
    failed = len(finished) - succeeded
    outcomes = raw["callback_outcomes"]
    attempts = sum(outcomes.values())
    durations = [seconds for _, _, seconds in finished]
    figures = BridgeFigures(
        window_start=end - WINDOW,
        window_end=end,
        jobs_accepted=raw["accepted"],
        jobs_succeeded=succeeded,
        jobs_failed=failed,
        jobs_timed_out=sum(1 for status, code, _ in finished if status == "failed" and code == "TIMEOUT"),
        job_failure_rate=failed / len(finished) if finished else None,
        callback_attempts=attempts,
        callback_failure_rate=sum(outcomes.get(a, 0) for a in FAILED_ATTEMPTS) / attempts
        if attempts
        else None,
        latency_p50_seconds=percentile(durations, 0.5),
        latency_p95_seconds=percentile(durations, 0.95),
        queue_depth=raw["queue_depth"],
        dead_letters=raw["dead_letters"],
        breaches=[],
    )
    figures.breaches = breaches(settings, figures, samples=(len(finished), attempts))
    return figures


def breaches(settings: Settings, figures: BridgeFigures, *, samples: tuple[int, int]) -> list[Breach]:
    """The figures over their thresholds. Rates and latency count only over N8NCTL_ALERT_MIN_SAMPLE
    events, so one failed job of two is not an alert."""
    jobs, attempts = (count >= settings.n8nctl_alert_min_sample for count in samples)
    checks: list[tuple[str, float | None, float, str]] = [
        (
            "job_failure_rate",
            figures.job_failure_rate if jobs else None,
            settings.n8nctl_alert_job_failure_rate,
            "of the jobs that finished in the last hour failed",
        ),
        (
            "callback_failure_rate",
            figures.callback_failure_rate if attempts else None,
            settings.n8nctl_alert_callback_failure_rate,
            "of the callback attempts in the last hour failed",
        ),
        (
            "latency_p95_seconds",
            figures.latency_p95_seconds if jobs else None,
            settings.n8nctl_alert_latency_p95_seconds,
            "s: the p95 job latency over the last hour",
        ),
        ("queue_depth", figures.queue_depth, settings.n8nctl_alert_queue_depth, "jobs pending or running"),
        (
            "dead_letters",
            figures.dead_letters,
            settings.n8nctl_alert_dead_letters,
            "callbacks in the dead letter (n8nctl jobs redeliver --dead)",
        ),
    ]
    return [
        Breach(
            figure=figure,
            value=value,
            threshold=limit,
            message=f"{_shown(figure, value)} {what} (threshold {_shown(figure, limit)})",
        )
        for figure, value, limit, what in checks
        if value is not None and value > limit
    ]


def _shown(figure: str, value: float) -> str:
    return f"{value:.0%}" if figure.endswith("_rate") else f"{value:g}"
