"""Fixtures of the process tier: a fake n8n subprocess, the bridge as `n8nctl bridge serve`, the
`n8nctl` CLI as a subprocess, and FlowBiz's receiver, all on 127.0.0.1 with fresh secrets and ports."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from n8nctl.signing import generate_secret
from tests.harness import Receiver, Service, bridge_service, clean_env, free_port

PROJECT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
Cli = Callable[..., subprocess.CompletedProcess[str]]


@dataclass(frozen=True)
class Keys:
    client: str = field(default_factory=generate_secret)
    callback: str = field(default_factory=generate_secret)
    n8n: str = field(default_factory=generate_secret)
    token: str = field(default_factory=generate_secret)


class FakeN8n(Service):
    def job(self, job_id: str) -> Any:
        """What n8n saw of a job: triggers, execution_id, result, and the bridge's reply to it."""
        return httpx.get(f"{self.url}/_jobs/{job_id}", timeout=5).raise_for_status().json()

    def release(self, job_id: str) -> Any:
        """Post a held result now; returns the bridge's reply."""
        return httpx.post(f"{self.url}/_control/release/{job_id}", timeout=15).raise_for_status().json()

    @property
    def url(self) -> str:
        return self.health.removesuffix("/healthz/readiness")


@pytest.fixture(scope="session")
def keys() -> Keys:
    return Keys()


@pytest.fixture(scope="session")
def fake_n8n(keys: Keys, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeN8n]:
    port = free_port()
    env = {**clean_env(), "FAKE_N8N_TOKEN": keys.token, "FAKE_N8N_CALLBACK_SECRET": keys.n8n}
    n8n = FakeN8n(
        "fake-n8n",
        [sys.executable, str(Path(__file__).with_name("fake_n8n.py")), str(port)],
        env=env,
        cwd=tmp_path_factory.mktemp("fake-n8n"),
        health=f"http://127.0.0.1:{port}/healthz/readiness",
    )
    n8n.start()
    yield n8n
    n8n.stop()


@pytest.fixture
def receiver(keys: Keys) -> Iterator[Receiver]:
    receiver = Receiver(free_port(), keys.callback)
    receiver.start()
    yield receiver
    receiver.stop()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project folder holding only the registry; the processes run in it, so no developer .env is read."""
    (tmp_path / "workflows").mkdir()
    shutil.copy(PROJECT / "workflows" / "registry.json", tmp_path / "workflows" / "registry.json")
    return tmp_path


@pytest.fixture
def env(project: Path, keys: Keys, fake_n8n: FakeN8n) -> dict[str, str]:
    """Environment of the bridge and of the CLI (which opens the same database for `audit show`)."""
    port = free_port()
    return {
        **clean_env(),
        "N8NCTL_PROJECT_DIR": str(project),
        "N8NCTL_STATE_DIR": str(project / "state"),
        "BRIDGE_DATABASE_URL": f"sqlite:///{project / 'state' / 'bridge.db'}",
        "BRIDGE_CLIENT_SECRETS": f"flowbiz:{keys.client}",
        "BRIDGE_CALLBACK_SIGNING_SECRET": keys.callback,
        "BRIDGE_N8N_CALLBACK_SECRET": keys.n8n,
        "BRIDGE_N8N_WEBHOOK_TOKEN": keys.token,
        "BRIDGE_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "BRIDGE_POLL_INTERVAL_SECONDS": "0.1",
        "BRIDGE_CALLBACK_RETRY_SCHEDULE": "0,1,1,1,1,1,1,1,1,1",
        "BRIDGE_CALLBACK_TIMEOUT_SECONDS": "2",
        "BRIDGE_ENVIRONMENT": "development",  # the receivers run on loopback
        "N8N_BASE_URL": fake_n8n.url,
        "N8NCTL_BRIDGE_URL": f"http://127.0.0.1:{port}",
        "N8NCTL_CLIENT_ID": "flowbiz",
        "N8NCTL_CLIENT_SECRET": keys.client,
    }


@pytest.fixture
def bridge(env: dict[str, str], project: Path) -> Iterator[Service]:
    """`n8nctl bridge serve` as a real process; `kill()` then `start()` restarts it (same port, same DB)."""
    bridge = bridge_service(env, project, int(env["BRIDGE_PUBLIC_URL"].rsplit(":", 1)[1]))
    bridge.start()
    yield bridge
    bridge.stop()
    print(f"--- bridge log ---\n{bridge.output()}")  # shown by pytest when the test failed


@pytest.fixture
def cli(env: dict[str, str], project: Path) -> Cli:
    """Run `n8nctl ARGS...` as a subprocess; keyword arguments override environment variables."""

    def run(*args: str, **overrides: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "n8nctl"), *args],
            env={**env, **overrides},
            cwd=project,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    return run
