"""What the drain benchmarks share: a native stack of this checkout (`n8nctl up` in a temporary project on
free ports, n8n 2.40.7 from ~/.cache/n8nctl, as tests/e2e/conftest.py brings one up), a bridge process
the benchmark starts itself (to choose its settings), an HTTP receiver in the benchmark's event loop,
a sampler of the bridge's /metrics, and a CPU throttle for n8n (a cgroup v1 CPU quota). Loads only on
127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from n8nctl.settings import Settings  # noqa: E402
from n8nctl.signing import SignatureError, sign_headers, verify  # noqa: E402
from tests.harness import free_port, free_ports  # noqa: E402

BIN = Path(sys.executable).parent
KEY = "tiktok_live_helper"
INPUTS = {"stream_id": "drain", "comments": [{"user": "ana", "text": "how much is shipping?"}]}
SLOW_ECHO = {
    "template": "templates/slow_echo.json",
    "webhook_path": "flowbiz/test-slow-echo",
    "description": "Bench workflow: waits inputs.seconds, then echoes the inputs.",
    "enabled": True,
    "max_timeout_seconds": 120,
    "max_concurrency": 4,
    "expected_duration_seconds": 1,
    "retention": "standard",
    "allowed_clients": ["flowbiz"],
    "inputs_schema": {"type": "object", "required": ["seconds"]},
}


def n8n_webhook(stack: Stack) -> tuple[str, dict[str, str]]:
    """KEY's production webhook and the header token the bridge sends it, to drive n8n directly."""
    settings = stack.settings
    token = {settings.bridge_n8n_webhook_header: settings.bridge_n8n_webhook_token.get_secret_value()}
    return f"{settings.n8n_url}/webhook/flowbiz/tiktok-live-helper", token


def direct_job(job_id: str, callback_url: str) -> dict[str, Any]:
    """A KEY job as the bridge dispatches it, its result posted to `callback_url`."""
    return {
        "job_id": job_id,
        "workflow_key": KEY,
        "client_id": "flowbiz",
        "inputs": INPUTS,
        "metadata": {},
        "priority": 5,
        "deadline_at": "2099-01-01T00:00:00+00:00",
        "callback_url": callback_url,
    }


def machine() -> dict[str, Any]:
    memory = next(
        line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")
    )
    return {"cores": os.cpu_count(), "memory_gb": round(int(memory.split()[1]) / 1024 / 1024, 1)}


def load() -> float:
    return round(os.getloadavg()[0], 2)


def quiet() -> float:
    """Wait, at most BENCH_DRAIN_QUIET_WAIT seconds (default 60), for the 1-minute load to fall under
    bench/common.py's QUIET_LOAD (colleagues' test runs share the machine); the load it saw."""
    from bench.common import wait_quiet

    return wait_quiet(deadline=float(os.environ.get("BENCH_DRAIN_QUIET_WAIT", "60")))


