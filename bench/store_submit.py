"""`Store.submit_batch` throughput, SQLite against PostgreSQL, both fsync'd as in production.

Starts its own PostgreSQL (tests/pg.py, fsync on, synchronous_commit on) and a SQLite file in a
temporary folder (WAL, synchronous=FULL); one thread submits batches of new jobs back to back:

    .venv/bin/python bench/store_submit.py [--seconds 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Figure, wait_quiet
from n8nctl.store import NewJob, Store
from tests.pg import PostgresServer, find_bin_dir


def job() -> NewJob:
    now = datetime.now(UTC)
    return NewJob(
        {
            "job_id": uuid.uuid4().hex,
            "client_id": "flowbiz",
            "workflow_key": "tiktok_live_helper",
            "priority": 5,
            "timeout_seconds": 300,
            "inputs": {"stream_id": "bench", "comments": [{"user": "a", "text": "hi"}]},
            "callback_url": "https://flowbiz.example/cb",
            "metadata": {"user_id": "u-1"},
            "user_id": "u-1",
            "request_hash": "0" * 64,
            "retention_days": 90,
            "accepted_at": now,
            "deadline_at": now + timedelta(seconds=300),
        }
    )


def rows_per_second(store: Store, batch: int, seconds: float) -> tuple[float, float]:
    """Rows/s and ms per batch (one transaction, one commit each)."""
    store.submit_batch([job() for _ in range(batch)])  # warm the pool and the statement cache
    batches, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        store.submit_batch([job() for _ in range(batch)])
        batches += 1
    return batches * batch / elapsed, elapsed / batches * 1000


def run(*, seconds: float = 3.0) -> list[Figure]:
    """rows/s of batches of 1 and 64 on each engine; PostgreSQL's against SQLite's as the ratio."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        raise SystemExit("no PostgreSQL binaries (apt-get install postgresql-15)")
    load = wait_quiet()
    server = PostgresServer.start(bin_dir, durable=True)
    rates: dict[tuple[str, int], tuple[float, float]] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            urls = {"sqlite": f"sqlite:///{tmp}/bench.db", "postgresql": server.create_database()}
            for name, url in urls.items():
                store = Store(url)
                store.migrate()
                for batch in (1, 64):
                    rates[name, batch] = rows_per_second(store, batch, seconds)
                store.close()
    finally:
        server.stop()
    return [
        Figure(
            "store", f"submit_batch, batches of {batch}, PostgreSQL", rates["postgresql", batch][0], "rows/s",
            "SQLite, same batches", rates["sqlite", batch][0],
            command=".venv/bin/python bench/store_submit.py",
            notes=f"ms per batch: PostgreSQL {rates['postgresql', batch][1]:.2f}, "
            f"SQLite {rates['sqlite', batch][1]:.2f}; both fsync'd",
            load_before=load,
        )
        for batch in (1, 64)
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    print("| batch | PostgreSQL rows/s | SQLite rows/s | PostgreSQL / SQLite |\n| --- | --- | --- | --- |")
    for figure in run(seconds=args.seconds):
        print(f"| {figure.name} | {figure.value:,.0f} | {figure.baseline:,.0f} | {figure.ratio:.2f} |")


if __name__ == "__main__":
    main()
