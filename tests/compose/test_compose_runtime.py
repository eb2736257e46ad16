"""No Docker engine: argument level. What n8nctl asks of Docker, read from the command lines
python-on-whales built (see conftest.py); the real stack runs in test_docker_stack.py."""

from __future__ import annotations

import itertools
import json
import os

import pytest

from n8nctl import runtimes, stack
from n8nctl.adapters.docker import Compose, engine_answers
from n8nctl.errors import ConfigError, N8nctlError, UnreachableError
from n8nctl.runtimes import ActiveStack, current
from n8nctl.runtimes.compose import ComposeRuntime
from n8nctl.store import migrations
from tests.compose.conftest import HEALTHY_DEV, secret_values


def no_progress(message: str) -> None:
    pass


def dev(settings):
    return ComposeRuntime(settings, ActiveStack("compose"))


def test_engine_detection_no_docker_engine_argument_level(docker, tmp_path):
    assert engine_answers([str(docker.executable)]) is True
    docker.scenario(engine=False)
    assert engine_answers([str(docker.executable)]) is False
    assert engine_answers([str(tmp_path / "no-such-docker")]) is False
    assert docker.calls()[0] == ["version", "-f", "{{json .}}"]


@pytest.mark.parametrize(
    ("requested", "prod", "engine", "expected"),
    [
        (None, False, True, ("compose", "a Docker engine answers")),
        (None, False, False, ("native", "no Docker engine answers")),
        ("native", False, True, ("native", "--runtime")),
        ("compose", True, True, ("compose", "--runtime")),
        (None, True, True, ("compose", "a Docker engine answers")),
    ],
)
def test_runtime_choice(settings, requested, prod, engine, expected):
    assert runtimes.choose(settings, requested, prod=prod, engine_answers=lambda: engine) == expected


def test_runtime_choice_refuses_what_cannot_run(settings):
    with pytest.raises(UnreachableError, match="no Docker engine answers"):
        runtimes.choose(settings, None, prod=True, engine_answers=lambda: False)
    with pytest.raises(UnreachableError):
        runtimes.choose(settings, "compose", prod=False, engine_answers=lambda: False)
    with pytest.raises(ConfigError, match="--prod needs the compose runtime"):
        runtimes.choose(settings, "native", prod=True, engine_answers=lambda: True)


def test_prod_up_scales_workers_and_passes_secrets_only_as_env_files_no_docker_engine_argument_level(
    docker, settings, project
):
    healthy = [*HEALTHY_DEV, *[{"service": "n8n-worker", "status": "running", "health": "healthy"}] * 3]
    docker.scenario(containers=healthy)
    report = ComposeRuntime(settings, ActiveStack("compose", "prod", prod=True, workers=3)).start(no_progress)
    folder = project / "stacks" / "prod"
    data, up = docker.compose_calls("up")
    assert data[-3:] == ["--detach", "postgres", "redis"], "PostgreSQL and Redis first"
    assert up == [
        "compose",
        "--file", str(folder / "compose.yaml"),
        "--file", str(folder / "compose.prod.yaml"),
        "--env-file", str(project / ".env"),
        "--env-file", str(project / ".n8nctl" / "compose.env"),
        "up", "--detach", "--scale", "n8n-worker=3", "--remove-orphans",
    ]  # fmt: skip
    assert report.changes == [
        "rendered prod/compose.yaml",
        "rendered prod/compose.prod.yaml",
        "rendered prod/nginx/n8nctl.conf",
        "rendered prod/prometheus/alerts.yml",
        "created the bridge's PostgreSQL role and database 'bridge'",
        "migrated the bridge's job store to schema head",
    ]
    command_lines = json.dumps(docker.calls())
    rendered = "".join(p.read_text() for p in folder.rglob("*") if p.is_file())
    for secret in secret_values(settings):
        assert secret not in command_lines and secret not in rendered
    assert (project / ".n8nctl" / "compose.env").read_text() == "N8NCTL_BRIDGE_USER=10001:10001\n"
    calls = docker.postgres_calls
    assert [what for what, _ in calls] == ["login", "ensure", "migrate"], (
        "the bridge's database, then its schema"
    )
    assert calls[2][1].endswith(f"@127.0.0.1:{settings.postgres_port}/bridge"), (
        "from the host, on the bridge's own"
    )


def test_dev_up_is_idempotent_no_docker_engine_argument_level(docker, settings):
    first = dev(settings).start(no_progress)
    again = dev(settings).start(no_progress)
    assert first.changes and again.changes == [] and not again.started
    assert f"migrated the bridge's job store to schema {migrations.head()}" in first.changes
    assert (settings.state_dir / "bridge.db").stat().st_uid == (10001 if os.geteuid() == 0 else os.geteuid())
    assert [what for what, _ in docker.postgres_calls] == ["login", "login"], "dev: no bridge database"
    assert all("--scale" not in call for call in docker.compose_calls("up"))


