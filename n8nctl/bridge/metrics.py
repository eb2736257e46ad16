"""Prometheus metrics, one registry per bridge instance (no process-global state).

Names follow Prometheus' conventions: `bridge_` prefix, counters end in `_total` (added by the
client library), durations are histograms in seconds, gauges read from the store at scrape time.
The alert rules in templates/monitoring/alerts.yml.j2 are written against these names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

# seconds: intake and dispatch are fast paths, a job's whole life can take its timeout (<= 1 h default)
FAST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
JOB_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)


class _StoreGauges(Collector):
    """Queue depth and dead letters, read from the store at each scrape (every replica sees the same)."""

    def __init__(self, queue_depth: Callable[[], dict[str, int]], dead_letters: Callable[[], int]) -> None:
        self._queue_depth, self._dead_letters = queue_depth, dead_letters

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily("bridge_jobs_active", "Jobs not yet finished, by status", labels=["status"])
        depth = self._queue_depth()
        for status in ("pending", "running"):
            gauge.add_metric([status], depth.get(status, 0))
        yield gauge
        yield GaugeMetricFamily(
            "bridge_callbacks_dead",
            "Callbacks in the dead letter (every attempt failed)",
            value=self._dead_letters(),
        )


class _Limits(Collector):
    """Each workflow's dispatch concurrency limit as this replica holds it now, and how often it
    moved and why (ADR 61)."""

    def __init__(
        self, limits: Callable[[], dict[str, int]], changes: Callable[[], dict[tuple[str, str], int]]
    ) -> None:
        self._limits, self._changes = limits, changes

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily(
            "bridge_dispatch_concurrency_limit",
            "Jobs of a workflow this bridge lets n8n run at once (adaptive, up to max_concurrency)",
            labels=["workflow_key"],
        )
        for key, limit in sorted(self._limits().items()):
            gauge.add_metric([key], limit)
        yield gauge
        counter = CounterMetricFamily(
            "bridge_dispatch_limit_changes",
            "Moves of the adaptive dispatch limit: grow, shrink, collapse, error (halved), probe",
            labels=["workflow_key", "reason"],
        )
        for (key, reason), count in sorted(self._changes().items()):
            counter.add_metric([key, reason], count)
        yield counter


class Metrics:
    def __init__(
        self,
        queue_depth: Callable[[], dict[str, int]],
        dead_letters: Callable[[], int],
        limits: Callable[[], dict[str, int]] = dict,
        limit_changes: Callable[[], dict[tuple[str, str], int]] = dict,
    ) -> None:
        self.registry = registry = CollectorRegistry()
        self.accepted = Counter(
            "bridge_jobs_accepted", "Jobs accepted (202)", ["workflow_key"], registry=registry
        )
        self.rejected = Counter(
            "bridge_requests_rejected", "Requests answered with an error", ["error_code"], registry=registry
        )
        self.intake_seconds = Histogram(
            "bridge_intake_seconds",
            "Time to answer POST /v1/jobs (signed, validated, durably stored)",
            buckets=FAST_BUCKETS,
            registry=registry,
        )
        self.intake_batch = Histogram(
            "bridge_intake_batch_size",
            "Jobs committed per intake transaction",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
            registry=registry,
        )
        self.dispatches = Counter(
            "bridge_dispatches", "Attempts to hand a job to n8n", ["outcome"], registry=registry
        )
        self.dispatch_seconds = Histogram(
            "bridge_dispatch_seconds",
            "Time n8n took to answer a dispatch",
            buckets=FAST_BUCKETS,
            registry=registry,
        )
        self.results = Counter(
            "bridge_n8n_results",
            "Results n8n posted, by status and what the bridge made of them",
            ["status", "recorded"],
            registry=registry,
        )
        self.finished = Counter(
            "bridge_jobs_finished",
            "Jobs that reached a final status",
            ["workflow_key", "status"],
            registry=registry,
        )
        self.job_seconds = Histogram(
            "bridge_job_duration_seconds",
            "From acceptance to the final status, by workflow and status",
            ["workflow_key", "status"],
            buckets=JOB_BUCKETS,
            registry=registry,
        )
        self.callbacks = Counter(
            "bridge_callback_attempts", "Attempts to deliver a callback", ["outcome"], registry=registry
        )
        self.callback_seconds = Histogram(
            "bridge_callback_attempt_seconds",
            "Duration of one callback delivery attempt",
            buckets=FAST_BUCKETS,
            registry=registry,
        )
        self.reconciliations = Counter(
            "bridge_reconciliations",
            "Overdue running jobs checked against their n8n execution, by outcome",
            ["outcome"],
            registry=registry,
        )
        registry.register(_StoreGauges(queue_depth, dead_letters))
        registry.register(_Limits(limits, limit_changes))

    def finish(self, workflow_key: str, status: str, seconds: float | None) -> None:
        """A job reached `status`; `seconds` since its acceptance when known."""
        self.finished.labels(workflow_key, status).inc()
        if seconds is not None:
            self.job_seconds.labels(workflow_key, status).observe(max(0.0, seconds))

    def render(self) -> bytes:
        return generate_latest(self.registry)
