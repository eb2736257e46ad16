"""Drain: the bridge keeps n8n at its best pace by itself (adaptive concurrency, ADR 61), in one run.

Brings up its own native stack (n8n 2.40.7, SQLite, supervisord; pilot tiktok_live_helper with
max_concurrency --maximum), then:

1. direct: n8n's production webhook driven directly, closed loop, at each --levels concurrency:
   each of N clients POSTs a job and waits until n8n posted its result (to a receiver standing in
   for the bridge), completed executions/s over --direct-seconds after 2 s of warm-up.
2. burst from 1 and burst from the maximum, each between two direct runs at the best level (the
   machine's load drifts): --jobs signed jobs through the bridge (a bridge process started with
   BRIDGE_DISPATCH_START_LIMIT=1, then =max), until FlowBiz's receiver has every callback
   (signatures verified). Drain jobs/s = jobs / (first submit -> last callback); its ratio to the
   best direct rate of the whole run (goal >= 0.95x) and to the two direct runs around it; jobs
   failed or lost (goal 0); the limit's trajectory (from /metrics) and when it settled; the CPU
   per job of the bridge, n8n and this benchmark (also in every direct run).
   With --replicas (the default): the same burst through one bridge, then two replicas, on a
   PostgreSQL (fsync on) and a Redis of their own, each between two direct runs.
3. back-off (--backoff-seconds): a backlog through the bridge; in its middle third n8n is held to
   --throttle-cores CPUs (cgroup CPU quota: n8n slows down, the bridge does not), then released:
   the limit and the completion rate before, during and after. With --queue, the same on a second
   stack in native queue mode (PostgreSQL, Redis, 2 workers) with one worker stopped, then started.
4. end-to-end overhead (bench/e2e_latency.py): one job at a time, submit -> verified callback
   minus the execution time n8n reports, against the same measured straight at n8n.

    .venv/bin/python bench/drain.py [--jobs 300] [--no-replicas] [--queue] [--json bench/results/drain.json]

Prints a table and writes JSON. Needs root for the CPU quota (--backoff-seconds 0 skips it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from drain_report import report
from e2e_latency import overhead
from native_stack import (
    KEY,
    ROOT,
    Receiver,
    Sampler,
    Stack,
    bridge_process,
    cpu_quota,
    cpu_seconds,
    direct_job,
    load,
    machine,
    n8n_webhook,
    native_stack,
    quantile,
    quiet,
    receiving,
    shared_store,
    signed_jobs,
)

from tests.harness import free_port

WARM_UP = 2.0
SETTLE_BAND = 0.25  # the limit has settled once it stays within 25% (at least 2) of where it ends


async def _closed_loop(
    http: httpx.AsyncClient, stack: Stack, receiver: Receiver, end: float, done: list[tuple[float, ...]]
) -> None:
    """One client: POST a job to n8n's webhook, wait for its result, again, until `end`."""
    webhook, token = n8n_webhook(stack)
    while time.monotonic() < end:
        job_id = f"direct-{uuid.uuid4().hex}"
        arrived = receiver.expect(job_id)
        body = direct_job(job_id, receiver.url)
        sent = time.monotonic()
        answer = await http.post(webhook, json=body, headers=token)
        answered = time.monotonic()
        if answer.status_code >= 300:
            raise SystemExit(f"n8n answered {answer.status_code}: {answer.text[:200]}")
        done.append((sent, answered, await asyncio.wait_for(arrived, 60)))


async def direct(stack: Stack, levels: list[int], seconds: float) -> list[dict[str, Any]]:
    """n8n's webhook driven directly, closed loop: completed executions/s at each concurrency."""
    rows = []
    limits = httpx.Limits(max_connections=64)
    async with receiving() as receiver, httpx.AsyncClient(timeout=60, limits=limits) as http:
        for level in levels:
            load_before = load()
            begin = time.monotonic() + WARM_UP
            end = begin + seconds
            done: list[tuple[float, ...]] = []  # (sent, webhook answered, result arrived)
            cpu = cpu_seconds(stack.n8n_pids()), time.process_time()
            await asyncio.gather(*(_closed_loop(http, stack, receiver, end, done) for _ in range(level)))
            cpu = cpu_seconds(stack.n8n_pids()) - cpu[0], time.process_time() - cpu[1]
            counted = [job for job in done if begin <= job[2] <= end]
            rows.append(
                {
                    "concurrency": level,
                    "executions_per_second": round(len(counted) / seconds, 2),
                    "webhook_p50_ms": round(quantile([a - s for s, a, _ in counted], 0.5) * 1000),
                    "result_p50_ms": round(quantile([r - s for s, _, r in counted], 0.5) * 1000),
                    "n8n_cpu_ms_per_job": round(cpu[0] * 1000 / len(done), 1),
                    "bench_cpu_ms_per_job": round(cpu[1] * 1000 / len(done), 1),
                    "load": [load_before, load()],
                }
            )
            print(f"  direct c={level}: {rows[-1]}", file=sys.stderr, flush=True)
    return rows


