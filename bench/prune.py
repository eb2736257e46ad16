"""`Store.prune_audit` at millions of audit rows, SQLite and PostgreSQL: the delete batches' plans and
timings, and what a bridge writing at the same time sees.

Fills a store with --rows audit events (half past their 90-day retention, a tenth of the rest on the
365-day class) and jobs for a fifth of them, then prunes in batches of 5,000 while one thread keeps
submitting jobs and records each submit's latency:

    .venv/bin/python bench/prune.py [--rows 1000000] [--engine sqlite|postgres|both]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.store_submit import job  # noqa: E402
from n8nctl.store import Store  # noqa: E402
from n8nctl.store.schema import audit_events, jobs  # noqa: E402
from tests.pg import PostgresServer, find_bin_dir  # noqa: E402


def fill(store: Store, rows: int) -> None:
    now = datetime.now(UTC)
    chunk = 20_000
    with store._write() as conn:
        for start in range(0, rows, chunk):
            events, job_rows = [], []
            for i in range(start, min(rows, start + chunk)):
                job_number = i // 5  # five events a job; a job is old or fresh as a whole
                old = job_number % 2 == 0
                days = 365 if job_number % 10 == 1 else 90
                at = now - timedelta(days=(days + 10) if old else 5, seconds=i % 3600)
                job_id = f"j{i // 5}"
                if i % 5 == 0:
                    job_rows.append(
                        {
                            **job().row,
                            "job_id": job_id,
                            "status": "success",
                            "retention_days": days,
                            "accepted_at": at,
                            "deadline_at": at,
                            "completed_at": at,
                            "updated_at": at,
                            "next_dispatch_at": at,
                        }
                    )
                events.append(
                    {
                        "job_id": job_id,
                        "client_id": "flowbiz",
                        "workflow_key": "tiktok_live_helper",
                        "at": at,
                        "source": "bridge",
                        "action": "accepted",
                        "retention_days": days,
                    }
                )
            if job_rows:
                conn.execute(jobs.insert(), job_rows)
            conn.execute(audit_events.insert(), events)


def plans(store: Store) -> list[str]:
    out = []
    now = datetime.now(UTC)
    with store._read() as conn:
        for query in (store.expired_events(90, now), store.expired_jobs(90, now)):
            sql = query.limit(1000)
            statement = str(sql.compile(conn, compile_kwargs={"literal_binds": True}))
            if conn.dialect.name == "sqlite":
                rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}").all()
                out.append(" | ".join(r[-1] for r in rows))
            else:
                rows = conn.exec_driver_sql(f"EXPLAIN ANALYZE {statement}").all()
                out.append("\n      ".join(r[0] for r in rows))
    return out


def measure(url: str, rows: int) -> None:
    store = Store(url)
    store.migrate()
    started = time.monotonic()
    fill(store, rows)
    with store._write() as conn:
        conn.exec_driver_sql("ANALYZE")  # as autovacuum (PostgreSQL) would; SQLite: for its planner
    print(f"  filled {rows:,} events in {time.monotonic() - started:.1f} s")
    for plan in plans(store):
        print(f"  plan: {plan}")
    latencies: list[float] = []
    stop = threading.Event()

    def writer() -> None:
        while not stop.is_set():
            t = time.perf_counter()
            store.submit_batch([job()])
            latencies.append((time.perf_counter() - t) * 1000)

    thread = threading.Thread(target=writer)
    thread.start()
    batches: list[float] = []
    last = [time.perf_counter()]

    def tick(_: object) -> None:
        batches.append(time.perf_counter() - last[0])
        last[0] = time.perf_counter()

    started = time.monotonic()
    pruned = store.prune_audit(progress=tick)
    took = time.monotonic() - started
    stop.set()
    thread.join()
    with store._read() as conn:
        left = conn.execute(sa.select(sa.func.count()).select_from(audit_events)).scalar_one()
    print(
        f"  pruned {pruned.events:,} events and {pruned.jobs:,} jobs in {took:.1f} s "
        f"({pruned.events / took:,.0f} events/s); {left:,} events left"
    )
    if latencies:
        q = statistics.quantiles(latencies, n=100)
        print(
            f"  concurrent submits: {len(latencies)}, p50 {q[49]:.1f} ms, p99 {q[98]:.1f} ms, "
            f"max {max(latencies):.0f} ms"
        )
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--engine", choices=["sqlite", "postgres", "both"], default="both")
    args = parser.parse_args()
    if args.engine in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as folder:
            print(f"SQLite ({args.rows:,} events)")
            measure(f"sqlite:///{folder}/bridge.db", args.rows)
    if args.engine in ("postgres", "both"):
        bin_dir = find_bin_dir()
        assert bin_dir is not None, "PostgreSQL binaries not found"
        server = PostgresServer.start(bin_dir)
        try:
            print(f"PostgreSQL ({args.rows:,} events)")
            measure(server.create_database(), args.rows)
        finally:
            server.stop()


if __name__ == "__main__":
    main()