@dataclass
class Stack:
    project: Path
    env: dict[str, str]
    settings: Settings
    up_seconds: float

    def supervisorctl(self, *args: str) -> str:
        conf = self.settings.stack_dir(self.settings.stack_name(prod=False)) / "supervisord.conf"
        done = subprocess.run(
            [str(BIN / "supervisorctl"), "-c", str(conf), *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        return done.stdout + done.stderr

    def client(self) -> tuple[str, str]:
        client_id, _, secret = self.settings.bridge_client_secrets.get_secret_value().partition(":")
        return client_id, secret.split(",")[0]

    def n8n_pids(self, program: str = "n8n") -> list[int]:
        """The program's process and all its descendants (n8n's task runners)."""
        pid = int(self.supervisorctl("pid", program).strip())
        found, todo = [], [pid]
        while todo:
            current = todo.pop()
            found.append(current)
            with contextlib.suppress(OSError):
                for task in Path(f"/proc/{current}/task").iterdir():
                    children = (task / "children").read_text().split()
                    todo += [int(child) for child in children]
        return found


@contextmanager
def native_stack(
    name: str, workflows: dict[str, dict[str, Any]] | None = None, **settings: str
) -> Iterator[Stack]:
    """`n8nctl up` in a fresh project (the registry plus slow_echo, `workflows` merged into its
    entries) with the given settings; `down` and the project removed afterwards."""
    project = Path(tempfile.mkdtemp(prefix="n8b-", dir="/tmp"))  # short: supervisord's socket is in it
    project.chmod(0o755)  # as root, native queue mode's PostgreSQL runs as `postgres`
    shutil.copy(ROOT / ".env.example", project)
    shutil.copytree(ROOT / "workflows", project / "workflows")
    shutil.copy(ROOT / "tests" / "e2e" / "workflows" / "slow_echo.json", project / "workflows" / "templates")
    registry_file = project / "workflows" / "registry.json"
    registry = json.loads(registry_file.read_text())
    registry["workflows"]["slow_echo"] = SLOW_ECHO
    for key, fields in (workflows or {}).items():
        registry["workflows"][key].update(fields)
    registry_file.write_text(json.dumps(registry, indent=2))
    overrides = {
        "N8NCTL_PROJECT_DIR": str(project),
        "N8NCTL_STACK": name,
        "N8NCTL_RUNTIME": "native",
        "N8N_PORT": str(free_port()),
        "N8N_RUNNERS_BROKER_PORT": str(free_port()),
        "BRIDGE_PORT": str(free_port()),
        "BRIDGE_ENVIRONMENT": "development",  # the receiver runs on loopback
        "BRIDGE_RATE_LIMIT": "1000000/minute",  # the burst must not be refused
        **settings,
    }
    if overrides.get("N8NCTL_QUEUE_MODE") in ("1", "true"):
        workers = int(overrides.setdefault("N8NCTL_WORKERS", "2"))
        overrides.setdefault("N8NCTL_WORKER_BASE_PORT", str(free_ports(2 * workers)))
        overrides.setdefault("POSTGRES_PORT", str(free_port()))
        overrides.setdefault("REDIS_PORT", str(free_port()))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("N8NCTL_", "BRIDGE_", "N8N_"))}
    env.update(overrides)
    started = time.monotonic()
    print(f"n8nctl up ({name}) in {project} ...", file=sys.stderr, flush=True)
    up = subprocess.run(
        [str(BIN / "n8nctl"), "up"], env=env, cwd=project, capture_output=True, text=True, check=False
    )
    resolved = Settings(_env_file=project / ".env", **{k.lower(): v for k, v in overrides.items()})  # type: ignore[arg-type]
    stack = Stack(project, env, resolved, time.monotonic() - started)
    try:
        if up.returncode != 0:
            raise SystemExit(f"n8nctl up failed:\n{up.stdout}\n{up.stderr}")
        print(f"  up in {stack.up_seconds:.0f} s", file=sys.stderr, flush=True)
        yield stack
    finally:
        subprocess.run(
            [str(BIN / "n8nctl"), "down"], env=env, cwd=project, capture_output=True, timeout=300, check=False
        )
        shutil.rmtree(project, ignore_errors=True)


