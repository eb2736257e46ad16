"""The docker tier: n8nctl's compose stacks on a real Docker engine (tests/docker_engine.py) with
stand-in images (tests/stand_ins/), each stack in a temporary project brought up by `n8nctl up` as an
operator would. Without an engine these tests FAIL with one line; N8NCTL_TEST_SKIP_DOCKER=1 turns that
into a skip (never in CI: .ci/run runs them)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from n8nctl.adapters.bridge_client import BridgeClient
from n8nctl.envfile import write_env
from n8nctl.settings import Settings
from tests import stand_ins
from tests.docker_engine import Engine, EngineUnavailable, external, own
from tests.harness import Receiver, clean_env, free_port, n8nctl, wait_until

PROJECT = Path(__file__).resolve().parents[2]
SKIP_ENV = "N8NCTL_TEST_SKIP_DOCKER"
OFFICIAL_ENV = "N8NCTL_TEST_OFFICIAL_IMAGES"  # with registry access: run the tier on the official images
# what `n8nctl up` needs of a checkout: the bridge image's build context and the stack's sources
CHECKOUT_FILES = ("Dockerfile", ".dockerignore", "bridge-requirements.txt", "pyproject.toml", "README.md")
CHECKOUT_FOLDERS = ("n8nctl", "workflows", "templates", "nginx")
UP_TIMEOUT = 1200  # a cold engine builds the bridge image (pip from PyPI) on the first `up`


@pytest.fixture(scope="session")
def say(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """A line on pytest's terminal, not captured: engine and image build times show in CI's log."""
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")

    def write(message: str) -> None:
        if reporter is not None:
            reporter.write_line(f"[docker tier] {message}")

    return write


@pytest.fixture(scope="session")
def docker_engine(say: Callable[[str], None]) -> Iterator[Engine]:
    cache = Settings(_env_file=None).n8nctl_cache_dir  # type: ignore[call-arg]
    started = time.monotonic()
    try:
        host = os.environ.get("DOCKER_HOST")
        engine = external(host, cache) if host else own(cache)
    except EngineUnavailable as exc:
        reason = f"NO DOCKER ENGINE: {exc}"
        if os.environ.get(SKIP_ENV) == "1":
            pytest.skip(f"{reason}; skipped because {SKIP_ENV}=1")
        pytest.fail(reason, pytrace=False)
    say(f"engine at {engine.host} in {time.monotonic() - started:.1f} s")
    yield engine
    engine.stop()


@pytest.fixture(scope="session")
def images(docker_engine: Engine, say: Callable[[str], None]) -> dict[str, str]:
    """The stand-ins, built (or found in the cached engine); the n8n one from the native runtime's
    cached install, installed first when the cache is cold."""
    from n8nctl.runtimes.n8n_npm import ensure_n8n, node_bin_dir

    if os.environ.get(OFFICIAL_ENV) == "1":
        return {}  # the projects keep the default images, which the engine pulls from their registries
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    started = time.monotonic()
    home = ensure_n8n(settings, say)
    stand_ins.build_all(
        docker_engine, n8n_home=home, node=node_bin_dir() / "node", n8n_version=settings.n8n_version, log=say
    )
    say(f"stand-in images ready in {time.monotonic() - started:.0f} s")
    return stand_ins.stand_in_settings()


@dataclass
class ComposeStack:
    """One temporary project whose stack `n8nctl up` runs on the test engine."""

    project: Path
    env: dict[str, str]
    engine: Engine
    prod: bool

    @property
    def settings(self) -> Settings:
        return Settings(_env_file=self.project / ".env", n8nctl_project_dir=self.project)  # type: ignore[call-arg]

    @property
    def name(self) -> str:
        return self.settings.stack_name(prod=self.prod)

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return n8nctl(*args, env=self.env, cwd=self.project, timeout=timeout)

    def cli_json(self, *args: str) -> Any:
        done = self.cli(*args, "--json")
        assert done.returncode == 0, f"n8nctl {' '.join(args)}: {done.stdout}\n{done.stderr}"
        return json.loads(done.stdout)

    def up(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.cli(
            "up", "--runtime", "compose", *(["--prod"] if self.prod else []), *args, timeout=UP_TIMEOUT
        )

    def compose(self, *args: str, timeout: float = 120) -> str:
        folder = self.project / "stacks" / self.name
        files = ["-f", str(folder / "compose.yaml")]
        if self.prod:
            files += ["-f", str(folder / "compose.prod.yaml")]
        env_files = [
            "--env-file",
            str(self.project / ".env"),
            "--env-file",
            str(self.project / ".n8nctl" / "compose.env"),
        ]
        return self.engine.docker("compose", *files, *env_files, *args, timeout=timeout)

    def containers(self, service: str) -> list[str]:
        return self.compose("ps", "-q", "-a", service).split()

    def client(self) -> BridgeClient:
        client_id, _, secret = self.settings.bridge_client_secrets.get_secret_value().partition(":")
        return BridgeClient(self.settings.bridge_url, client_id, secret)

    def receiver(self) -> Receiver:
        """FlowBiz's callback endpoint, where the bridge container reaches the host (the engine's
        gateway), verifying every callback with the standardwebhooks package."""
        secret = self.settings.bridge_callback_signing_secret.get_secret_value()
        receiver = Receiver(free_port(), secret, host=self.engine.gateway)
        receiver.start()
        return receiver

    def job(
        self, receiver: Receiver, workflow_key: str = "tiktok_live_helper", **inputs: Any
    ) -> dict[str, Any]:
        job_id = f"docker-{uuid.uuid4().hex[:12]}"
        if workflow_key == "tiktok_live_helper":
            inputs = inputs or {
                "stream_id": "s1",
                "comments": [{"user": "ana", "text": "hello, this is great"}],
            }
        return {
            "job_id": job_id,
            "client_id": "flowbiz",
            "workflow_key": workflow_key,
            "inputs": inputs,
            "callback_url": receiver.url,
            "metadata": {"user_id": "u-docker"},
        }

    def delivered(
        self, receiver: Receiver, job_ids: set[str], timeout: float = 180
    ) -> dict[str, dict[str, Any]]:
        """Wait until the receiver holds a callback of every job; {job_id: body}."""

        def seen() -> bool:
            return job_ids <= {body["job_id"] for _, body in receiver.calls}

        try:
            wait_until(seen, timeout, f"callbacks of {len(job_ids)} job(s)")
        except AssertionError:
            missing = sorted(job_ids - {body["job_id"] for _, body in receiver.calls})
            logs = self.compose("logs", "--tail", "40", "bridge")
            raise AssertionError(f"{len(missing)} without a callback, e.g. {missing[:3]}\n{logs}") from None
        return {body["job_id"]: body for _, body in receiver.calls if body["job_id"] in job_ids}

    def n8n_api(self, path: str) -> Any:
        response = httpx.get(
            f"{self.settings.n8n_url}/api/v1/{path}",
            headers={"X-N8N-API-KEY": self.settings.n8n_api_key_value()},
            timeout=10,
        )
        return response.raise_for_status().json()


@pytest.fixture(scope="module")
def receiver(stack: ComposeStack) -> Iterator[Receiver]:
    """FlowBiz's receiver for the module's `stack`."""
    receiver = stack.receiver()
    yield receiver
    receiver.stop()


def make_stack(engine: Engine, images: dict[str, str], *, prod: bool) -> ComposeStack:
    project = Path(tempfile.mkdtemp(prefix="n8d-", dir="/tmp"))
    for name in CHECKOUT_FILES:
        shutil.copy(PROJECT / name, project / name)
    for folder in CHECKOUT_FOLDERS:
        shutil.copytree(
            PROJECT / folder, project / folder, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
        )
    shutil.copy(PROJECT / ".env.example", project / ".env.example")
    write_env(project)
    values = {
        **images,
        # in .env, not the environment: `up` must take the engine from there (issue: it was ignored)
        "DOCKER_HOST": engine.host,
        "N8NCTL_STACK": f"t{uuid.uuid4().hex[:6]}",
        "N8N_PORT": str(free_port()),
        "BRIDGE_PORT": str(free_port()),
        "POSTGRES_PORT": str(free_port()),
        "BRIDGE_CALLBACK_ALLOW_HOSTS": engine.gateway,  # the receiver is on the private gateway (ADR 20)
        "BRIDGE_POLL_INTERVAL_SECONDS": "0.1",
        "BRIDGE_CALLBACK_RETRY_SCHEDULE": "0,1,1,1,1,1,1,1",
        "BRIDGE_CALLBACK_TIMEOUT_SECONDS": "2",
        "BRIDGE_RATE_LIMIT": "100000/minute",
    }
    with (project / ".env").open("a") as env:
        env.writelines(f"{name}={value}\n" for name, value in values.items())
    env = {
        **clean_env(),
        "N8NCTL_PROJECT_DIR": str(project),
        "DOCKER_CONFIG": str(engine.config_dir),
    }
    env.pop("DOCKER_HOST", None)
    return ComposeStack(project, env, engine, prod)


def remove_stack(stack: ComposeStack) -> None:
    stack.compose("down", "-v", "--remove-orphans", timeout=300)
    shutil.rmtree(stack.project, ignore_errors=True)
