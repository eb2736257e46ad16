"""Prometheus metrics, one registry per bridge instance (no process-global state)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


class _QueueDepth(Collector):
    def __init__(self, read: Callable[[], dict[str, int]]) -> None:
        self._read = read

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily("bridge_jobs_active", "Jobs not yet finished, by status", labels=["status"])
        depth = self._read()
        for status in ("pending", "running"):
            gauge.add_metric([status], depth.get(status, 0))
        yield gauge


class Metrics:
    def __init__(self, queue_depth: Callable[[], dict[str, int]]) -> None:
        self.registry = CollectorRegistry()
        self.accepted = Counter(
            "bridge_jobs_accepted", "Jobs accepted (202)", ["workflow_key"], registry=self.registry
        )
        self.rejected = Counter(
            "bridge_requests_rejected",
            "Requests answered with an error",
            ["error_code"],
            registry=self.registry,
        )
        self.finished = Counter(
            "bridge_jobs_finished",
            "Jobs that reached a final status",
            ["workflow_key", "status"],
            registry=self.registry,
        )
        self.dispatches = Counter(
            "bridge_dispatches", "Attempts to hand a job to n8n", ["outcome"], registry=self.registry
        )
        self.callbacks = Counter(
            "bridge_callback_attempts", "Attempts to deliver a callback", ["outcome"], registry=self.registry
        )
        self.intake_batch = Histogram(
            "bridge_intake_batch_size",
            "Jobs committed per intake transaction",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
            registry=self.registry,
        )
        self.registry.register(_QueueDepth(queue_depth))

    def render(self) -> bytes:
        return generate_latest(self.registry)
