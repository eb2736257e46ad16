"""Intake throughput: the bridge's POST /v1/jobs (signed, validated, fsync'd, 202) against a bare
Starlette endpoint on the same machine, in the same run, on SQLite and on PostgreSQL. Load from wrk on
127.0.0.1 only.

    .venv/bin/python bench/intake.py [--seconds 10] [--connections 16] [--engines sqlite,postgresql]

Each request is pre-signed with its own webhook-id and job_id (the bridge rejects replays), and wrk's
threads take disjoint slices of them. For each engine: the bare endpoint's and the bridge's maximum
(requests/s, p50/p99), then the bridge at half its maximum (wrk with a per-connection delay), p50/p99.
Goal (DESIGN.md 6): ratio >= 0.40, p99 < 25 ms at half load. On SQLite also the floor
(bench/intake_floor.py: the same steps with the least Python, not the bridge), to tell the bridge's
own cost from what any Python intake on uvicorn pays here.

`--replicas` (on PostgreSQL, with a Redis of its own for the shared replay guard and rate limit, as
production runs replicas): one bridge, then two on the same store, each loaded by its own wrk with half
the connections; the figure is the two replicas' summed rate against the one's, in the same run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import BIN, ROOT, Figure, free_port, spread, wait_quiet
from bench.wrk_load import Load, run_wrk

BARE_APP = """
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

async def jobs(request):
    await request.body()
    return JSONResponse({"status": "pending"}, status_code=202)

app = Starlette(routes=[Route("/v1/jobs", jobs, methods=["POST"])])
"""


def wait_healthy(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


@dataclass(frozen=True)
class Server:
    url: str
    pid: int

    def cpu_seconds(self) -> float:
        """User and system CPU time of the server process so far (all its threads)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def load(self, script: Path, seconds: int, connections: int) -> dict[str, float]:
        """wrk's figures, and the server's CPU per request (which a busy neighbour stretches much less
        than the wall-clock figures)."""
        before = self.cpu_seconds()
        result = run_wrk(self.url, script, seconds, connections)
        result["cpu_us"] = (self.cpu_seconds() - before) / max(1.0, result["requests"]) * 1e6
        return result


def load_together(
    servers: list[Server], scripts: list[Path], seconds: int, connections: int
) -> dict[str, float]:
    """Every server under its own wrk at once, the connections split between them: the summed rate,
    the worst p50 and p99."""
    share = connections // len(servers)
    with ThreadPoolExecutor(len(servers)) as pool:
        results = list(pool.map(lambda srv, script: srv.load(script, seconds, share), servers, scripts))
    return {
        "rps": sum(r["rps"] for r in results),
        "p50_ms": max(r["p50_ms"] for r in results),
        "p99_ms": max(r["p99_ms"] for r in results),
        "errors": sum(r["errors"] for r in results),
    }


@contextlib.contextmanager
def server(name: str, work: Path, database_url: str, secret: str, extra: dict[str, str]) -> Iterator[Server]:
    """The bare endpoint, the floor (bench/intake_floor.py) or the bridge (`n8nctl bridge serve`) on a
    free port."""
    port = free_port()
    registry = json.loads((ROOT / "workflows/registry.json").read_text())
    registry["workflows"]["tiktok_live_helper"]["allowed_clients"] = ["*"]
    (work / "registry.json").write_text(json.dumps(registry))
    env = {
        **os.environ,
        "N8NCTL_PROJECT_DIR": str(ROOT),
        "BRIDGE_DATABASE_URL": database_url,
        "BRIDGE_CLIENT_SECRETS": f"bench:{secret}",
        "BRIDGE_RATE_LIMIT": "1000000/second",
        "BRIDGE_WORKERS": "false",
        "BRIDGE_ENVIRONMENT": "development",  # callback_url is on loopback
        "BRIDGE_REGISTRY_PATH": str(work / "registry.json"),
        "FLOOR_SECRET": secret,
        "FLOOR_DATABASE": str(work / f"floor-{port}.db"),
        **extra,
    }
    uvicorn = [str(BIN / "uvicorn"), "--port", str(port), "--log-level", "warning", "--no-access-log"]
    command = {
        "bare": [*uvicorn, "--app-dir", str(work), "bare:app"],
        "floor": [*uvicorn, "--app-dir", str(ROOT / "bench"), "intake_floor:app"],
        "bridge": [str(BIN / "n8nctl"), "bridge", "serve", "--port", str(port), "--log-level", "warning"],
    }[name]
    if name == "bridge":  # the bridge serves a migrated store only (docs/adr/0040)
        subprocess.run([str(BIN / "n8nctl"), "bridge", "migrate"], env=env, cwd=work, check=True)
    process = subprocess.Popen(command, env=env, cwd=work)
    try:
        wait_healthy(f"http://127.0.0.1:{port}/healthz", process)
        yield Server(f"http://127.0.0.1:{port}", process.pid)
    finally:
        process.terminate()
        process.wait(timeout=10)


