"""The end-to-end tier: a real n8n and the bridge under supervisord, brought up by `n8nctl up` in a
temporary project on free ports, with the registry's pilots plus a test workflow (slow_echo).

The first run on a machine installs n8n into ~/.cache/n8nctl (about 4 minutes); later runs reuse it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from n8nctl.adapters.bridge_client import BridgeClient
from n8nctl.settings import Settings
from tests.harness import Receiver, clean_env, free_port, free_ports, n8nctl

PROJECT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
UP_TIMEOUT = 1500  # a cold n8n install on a slow registry; `up` itself reports progress meanwhile
WORKERS = ("n8n-worker-1", "n8n-worker-2")  # the queue stack's n8n workers (supervisord programs)

SLOW_ECHO = {
    "template": "templates/slow_echo.json",
    "webhook_path": "flowbiz/test-slow-echo",
    "description": "Test workflow: waits inputs.seconds, then echoes the inputs.",
    "enabled": True,
    "max_timeout_seconds": 120,
    "max_concurrency": 4,
    "expected_duration_seconds": 1,
    "retention": "standard",
    "allowed_clients": ["flowbiz"],
    "inputs_schema": {
        "type": "object",
        "required": ["seconds"],
        "properties": {"seconds": {"type": "number", "minimum": 0, "maximum": 120}},
    },
}


@dataclass
class Stack:
    project: Path
    env: dict[str, str]
    settings: Settings
    client: BridgeClient
    up_output: str
    up_seconds: float

    def cli(
        self, *args: str, timeout: float = 120, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """`n8nctl ARGS` in the project; `env` adds to (or overrides) the stack's environment."""
        return n8nctl(*args, env={**self.env, **(env or {})}, cwd=self.project, timeout=timeout)

    def cli_json(self, *args: str) -> Any:
        done = self.cli(*args, "--json")
        assert done.returncode == 0, f"n8nctl {' '.join(args)}: {done.stderr}"
        return json.loads(done.stdout)

    def supervisorctl(self, *args: str) -> str:
        conf = self.settings.stack_dir(self.settings.stack_name(prod=False)) / "supervisord.conf"
        done = subprocess.run(
            [str(BIN / "supervisorctl"), "-c", str(conf), *args],
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
        return done.stdout

    def execution(self, execution_id: str) -> dict[str, Any]:
        """An execution as n8n's public API reports it (status: success, canceled, waiting, ...)."""
        response = httpx.get(
            f"{self.settings.n8n_url}/api/v1/executions/{execution_id}",
            headers={"X-N8N-API-KEY": self.settings.n8n_api_key_value()},
            timeout=10,
        )
        return dict(response.raise_for_status().json())

    def audit(self, job_id: str) -> list[dict[str, Any]]:
        return list(self.cli_json("audit", "show", job_id)["events"])

    def logs(self) -> str:
        return _log_tails(self.settings.state_dir / "logs")


def _log_tails(log_dir: Path) -> str:
    return "\n".join(
        f"--- {path.name} ---\n" + "\n".join(path.read_text(errors="replace").splitlines()[-40:])
        for path in sorted(log_dir.glob("*.log"))
    )


def _project(workflows: dict[str, dict[str, Any]]) -> Path:
    """A project folder with the registry plus slow_echo, `workflows` merged into its entries. Short
    path: supervisord's socket lives in it."""
    project = Path(tempfile.mkdtemp(prefix="n8e-", dir="/tmp"))
    project.chmod(0o755)  # as a checkout is: as root, native queue mode's PostgreSQL runs as `postgres`
    shutil.copy(PROJECT / ".env.example", project)
    shutil.copytree(PROJECT / "workflows", project / "workflows")
    shutil.copy(Path(__file__).with_name("workflows") / "slow_echo.json", project / "workflows" / "templates")
    registry_file = project / "workflows" / "registry.json"
    registry = json.loads(registry_file.read_text())
    registry["workflows"]["slow_echo"] = dict(SLOW_ECHO)  # a copy: `workflows` may change it
    for key, fields in workflows.items():
        registry["workflows"][key].update(fields)
    registry_file.write_text(json.dumps(registry, indent=2))
    return project


@contextmanager
def running_stack(
    name: str, workflows: dict[str, dict[str, Any]] | None = None, **settings: str
) -> Iterator[Stack]:
    """`n8nctl up` in a fresh project on free ports, as stack `name` with the given settings (and
    registry fields); `down` and the project removed afterwards."""
    project = _project(workflows or {})
    overrides = {
        "N8NCTL_PROJECT_DIR": str(project),
        "N8NCTL_STACK": name,
        "N8NCTL_RUNTIME": "native",  # the tier runs a real n8n natively, Docker engine or not
        "N8N_PORT": str(free_port()),
        "N8N_RUNNERS_BROKER_PORT": str(free_port()),
        "BRIDGE_PORT": str(free_port()),
        "BRIDGE_POLL_INTERVAL_SECONDS": "0.1",
        "BRIDGE_CALLBACK_RETRY_SCHEDULE": "0,1,1,1,1,1,1,1",
        "BRIDGE_CALLBACK_TIMEOUT_SECONDS": "2",
        "BRIDGE_ENVIRONMENT": "development",  # the receivers run on loopback
        "BRIDGE_RATE_LIMIT": "100000/minute",  # the kill-switch test submits continuously
        # the tier fails jobs on purpose (kill-switch, timeouts): status must not call that an incident
        "N8NCTL_ALERT_JOB_FAILURE_RATE": "1",
        "N8NCTL_ALERT_CALLBACK_FAILURE_RATE": "1",
        "N8NCTL_ALERT_DEAD_LETTERS": "100000",
        **settings,
    }
    env = {**clean_env(), **overrides}
    started = time.monotonic()
    up = subprocess.run(
        [str(BIN / "n8nctl"), "up"],
        env=env,
        cwd=project,
        capture_output=True,
        text=True,
        timeout=UP_TIMEOUT,
        check=False,
    )
    up_seconds = time.monotonic() - started
    resolved = Settings(_env_file=project / ".env", **{k.lower(): v for k, v in overrides.items()})  # type: ignore[arg-type]
    client_id, _, secret = resolved.bridge_client_secrets.get_secret_value().partition(":")
    client = BridgeClient(resolved.bridge_url, client_id, secret)
    stack = Stack(
        project,
        {**env, "N8NCTL_CLIENT_ID": client_id, "N8NCTL_CLIENT_SECRET": secret},
        resolved,
        client,
        up.stdout + up.stderr,
        up_seconds,
    )
    try:
        if up.returncode != 0:
            pytest.fail(f"n8nctl up failed:\n{up.stdout}\n{up.stderr}\n{stack.logs()}")
        yield stack
    finally:
        stack.cli("down")
        shutil.rmtree(project, ignore_errors=True)


# The e2e stacks reconcile 5 s past a job's expected duration (default 60 s): every test's running
# executions (waiting ones included) go through it and must be left alone.
RECONCILE_SOON = {"BRIDGE_RECONCILE_GRACE_SECONDS": "5"}


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    with running_stack("e2e", **RECONCILE_SOON) as stack:
        yield stack


@pytest.fixture(scope="session")
def queue_stack() -> Iterator[Stack]:
    """Native queue mode: the stack's own PostgreSQL and Redis, n8n main and two workers (ADR 41)."""
    with running_stack(
        "e2eq",
        workflows={
            # the bridge may feed the workers as much as they take (2 x N8NCTL_WORKER_CONCURRENCY)
            "tiktok_live_helper": {"max_concurrency": 20},
            # deadlines far beyond n8n's own failure detection (tests/e2e/test_reconcile_e2e.py)
            "slow_echo": {"max_timeout_seconds": 600},
        },
        N8NCTL_QUEUE_MODE="true",
        N8NCTL_WORKERS=str(len(WORKERS)),
        N8NCTL_WORKER_BASE_PORT=str(free_ports(2 * len(WORKERS))),
        POSTGRES_PORT=str(free_port()),
        REDIS_PORT=str(free_port()),
        **RECONCILE_SOON,
    ) as stack:
        print(f"up with 2 workers, cold PostgreSQL and Redis, to healthy: {stack.up_seconds:.1f} s")
        yield stack


@pytest.fixture
def receiver(stack: Stack) -> Iterator[Receiver]:
    """FlowBiz's callback endpoint, verifying with the standardwebhooks package."""
    with receiving(stack) as receiver:
        yield receiver


@contextmanager
def receiving(stack: Stack) -> Iterator[Receiver]:
    receiver = Receiver(free_port(), stack.settings.bridge_callback_signing_secret.get_secret_value())
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.stop()