def settled(samples: list[tuple[float, int, int]], begin: float, end: float) -> dict[str, Any]:
    """Where the limit ended (median over the drain's second half) and when it settled there: the
    first moment after which it stays within the band, excursions under 1 s (probes) aside."""
    during = [(t - begin, limit) for t, limit, _ in samples if begin <= t <= end]
    if not during:
        return {"settled_at_seconds": None, "settled_limit": None}
    half = [limit for t, limit in during if t >= (end - begin) / 2] or [during[-1][1]]
    where = statistics.median(half)
    band = max(2.0, SETTLE_BAND * where)
    since: float | None = None
    outside_since: float | None = None
    for t, limit in during:
        inside = abs(limit - where) <= band
        if inside:
            if since is None:
                since = t
            outside_since = None
        else:
            outside_since = t if outside_since is None else outside_since
            if since is not None and t - outside_since >= 1.0:
                since = None
    return {"settled_at_seconds": None if since is None else round(since, 1), "settled_limit": where}


def trajectory(samples: list[tuple[float, int, int]], begin: float, end: float) -> list[list[float]]:
    """The limit's changes: [seconds since the first submit, limit, jobs running in n8n]."""
    changes: list[list[float]] = []
    for t, limit, running in samples:
        if begin <= t <= end and (not changes or changes[-1][1] != limit):
            changes.append([round(t - begin, 2), limit, running])
    return changes


async def burst(
    stack: Stack, bridges: list[tuple[str, int]], jobs: int, concurrency: int, label: str
) -> dict[str, Any]:
    """`jobs` signed jobs at once through the bridges ((url, pid) each, the jobs dealt out in turn);
    until every callback came back. With the CPU the bridges, n8n and this benchmark (submitter and
    receiver) spent per job: on two cores they share what n8n could use. The limit is the first's."""
    secret = stack.settings.bridge_callback_signing_secret.get_secret_value()
    async with receiving(secret) as receiver:
        requests = signed_jobs(stack, jobs, receiver.url, label)
        sampler = Sampler(bridges[0][0])
        sampling = asyncio.create_task(sampler.run())
        load_before = load()
        pids, n8n = [pid for _, pid in bridges], stack.n8n_pids()
        cpu_before = cpu_seconds(pids), cpu_seconds(n8n), time.process_time()
        gate = asyncio.Semaphore(concurrency)
        async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=concurrency)) as http:

            async def submit(url: str, headers: dict[str, str], body: bytes) -> int:
                async with gate:
                    return (await http.post(f"{url}/v1/jobs", content=body, headers=headers)).status_code

            urls = [url for url, _ in bridges]
            begin = time.monotonic()
            answers = await asyncio.gather(
                *(submit(urls[n % len(urls)], headers, body) for n, (_, headers, body) in enumerate(requests))
            )
            accepted_in = time.monotonic() - begin
        if refused := [code for code in answers if code != 202]:
            raise SystemExit(f"the bridge refused {len(refused)} of {jobs} jobs: HTTP {sorted(set(refused))}")
        ids = {job_id for job_id, _, _ in requests}
        deadline = time.monotonic() + 900
        while not ids <= receiver.arrivals.keys() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        end = max((receiver.arrivals[i][0] for i in ids if i in receiver.arrivals), default=time.monotonic())
        cpu = (
            cpu_seconds(pids) - cpu_before[0],
            cpu_seconds(n8n) - cpu_before[1],
            time.process_time() - cpu_before[2],
        )
        await asyncio.sleep(0.5)  # a last sample after the drain
        sampling.cancel()
    statuses = [receiver.arrivals[i][1]["status"] if i in receiver.arrivals else "lost" for i in ids]
    seconds = end - begin
    return {
        "start_limit": label,
        "jobs": jobs,
        "accepted": sum(answer == 202 for answer in answers),
        "accepted_in_seconds": round(accepted_in, 2),
        "drain_seconds": round(seconds, 2),
        "jobs_per_second": round(jobs / seconds, 2),
        "failed": sum(status == "failed" for status in statuses),
        "lost": sum(status == "lost" for status in statuses),
        "bad_signatures": receiver.rejected,
        "bridge_cpu_ms_per_job": round(cpu[0] * 1000 / jobs, 1),
        "n8n_cpu_ms_per_job": round(cpu[1] * 1000 / jobs, 1),
        "bench_cpu_ms_per_job": round(cpu[2] * 1000 / jobs, 1),
        "limit_moves": sampler.moves,
        **settled(sampler.samples, begin, end),
        "trajectory": trajectory(sampler.samples, begin, end),
        "load": [load_before, load()],
    }


