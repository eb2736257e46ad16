"""What every benchmark shares: a quiet machine before measuring, the machine's description, one
figure's record, and a native stack (real n8n + bridge) brought up by `n8nctl up` in a temporary
project on free ports, as the e2e tier does."""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.harness import free_port  # noqa: E402  (bench/intake.py imports it from here)

QUIET_LOAD = 1.5  # 1-minute load average under which a measurement may start (2 cores)
# How long to wait for it (seconds; BENCH_QUIET_WAIT): colleagues' test runs share the machine, and a
# measurement that goes ahead anyway records the load it saw.
QUIET_WAIT = float(os.environ.get("BENCH_QUIET_WAIT", "180"))


@dataclass
class Figure:
    """One measured figure, its baseline from the same run, and the goal it answers."""

    goal: str
    name: str
    value: float
    unit: str
    baseline_name: str = ""
    baseline: float | None = None
    target: str = ""
    met: bool | None = None
    runs: list[float] = field(default_factory=list)
    command: str = ""
    notes: str = ""
    load_before: float | None = None
    """The 1-minute load average when the measurement started (what wait_quiet saw)."""
    load: float = field(default_factory=lambda: round(os.getloadavg()[0], 2))
    """The 1-minute load average when the figure was recorded (the measurement's own load included)."""

    @property
    def ratio(self) -> float | None:
        return self.value / self.baseline if self.baseline else None

    def record(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio}


def wait_quiet(limit: float = QUIET_LOAD, deadline: float | None = None) -> float:
    """Wait (polling, at most `deadline` seconds, default QUIET_WAIT) until the 1-minute load is under
    `limit`; the load seen. Past the deadline the measurement goes ahead and the load is recorded
    with it."""
    end = time.monotonic() + (QUIET_WAIT if deadline is None else deadline)
    while (load := os.getloadavg()[0]) >= limit and time.monotonic() < end:
        time.sleep(5)
    return round(load, 2)


def spread(values: list[float]) -> str:
    if not values:
        return ""
    if len(values) == 1:
        return f"{values[0]:.3g}"
    return f"{min(values):.3g}-{max(values):.3g} (median {statistics.median(values):.3g}, n={len(values)})"


def machine() -> dict[str, Any]:
    memory = 0.0
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                memory = int(line.split()[1]) / 1024 / 1024
    model = ""
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(memory, 1),
        "cpu": model,
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("N8NCTL_", "BRIDGE_", "N8N_"))}


@dataclass
class Stack:
    """A running native stack: its project folder, the environment its CLI runs with, its settings."""

    project: Path
    env: dict[str, str]

    @property
    def settings(self) -> Any:
        from n8nctl.settings import Settings

        overrides = {
            k.lower(): v for k, v in self.env.items() if k.startswith(("N8NCTL_", "BRIDGE_", "N8N_"))
        }
        return Settings(_env_file=self.project / ".env", **overrides)

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "n8nctl"), *args],
            env=self.env,
            cwd=self.project,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def client_secret(self) -> tuple[str, str]:
        client_id, _, secret = self.settings.bridge_client_secrets.get_secret_value().partition(":")
        return client_id, secret.split("|")[0]


BENCH_WORKFLOWS = {
    # the contract pilot with no concurrency cap worth the name: the drain must find the pace itself
    "slow_echo": {
        "template": "templates/slow_echo.json",
        "webhook_path": "flowbiz/test-slow-echo",
        "description": "Benchmark workflow: waits inputs.seconds, then echoes the inputs.",
        "enabled": True,
        "max_timeout_seconds": 600,
        "max_concurrency": 32,
        "expected_duration_seconds": 1,
        "retention": "standard",
        "allowed_clients": ["*"],
        "inputs_schema": {"type": "object", "properties": {"seconds": {"type": "number"}}},
    }
}


@contextmanager
def native_stack(env: dict[str, str] | None = None, *, max_concurrency: int | None = None) -> Iterator[Stack]:
    """`n8nctl up` (native runtime) in a temporary project; `n8nctl down` at the end.
    `max_concurrency` sets the registry's cap of every workflow (the adaptive cap's upper bound)."""
    project = Path(tempfile.mkdtemp(prefix="n8b-", dir="/tmp"))  # short: supervisord's socket is in it
    shutil.copy(ROOT / ".env.example", project)
    shutil.copytree(ROOT / "workflows", project / "workflows")
    shutil.copy(ROOT / "tests/e2e/workflows/slow_echo.json", project / "workflows/templates")
    registry_file = project / "workflows/registry.json"
    registry = json.loads(registry_file.read_text())
    registry["workflows"].update(BENCH_WORKFLOWS)
    for entry in registry["workflows"].values():
        entry["allowed_clients"] = ["*"]
        if max_concurrency is not None:
            entry["max_concurrency"] = max_concurrency
    registry_file.write_text(json.dumps(registry, indent=2))
    stack_env = {
        **clean_env(),
        "N8NCTL_PROJECT_DIR": str(project),
        "N8NCTL_STACK": "bench",
        "N8NCTL_RUNTIME": "native",
        "N8N_PORT": str(free_port()),
        "N8N_RUNNERS_BROKER_PORT": str(free_port()),
        "BRIDGE_PORT": str(free_port()),
        "BRIDGE_ENVIRONMENT": "development",  # FlowBiz's receiver is on loopback
        "BRIDGE_RATE_LIMIT": "1000000/minute",
        "N8NCTL_ALERT_JOB_FAILURE_RATE": "1",
        "N8NCTL_ALERT_CALLBACK_FAILURE_RATE": "1",
        "N8NCTL_ALERT_DEAD_LETTERS": "100000",
        **(env or {}),
    }
    stack = Stack(project, stack_env)
    up = stack.cli("up", timeout=1800)
    try:
        if up.returncode != 0:
            raise SystemExit(f"n8nctl up failed:\n{up.stdout}\n{up.stderr}")
        yield stack
    finally:
        stack.cli("down")
        shutil.rmtree(project, ignore_errors=True)