def cpu_seconds(pids: list[int]) -> float:
    """User plus system CPU the processes have used so far (gone ones count 0)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / os.sysconf("SC_CLK_TCK")


@contextmanager
def bridge_process(stack: Stack, port: int | None = None, **settings: str) -> Iterator[tuple[str, int]]:
    """The stack's bridge, started by the benchmark with extra settings (supervisord's is stopped
    first, so the port and the store are this one's); stopped by its pid afterwards. Yields its URL
    and pid. `port`: a further replica beside it (n8n posts every result to the stack's port)."""
    stack.supervisorctl("stop", "bridge")
    env = {**stack.env, "N8NCTL_STATE_DIR": str(stack.settings.state_dir), **settings}
    url = stack.settings.bridge_url if port is None else f"http://127.0.0.1:{port}"
    port = port or stack.settings.bridge_port
    log = (stack.project / "bench-bridge.log").open("ab")
    process = subprocess.Popen(
        [str(BIN / "n8nctl"), "bridge", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=stack.project,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise SystemExit(f"the bridge exited with {process.returncode}; see {log.name}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise SystemExit("the bridge did not answer /healthz within 60 s")
            time.sleep(0.1)
        yield url, process.pid
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@contextmanager
def shared_store(stack: Stack) -> Iterator[dict[str, str]]:
    """What replicas share in production: a PostgreSQL (fsync and synchronous_commit on) with the
    bridge's schema, and a Redis for the replay guard and the rate limit. Yields their settings."""
    from tests.pg import PostgresServer, find_bin_dir
    from tests.redis_server import RedisServer

    bin_dir, redis_binary = find_bin_dir(), shutil.which("redis-server")
    if bin_dir is None or redis_binary is None:
        raise SystemExit(
            "replicas need PostgreSQL 15 and redis-server (apt-get install postgresql-15 redis-server)"
        )
    pg = PostgresServer.start(bin_dir, durable=True)
    folder = Path(tempfile.mkdtemp(prefix="n8b-redis-"))
    redis = RedisServer(redis_binary, folder)
    try:
        redis.start()
        settings = {"BRIDGE_DATABASE_URL": pg.create_database(), "BRIDGE_REDIS_URL": redis.url}
        migrate = [str(BIN / "n8nctl"), "bridge", "migrate"]
        subprocess.run(
            migrate, env={**stack.env, **settings}, cwd=stack.project, check=True, capture_output=True
        )
        yield settings
    finally:
        redis.stop()
        pg.stop()
        shutil.rmtree(folder, ignore_errors=True)


@dataclass
class Receiver:
    """An HTTP endpoint that records every POSTed body by job_id with its arrival time
    (time.monotonic()), checking the Standard Webhooks signature when given a secret (FlowBiz's
    receiver) or not (standing in for the bridge's result endpoint when n8n is driven directly)."""

    url: str
    secret: str | None
    arrivals: dict[str, tuple[float, dict[str, Any]]] = field(default_factory=dict)
    rejected: int = 0
    waiters: dict[str, asyncio.Future[float]] = field(default_factory=dict)

    async def receive(self, request: Request) -> JSONResponse:
        raw = await request.body()
        at = time.monotonic()
        if self.secret is not None:
            try:
                verify((self.secret,), request.headers, raw)
            except SignatureError:
                self.rejected += 1
                return JSONResponse({"error": "bad signature"}, status_code=401)
        body = json.loads(raw)
        job_id = body["job_id"]
        self.arrivals.setdefault(job_id, (at, body))
        waiter = self.waiters.pop(job_id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(at)
        return JSONResponse({"job_id": job_id, "recorded": "finished"})

    def expect(self, job_id: str) -> asyncio.Future[float]:
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.waiters[job_id] = future
        return future


@asynccontextmanager
async def receiving(secret: str | None = None) -> AsyncIterator[Receiver]:
    """A Receiver on a free port, served by uvicorn in this event loop."""
    port = free_port()
    receiver = Receiver(f"http://127.0.0.1:{port}/cb", secret)
    app = Starlette(routes=[Route("/cb", receiver.receive, methods=["POST"])])
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield receiver
    finally:
        server.should_exit = True
        await task


@dataclass
class Sampler:
    """The bridge's adaptive limit and running jobs for KEY, from /metrics, every `interval` s."""

    url: str
    interval: float = 0.25
    samples: list[tuple[float, int, int]] = field(default_factory=list)  # (monotonic, limit, running)
    moves: dict[str, int] = field(default_factory=dict)  # the limit's moves so far, by reason

    async def run(self) -> None:
        async with httpx.AsyncClient(timeout=5) as client:
            while True:
                with contextlib.suppress(httpx.HTTPError, StopIteration, ValueError):
                    text = (await client.get(f"{self.url}/metrics")).text
                    limit = _gauge(text, f'bridge_dispatch_concurrency_limit{{workflow_key="{KEY}"}}')
                    running = _gauge(text, 'bridge_jobs_active{status="running"}')
                    self.samples.append((time.monotonic(), limit, running))
                    prefix = 'bridge_dispatch_limit_changes_total{reason="'
                    for line in text.splitlines():
                        if line.startswith(prefix) and f'workflow_key="{KEY}"' in line:
                            reason = line[len(prefix) :].split('"', 1)[0]
                            self.moves[reason] = round(float(line.rsplit(" ", 1)[1]))
                await asyncio.sleep(self.interval)


def _gauge(text: str, name: str) -> int:
    line = next(line for line in text.splitlines() if line.startswith(name + " "))
    return round(float(line.rsplit(" ", 1)[1]))


@contextmanager
def cpu_quota(pids: list[int], cores: float) -> Iterator[None]:
    """Hold these processes to `cores` CPUs (a cgroup v1 CPU quota) inside the block: n8n slowed
    down without touching the bridge or the load generator. Needs root and /sys/fs/cgroup/cpu."""
    root = Path("/sys/fs/cgroup/cpu")
    group = root / f"n8nctl-bench-{os.getpid()}"
    group.mkdir()
    try:
        (group / "cpu.cfs_period_us").write_text("100000")
        (group / "cpu.cfs_quota_us").write_text(str(int(100000 * cores)))
        for pid in pids:
            with contextlib.suppress(OSError):  # a runner that exited meanwhile
                (group / "cgroup.procs").write_text(str(pid))
        yield
    finally:
        for pid in (group / "cgroup.procs").read_text().split():
            with contextlib.suppress(OSError):
                (root / "cgroup.procs").write_text(pid)
        group.rmdir()


def signed_jobs(
    stack: Stack, count: int, callback_url: str, prefix: str
) -> list[tuple[str, dict[str, str], bytes]]:
    """`count` signed POST /v1/jobs requests for KEY: (job_id, headers, body)."""
    client_id, secret = stack.client()
    requests = []
    for index in range(count):
        job_id = f"{prefix}-{index}-{os.urandom(4).hex()}"
        body = json.dumps(
            {
                "job_id": job_id,
                "client_id": client_id,
                "workflow_key": KEY,
                "inputs": INPUTS,
                "callback_url": callback_url,
            }
        ).encode()
        headers = {**sign_headers(secret, body), "X-Client-Id": client_id, "content-type": "application/json"}
        requests.append((job_id, headers, body))
    return requests


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]