async def backoff(
    stack: Stack, url: str, rate: float, seconds: float, slow_down: Callable[[], AbstractContextManager[Any]]
) -> dict[str, Any]:
    """A backlog of `rate` x `seconds` jobs drained while n8n is slowed down (`slow_down`) in the
    middle third of `seconds`."""
    secret = stack.settings.bridge_callback_signing_secret.get_secret_value()
    jobs = int(rate * (seconds + 30))  # enough to last through a slow stop and start
    async with receiving(secret) as receiver:
        requests = signed_jobs(stack, jobs, receiver.url, "backoff")
        sampler = Sampler(url)
        sampling = asyncio.create_task(sampler.run())
        async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=50)) as http:
            gate = asyncio.Semaphore(50)

            async def submit(headers: dict[str, str], body: bytes) -> None:
                async with gate:
                    await http.post(f"{url}/v1/jobs", content=body, headers=headers)

            begin = time.monotonic()
            await asyncio.gather(*(submit(headers, body) for _, headers, body in requests))
        third = seconds / 3
        await asyncio.sleep(max(0.0, begin + third - time.monotonic()))
        with slow_down():  # entering and leaving can take a while (a worker's graceful stop)
            slowed = time.monotonic()
            await asyncio.sleep(third)
        released = time.monotonic()
        ids = {job_id for job_id, _, _ in requests}
        deadline = time.monotonic() + 900
        while not ids <= receiver.arrivals.keys() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        end = time.monotonic()
        sampling.cancel()
    arrivals = sorted(at for at, _ in receiver.arrivals.values())

    def phase(start: float, stop: float) -> dict[str, Any]:
        """The last half of a phase: where the limit sat and the completion rate."""
        middle = (start + stop) / 2
        limits = [limit for t, limit, _ in sampler.samples if middle <= t <= stop]
        done = sum(middle <= at <= stop for at in arrivals)
        return {
            "limit_median": statistics.median(limits) if limits else None,
            "jobs_per_second": round(done / (stop - middle), 2),
        }

    drained_at = arrivals[-1] if arrivals else end
    statuses = [body["status"] for _, body in receiver.arrivals.values()]
    return {
        "jobs": jobs,
        "slowed_at_seconds": round(slowed - begin, 1),
        "released_at_seconds": round(released - begin, 1),
        "before": phase(begin, slowed),
        "during": phase(slowed, released),
        "after": phase(released, min(drained_at, released + seconds / 3)),
        "failed": sum(status != "success" for status in statuses),
        "lost": jobs - len(statuses),
        "trajectory": trajectory(sampler.samples, begin, drained_at),
        "limit_moves": sampler.moves,
        "load": load(),
    }


async def bracketed(
    stack: Stack, level: int, seconds: float, phase: Awaitable[dict[str, Any]]
) -> dict[str, Any]:
    """`phase` between two direct measurements at `level`: its own baseline, right before and after."""
    before = (await direct(stack, [level], seconds))[0]
    result = await phase
    after = (await direct(stack, [level], seconds))[0]
    result["direct_around"] = [before["executions_per_second"], after["executions_per_second"]]
    result["direct_runs"] = [before, after]
    return result