def measure(
    engine: str, database_url: str, *, seconds: int, connections: int, repeats: int, extra: dict[str, str]
) -> list[Figure]:
    work = Path(tempfile.mkdtemp(prefix="n8nctl-bench-"))
    (work / "bare.py").write_text(BARE_APP)
    load = Load(work, seconds)
    bare, bridge, floor, loads = [], [], [], []
    kinds = {"bare": bare, "bridge": bridge, **({"floor": floor} if engine == "sqlite" else {})}
    try:
        for _ in range(repeats):  # interleaved, so a neighbour's load hits each alike
            for kind, runs in kinds.items():
                loads.append(wait_quiet())
                with server(kind, work, database_url, load.secret, extra) as srv:
                    runs.append(srv.load(load.script(), seconds, connections))
        best = max(bridge, key=lambda r: r["rps"])
        # half the bridge's maximum: each connection waits between requests (closed loop with think time)
        delay = max(0.0, connections * 1000 / (best["rps"] / 2) - best["p50_ms"])
        half = []
        for _ in range(repeats):
            loads.append(wait_quiet())
            with server("bridge", work, database_url, load.secret, extra) as srv:
                half.append(srv.load(load.script(delay), seconds, connections))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for result in bare + bridge + floor + half:
        if result["errors"]:
            raise SystemExit("some requests were not answered 2xx: the numbers are not valid")
    bare_rps = sorted(r["rps"] for r in bare)[len(bare) // 2]
    bridge_rps = sorted(r["rps"] for r in bridge)[len(bridge) // 2]
    command = f".venv/bin/python bench/intake.py --engines {engine} --connections {connections}"
    half_p99 = sorted(r["p99_ms"] for r in half)[len(half) // 2]
    bare_cpu = sorted(r["cpu_us"] for r in bare)[len(bare) // 2]
    bridge_cpu = sorted(r["cpu_us"] for r in bridge)[len(bridge) // 2]
    return [
        Figure(
            "intake", f"intake throughput, {engine}", bridge_rps, "req/s",
            "bare Starlette endpoint", bare_rps, "ratio >= 0.40", bridge_rps / bare_rps >= 0.40,
            [r["rps"] for r in bridge], command,
            f"bare runs {spread([r['rps'] for r in bare])}; bridge p50 {best['p50_ms']:.1f} ms, "
            f"p99 {best['p99_ms']:.1f} ms at maximum; {connections} connections; "
            f"load before each run {spread(loads)}",
            load_before=max(loads),
        ),
        Figure(
            "intake", f"intake CPU per request at maximum, {engine}", bridge_cpu, "us",
            "bare Starlette endpoint", bare_cpu, command=command,
            notes="server process CPU (user+sys) / requests answered; "
            f"bare / bridge = {bare_cpu / bridge_cpu:.2f}, "
            "the throughput ratio if both were bound by one core (a busy neighbour stretches CPU time much "
            f"less than wall-clock rates); bridge runs {spread([r['cpu_us'] for r in bridge])} us",
            load_before=max(loads),
        ),
        Figure(
            "intake", f"intake p99 at half load, {engine}", half_p99, "ms",
            target="< 25 ms", met=half_p99 < 25, runs=[r["p99_ms"] for r in half], command=command,
            notes=f"rate {spread([r['rps'] for r in half])} req/s (target {best['rps'] / 2:.0f}); "
            f"p50 {spread([r['p50_ms'] for r in half])} ms",
            load_before=max(loads),
        ),
        *_floor_figures(floor, bare_rps, command),
    ]  # fmt: skip


def _floor_figures(floor: list[dict[str, float]], bare_rps: float, command: str) -> list[Figure]:
    """bench/intake_floor.py's rate and CPU per request, when it ran (SQLite)."""
    if not floor:
        return []
    rps, cpu = (sorted(r[field] for r in floor)[len(floor) // 2] for field in ("rps", "cpu_us"))
    p99 = spread([r["p99_ms"] for r in floor])
    return [
        Figure(
            "intake", "intake floor: the same steps with the least Python (bench/intake_floor.py), sqlite",
            rps, "req/s", "bare Starlette endpoint", bare_rps, runs=[r["rps"] for r in floor],
            command=command, notes=f"CPU per request {cpu:.0f} us; p99 {p99} ms",
        )
    ]  # fmt: skip


def measure_replicas(database_url: str, *, seconds: int, connections: int, repeats: int) -> list[Figure]:
    from tests.redis_server import RedisServer

    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("no redis-server (apt-get install redis-server)")
    work = Path(tempfile.mkdtemp(prefix="n8nctl-bench-"))
    redis = RedisServer(binary, work)
    redis.start()
    load = Load(work, seconds)
    extra = {"BRIDGE_REDIS_URL": redis.url}
    rates: dict[int, list[dict[str, float]]] = {1: [], 2: []}
    loads = []
    try:
        for _ in range(repeats):
            for count in rates:
                loads.append(wait_quiet())
                with contextlib.ExitStack() as stack:
                    servers = [
                        stack.enter_context(server("bridge", work, database_url, load.secret, extra))
                        for _ in range(count)
                    ]
                    scripts = [load.script() for _ in servers]
                    rates[count].append(load_together(servers, scripts, seconds, connections))
    finally:
        redis.stop()
        shutil.rmtree(work, ignore_errors=True)
    if any(r["errors"] for runs in rates.values() for r in runs):
        raise SystemExit("some requests were not answered 2xx: the numbers are not valid")
    one, two = (sorted(r["rps"] for r in rates[n])[repeats // 2] for n in (1, 2))
    return [
        Figure(
            "replicas", "intake throughput, 2 replicas on PostgreSQL + Redis", two, "req/s",
            "1 replica, same store and Redis", one, runs=[r["rps"] for r in rates[2]],
            command=".venv/bin/python bench/intake.py --replicas",
            notes=f"1 replica {spread([r['rps'] for r in rates[1]])} req/s; worst p99 with 2 "
            f"{spread([r['p99_ms'] for r in rates[2]])} ms; {connections} connections in all; "
            f"load before each run {spread(loads)}",
            load_before=max(loads),
        )
    ]  # fmt: skip


@contextlib.contextmanager
def database(engine: str) -> Iterator[str]:
    if engine == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{tmp}/bench.db"
        return
    from tests.pg import PostgresServer, find_bin_dir

    bin_dir = find_bin_dir()
    if bin_dir is None:
        raise SystemExit("no PostgreSQL binaries (apt-get install postgresql-15)")
    pg = PostgresServer.start(bin_dir, durable=True)  # fsync=on, synchronous_commit=on
    try:
        yield pg.create_database()
    finally:
        pg.stop()


def run(
    *, seconds: int = 10, connections: int = 16, repeats: int = 3,
    engines: tuple[str, ...] = ("sqlite", "postgresql"), extra: dict[str, str] | None = None,
    replicas: bool = False,
) -> list[Figure]:  # fmt: skip
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed: apt-get install wrk")
    figures = []
    for engine in engines:
        with database(engine) as url:
            figures += measure(
                engine, url, seconds=seconds, connections=connections, repeats=repeats, extra=extra or {}
            )
            if replicas and engine == "postgresql":
                figures += measure_replicas(url, seconds=seconds, connections=connections, repeats=repeats)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--engines", default="sqlite,postgresql")
    parser.add_argument("--replicas", action="store_true", help="also 1 vs 2 replicas on PostgreSQL + Redis")
    args = parser.parse_args()
    for figure in run(
        seconds=args.seconds, connections=args.connections, repeats=args.repeats,
        engines=tuple(args.engines.split(",")), replicas=args.replicas,
    ):  # fmt: skip
        ratio = f" ratio {figure.ratio:.2f}" if figure.ratio else ""
        verdict = f" ({figure.target}: {'met' if figure.met else 'NOT met'})" if figure.target else ""
        print(f"{figure.name}: {figure.value:.1f} {figure.unit}{ratio}{verdict} "
              f"runs {spread(figure.runs)}; {figure.notes}")  # fmt: skip


if __name__ == "__main__":
    main()