def test_a_service_that_exits_is_named_with_its_last_log_lines_no_docker_engine_argument_level(
    docker, settings
):
    crashed = [dict(c, status="exited", health=None) if c["service"] == "n8n" else c for c in HEALTHY_DEV]
    docker.scenario(containers=crashed, logs="n8n-1  | There was an error initializing DB\n")
    with pytest.raises(N8nctlError) as error:
        dev(settings).start(no_progress)
    line = error.value.line()
    assert line.startswith("n8n did not come up (exited)")
    assert "There was an error initializing DB" in line and "n8nctl logs n8n" in line
    (logs,) = docker.compose_calls("logs")
    assert logs[-4:] == ["--no-color", "--tail", "15", "n8n"]


def test_a_service_still_starting_at_the_deadline_is_named_no_docker_engine_argument_level(docker, settings):
    starting = [dict(c, health="starting") if c["service"] == "bridge" else c for c in HEALTHY_DEV]
    docker.scenario(containers=starting, logs="bridge-1  | waiting for the database\n")
    runtime = dev(settings)
    ticks = itertools.count(0, 10)  # a clock that advances 10 s per look: no real waiting
    with pytest.raises(N8nctlError) as error:
        runtime.wait_healthy(
            runtime.services,
            timeout=30,
            clock=lambda: next(ticks),
            pause=lambda s: None,
        )
    assert error.value.line().startswith("bridge not healthy after 30 s")
    assert "waiting for the database" in error.value.line()


def test_docker_failures_become_one_line_errors_no_docker_engine_argument_level(docker, settings):
    docker.scenario(containers=[], fail={"up": "service bridge: pull access denied for n8nctl-bridge"})
    with pytest.raises(N8nctlError) as error:
        dev(settings).start(no_progress)
    assert error.value.line().startswith("docker compose up failed: because docker exited 1: service bridge")
    assert "\n" not in error.value.line()


def test_kill_switch_seam_stops_n8n_and_its_workers_no_docker_engine_argument_level(docker, settings):
    runtimes.remember(settings, ActiveStack("compose", "prod", prod=True, workers=2))
    current(settings).stop_service("n8n")
    current(settings).start_service("n8n")
    runtimes.remember(settings, ActiveStack("compose"))
    current(settings).stop_service("n8n")
    stops, starts = docker.compose_calls("stop"), docker.compose_calls("start")
    assert stops[0][-2:] == ["n8n", "n8n-worker"] and "compose.prod.yaml" in stops[0][4]
    assert starts[0][-2:] == ["n8n", "n8n-worker"]
    assert stops[1][-2:] == ["stop", "n8n"], "the dev stack has no workers"


def test_down_removes_containers_keeps_volumes_and_forgets_the_runtime_no_docker_engine_argument_level(
    docker, settings
):
    runtimes.remember(settings, ActiveStack("compose"))
    assert stack.down(settings) is True
    (down,) = docker.compose_calls("down")
    assert down[-2:] == ["down", "--remove-orphans"] and "--volumes" not in down
    assert runtimes.active(settings) == ActiveStack("native")


def test_compose_files_order_base_then_override(settings):
    project = ComposeRuntime(settings, ActiveStack("compose", "prod", prod=True)).project
    assert isinstance(project, Compose)
    assert [p.name for p in project.files] == ["compose.yaml", "compose.prod.yaml"]


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a folder's owner needs root")
def test_the_bridge_container_shares_the_state_folder_with_the_host(settings):
    state = settings.state_dir
    state.mkdir(parents=True, exist_ok=True)
    (state / "bridge.db").write_text("")
    (state / "n8n-api-key").write_text("key\n")
    (state / "n8n-bootstrap.json").write_text("{}")
    os.chown(state, 0, 0)
    # root owns it: the image's unprivileged user gets the folder and the files the bridge opens
    assert dev(settings).share_state() == (10001, 10001)
    owners = {p.name: p.stat().st_uid for p in [state, *state.iterdir()]}
    assert owners == {".n8nctl": 10001, "bridge.db": 10001, "n8n-api-key": 10001, "n8n-bootstrap.json": 0}
    # an operator's own folder: the container runs as that operator, nothing changes hands
    os.chown(state, 1234, 1235)
    assert dev(settings).share_state() == (1234, 1235)
    assert (state / "bridge.db").stat().st_uid == 10001