async def run(args: argparse.Namespace, stack: Stack) -> dict[str, Any]:
    levels = [int(level) for level in args.levels.split(",")]
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": machine(),
        "n8n_version": stack.settings.n8n_version,
        "maximum": args.maximum,
        "command": " ".join(["bench/drain.py", *sys.argv[1:]]),
        "bursts": [],
        "backoff": [],
    }
    print("direct ...", file=sys.stderr, flush=True)
    results["quiet_waits"] = [quiet()]
    sweep = await direct(stack, levels, args.direct_seconds)
    best = max(sweep, key=lambda row: row["executions_per_second"])["concurrency"]
    for start in ("1", str(args.maximum)):
        print(f"burst, limit starting at {start}, between two direct runs at {best} ...", file=sys.stderr)
        with bridge_process(stack, BRIDGE_DISPATCH_START_LIMIT=start) as bridge:
            results["quiet_waits"].append(quiet())
            drain = burst(stack, [bridge], args.jobs, args.submit_concurrency, start)
            results["bursts"].append(await bracketed(stack, best, args.direct_seconds, drain))
    if args.replicas:
        results["replicas"] = await replicas(args, stack, best, results["quiet_waits"])
    results["direct"] = sweep + [
        row for b in results["bursts"] + results.get("replicas", []) for row in b["direct_runs"]
    ]
    results["baseline_executions_per_second"] = max(r["executions_per_second"] for r in results["direct"])
    if args.backoff_seconds:
        print("back-off, n8n held to a CPU quota ...", file=sys.stderr, flush=True)
        results["quiet_waits"].append(quiet())
        with bridge_process(stack) as (url, _):
            rate = results["baseline_executions_per_second"]
            pids, cores = stack.n8n_pids(), args.throttle_cores
            held = await backoff(stack, url, rate, args.backoff_seconds, lambda: cpu_quota(pids, cores))
            results["backoff"].append({"how": f"n8n held to {cores} CPU", **held})
    if args.e2e_jobs:
        print("end-to-end overhead ...", file=sys.stderr, flush=True)
        results["quiet_waits"].append(quiet())
        with bridge_process(stack) as (url, _):
            results["e2e"] = await overhead(stack, url, args.e2e_jobs)
    return results


async def replicas(
    args: argparse.Namespace, stack: Stack, best: int, waits: list[float]
) -> list[dict[str, Any]]:
    """The same burst through one bridge, then two replicas, on one PostgreSQL and one Redis (as
    production scales out); n8n posts every result to the first."""
    rows = []
    with shared_store(stack) as shared:
        for count in (1, 2):
            print(f"burst, {count} replica(s) on PostgreSQL + Redis ...", file=sys.stderr, flush=True)
            with ExitStack() as running:
                ports = [None, *(free_port() for _ in range(count - 1))]
                bridges = [running.enter_context(bridge_process(stack, port, **shared)) for port in ports]
                waits.append(quiet())
                drain = burst(stack, bridges, args.jobs, args.submit_concurrency, f"replicas{count}")
                rows.append({"replicas": count, **await bracketed(stack, best, args.direct_seconds, drain)})
    return rows


async def queue_backoff(args: argparse.Namespace, stack: Stack) -> dict[str, Any]:
    """Queue mode: one of the two workers stopped for the middle third, then started again."""
    rate = (await direct(stack, [8], 10))[0]["executions_per_second"]

    @contextmanager
    def worker_stopped() -> Iterator[None]:
        stack.supervisorctl("stop", "n8n-worker-1")
        try:
            yield
        finally:
            stack.supervisorctl("start", "n8n-worker-1")

    with bridge_process(stack) as (url, _):  # a backlog that lasts through a worker's graceful stop
        stopped = await backoff(stack, url, 1.5 * rate, args.backoff_seconds, worker_stopped)
    return {"how": "queue mode, 1 of 2 workers stopped", "direct_8": rate, **stopped}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--maximum", type=int, default=16, help="tiktok_live_helper's max_concurrency")
    parser.add_argument("--levels", default="1,4,8,16", help="direct concurrencies")
    parser.add_argument("--direct-seconds", type=float, default=10)
    parser.add_argument("--submit-concurrency", type=int, default=50)
    parser.add_argument("--backoff-seconds", type=float, default=60)
    parser.add_argument("--throttle-cores", type=float, default=0.25)
    parser.add_argument("--queue", action="store_true", help="also the back-off in native queue mode")
    parser.add_argument("--queue-only", action="store_true", help="only the back-off in queue mode")
    parser.add_argument("--e2e-jobs", type=int, default=100)
    parser.add_argument(
        "--replicas", action=argparse.BooleanOptionalAction, default=True,
        help="also the burst through 1 and 2 replicas on PostgreSQL + Redis",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "drain.json")
    args = parser.parse_args()
    results: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine(), "backoff": []}
    if not args.queue_only:
        with native_stack("drain", workflows={KEY: {"max_concurrency": args.maximum}}) as stack:
            results = asyncio.run(run(args, stack))
    if args.queue or args.queue_only:
        queue = {KEY: {"max_concurrency": 20}}
        with native_stack("drainq", workflows=queue, N8NCTL_QUEUE_MODE="true", N8NCTL_WORKERS="2") as stack:
            results["backoff"].append(asyncio.run(queue_backoff(args, stack)))
    report(results)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwritten to {args.json}")


if __name__ == "__main__":
    main()
