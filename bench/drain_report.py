"""bench/drain.py's printed report: the direct runs, the bursts (and the replicas'), their limit's
path, the end-to-end overhead and the back-off, from the results it also writes as JSON."""

from __future__ import annotations

import statistics
from typing import Any

from tabulate import tabulate


def report(results: dict[str, Any]) -> None:
    print(f"\nmachine: {results['machine']}, n8n {results.get('n8n_version')}, max {results.get('maximum')}")
    if "direct" in results:
        report_drain(results)
    report_backoff(results)


def report_drain(results: dict[str, Any]) -> None:
    best = results["baseline_executions_per_second"]
    direct_rows = [
        [
            r["concurrency"],
            r["executions_per_second"],
            r.get("webhook_p50_ms"),
            r.get("result_p50_ms"),
            f"{r.get('n8n_cpu_ms_per_job')} / {r.get('bench_cpu_ms_per_job')}",
            r.get("load"),
        ]
        for r in results["direct"]
    ]
    headers = [
        "direct: concurrency", "executions/s", "webhook p50 ms", "result p50 ms", "CPU ms/job n8n / bench",
        "load 1-min",
    ]  # fmt: skip
    print(tabulate(direct_rows, headers=headers))
    rows = [
        [
            f"{b['replicas']} replica(s)" if "replicas" in b else f"from {b['start_limit']}",
            b["jobs_per_second"],
            best,
            f"{b['jobs_per_second'] / best:.2f}x",
            b["direct_around"],
            f"{b['jobs_per_second'] / statistics.mean(b['direct_around']):.2f}x",
            f"{b['failed']} / {b['lost']}",
            b["settled_limit"],
            b["settled_at_seconds"],
            " / ".join(str(b.get(f"{who}_cpu_ms_per_job")) for who in ("bridge", "n8n", "bench")),
            b["load"],
        ]
        for b in results["bursts"] + results.get("replicas", [])
    ]
    headers = [
        "drain",
        "jobs/s",
        "best direct",
        "ratio",
        "direct around",
        "ratio",
        "failed / lost",
        "limit settled",
        "at s",
        "CPU ms/job bridge / n8n / bench",
        "load",
    ]
    print()
    print(tabulate(rows, headers=headers))
    for b in results["bursts"] + results.get("replicas", []):
        print(f"  trajectory from {b['start_limit']} [s, limit, running]: {b['trajectory']}")
        print(f"  limit moves: {b['limit_moves']}")
    if results.get("e2e"):
        e = results["e2e"]
        print(
            f"\nend-to-end overhead ({e['jobs']} jobs, one at a time): p50 {e['overhead_p50_ms']} ms, "
            f"p95 {e['overhead_p95_ms']} ms (end to end p50 {e['e2e_p50_ms']} ms, "
            f"n8n's execution p50 {e['execution_p50_ms']} ms); straight at n8n, measured the same "
            f"way: p50 {e['direct_overhead_p50_ms']} ms; the bridge's share {e['bridge_share_p50_ms']} ms"
        )


def report_backoff(results: dict[str, Any]) -> None:
    for b in results.get("backoff", []):
        before, during, after = b["before"], b["during"], b["after"]
        print(
            f"\nback-off, {b['how']}, from {b['slowed_at_seconds']} s "
            f"to {b['released_at_seconds']} s: limit {before['limit_median']} -> "
            f"{during['limit_median']} -> {after['limit_median']}, jobs/s {before['jobs_per_second']} -> "
            f"{during['jobs_per_second']} -> {after['jobs_per_second']}; "
            f"failed {b['failed']}, lost {b['lost']}"
        )
        print(f"  trajectory [s, limit, running]: {b['trajectory']}")
