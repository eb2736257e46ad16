"""The real dev stack on a real Docker engine (pytest-docker): built, started, healthy, one job through
it. Skipped loudly where no engine answers; `pytest --require-docker` turns that skip into a failure."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from n8nctl.adapters.bridge_client import BridgeClient
from n8nctl.compose import runtime_env_file, write_runtime_env
from n8nctl.envfile import write_env
from n8nctl.render import render_stack, write_stack
from n8nctl.settings import Settings
from tests.conftest import PROJECT
from tests.harness import clean_env, free_port, wait_until

pytestmark = pytest.mark.docker
BIN = Path(sys.executable).parent
# what the bridge image's build context (Dockerfile: COPY ...) needs from a checkout
BUILD_CONTEXT = ("Dockerfile", ".dockerignore", "bridge-requirements.txt", "pyproject.toml", "README.md")


@pytest.fixture(scope="session")
def docker_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = tmp_path_factory.mktemp("docker-project")
    for name in BUILD_CONTEXT:
        shutil.copy(PROJECT / name, project / name)
    for folder in ("n8nctl", "workflows", "templates", "nginx"):
        shutil.copytree(PROJECT / folder, project / folder, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(PROJECT / ".env.example", project / ".env.example")
    write_env(project)
    with (project / ".env").open("a") as env:
        env.write(f"N8NCTL_STACK=dockertest\nN8N_PORT={free_port()}\nBRIDGE_PORT={free_port()}\n")
    return project


@pytest.fixture(scope="session")
def docker_settings(docker_project: Path) -> Settings:
    return Settings(_env_file=docker_project / ".env", n8nctl_project_dir=docker_project)  # type: ignore[call-arg]


@pytest.fixture(scope="session")
def docker_compose_file(docker_settings: Settings) -> list[str]:
    folder = docker_settings.stack_dir
    write_stack(render_stack(docker_settings, runtime="compose", prod=False), folder)
    return [str(folder / "compose.yaml")]


@pytest.fixture(scope="session")
def docker_compose_project_name(docker_settings: Settings) -> str:
    return f"n8nctl-{docker_settings.n8nctl_stack}"  # the `name:` n8nctl renders, so `n8nctl up` finds it


@pytest.fixture(scope="session")
def env_files(docker_project: Path, docker_settings: Settings) -> str:
    write_runtime_env(docker_settings)
    return f'--env-file "{docker_project / ".env"}" --env-file "{runtime_env_file(docker_settings)}"'


@pytest.fixture(scope="session")
def docker_setup(env_files: str) -> list[str]:
    return [f"{env_files} up --build --wait --wait-timeout 300"]


@pytest.fixture(scope="session")
def docker_cleanup(env_files: str) -> list[str]:
    return [f"{env_files} down -v"]


@pytest.fixture(scope="session")
def stack_up(docker_services: object, docker_project: Path) -> subprocess.CompletedProcess[str]:
    """pytest-docker started the containers; `n8nctl up` finds them healthy, bootstraps and imports."""
    env = clean_env()
    return subprocess.run(
        [str(BIN / "n8nctl"), "up", "--runtime", "compose"],
        env={**env, "N8NCTL_PROJECT_DIR": str(docker_project)},
        cwd=docker_project,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_dev_stack_runs_a_job_end_to_end(stack_up, docker_settings):
    assert stack_up.returncode == 0, f"{stack_up.stdout}\n{stack_up.stderr}"
    assert "runtime: compose (--runtime)" in stack_up.stderr
    assert httpx.get(f"{docker_settings.n8n_url}/healthz", timeout=5).status_code == 200
    client_id, _, secret = docker_settings.bridge_client_secrets.get_secret_value().partition(":")
    client = BridgeClient(docker_settings.bridge_url, client_id, secret)
    job_id = f"docker-{time.time_ns()}"
    accepted = client.submit(
        {
            "job_id": job_id,
            "client_id": client_id,
            "workflow_key": "tiktok_live_helper",
            "inputs": {"stream_id": "s1", "comments": [{"user": "ana", "text": "hello"}]},
            "callback_url": "http://127.0.0.1:9/callbacks",  # nobody listens: the job's own status is checked
        }
    )
    assert accepted["status"] == "pending"
    job = wait_until(
        lambda: (status := client.status(job_id))["status"] in ("success", "failed") and status,
        120,
        "the job",
    )
    assert job["status"] == "success", job
    assert job["execution_id"]
