"""`monitoring.last_hour`: the bridge's figures from a real job store, and the thresholds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from n8nctl.monitoring import last_hour, percentile
from n8nctl.settings import Settings
from n8nctl.store import NewJob, Store
from tests.conftest import new_job

LEASE = timedelta(seconds=60)


def _job(job_id: str, *, age: float, timeout: int = 300) -> NewJob:
    return new_job(job_id, offset=-age, timeout=timeout)


def _result(job_id: str, status: str) -> dict:
    return {
        "job_id": job_id,
        "execution_id": None,
        "status": status,
        "outputs": {},
        "error_code": None,
        "error_message": None,
        "audit": [],
        "started_at": None,
        "completed_at": None,
    }


@pytest.fixture
def store(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'bridge.db'}")
    store.migrate()
    yield store
    store.close()


def _settings(**values) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_the_last_hour_counts_what_the_store_holds(store):
    # outside the window: accepted and finished two hours ago
    store.submit_batch([_job("old", age=7300)])
    store.record_result({**_result("old", "success"), "completed_at": datetime.now(UTC) - timedelta(hours=2)})
    # inside: 10 s, 20 s, 30 s, 40 s jobs succeed; one fails; one times out; two still pending
    store.submit_batch([_job(f"ok{n}", age=10 * n) for n in range(1, 5)])
    for n in range(1, 5):
        store.record_result(_result(f"ok{n}", "success"))
    store.submit_batch(
        [_job("bad", age=50), _job("late", age=100, timeout=60), _job("p1", age=1), _job("p2", age=1)]
    )
    store.record_result(_result("bad", "failed"))
    store.expire_overdue()
    # callbacks: 6 jobs ended in the window (+1 before): deliver 3, fail 2 attempts, dead-letter 1
    deliveries = store.claim_deliveries(limit=10, lease=LEASE)
    outcomes = ["delivered", "delivered", "delivered", "pending", "pending", "dead", "delivered"]
    for delivery, state in zip(deliveries, outcomes, strict=True):
        store.delivery_result(
            delivery, state=state, status_code=500 if state != "delivered" else 200, error=None
        )

    figures = last_hour(_settings(n8nctl_alert_min_sample=1), store)

    assert (figures.jobs_accepted, figures.jobs_succeeded, figures.jobs_failed) == (8, 4, 2)
    assert figures.jobs_timed_out == 1
    assert figures.job_failure_rate == pytest.approx(2 / 6)
    assert (figures.callback_attempts, figures.callback_failure_rate) == (7, pytest.approx(3 / 7))
    assert figures.latency_p50_seconds == pytest.approx(30, abs=2)  # 10, 20, 30, 40, 50, 100: rank 3
    assert figures.latency_p95_seconds == pytest.approx(100, abs=2)
    assert (figures.queue_depth, figures.dead_letters) == (2, 1)
    assert {b.figure for b in figures.breaches} == {
        "job_failure_rate",
        "callback_failure_rate",
        "dead_letters",
    }


def test_thresholds_come_from_settings_and_small_samples_do_not_alert(store):
    store.submit_batch([_job("a", age=400), _job("b", age=5)])
    store.record_result(_result("a", "failed"))
    assert last_hour(_settings(), store).breaches == []  # 1 failed of 1, under the minimum sample
    strict = _settings(
        n8nctl_alert_min_sample=1, n8nctl_alert_latency_p95_seconds=60, n8nctl_alert_queue_depth=0
    )
    found = {b.figure: b for b in last_hour(strict, store).breaches}
    assert set(found) == {"job_failure_rate", "latency_p95_seconds", "queue_depth"}
    assert found["job_failure_rate"].message.startswith("100% of the jobs")
    assert found["queue_depth"].value == 1


def test_an_empty_store_has_no_rates_and_no_breaches(store):
    figures = last_hour(_settings(n8nctl_alert_min_sample=1), store)
    assert (figures.job_failure_rate, figures.callback_failure_rate, figures.latency_p95_seconds) == (
        None,
        None,
        None,
    )
    assert figures.breaches == []


def test_percentile_is_nearest_rank():
    assert percentile([], 0.5) is None
    assert percentile([3.0], 0.95) == 3.0
    assert percentile([float(n) for n in range(1, 101)], 0.95) == 95.0
    assert percentile([4.0, 1.0, 3.0, 2.0], 0.5) == 2.0
