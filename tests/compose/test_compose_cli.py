"""No Docker engine: argument level. The stack commands on the compose runtime, through the CLI."""

from __future__ import annotations

import json

from click.testing import CliRunner

from n8nctl import runtimes
from n8nctl.cli.main import cli
from n8nctl.runtimes import ActiveStack
from tests.harness import free_port


def run(*args: str):
    # ports where nothing listens: the HTTP probes of n8n and the bridge fail, as with a stopped stack
    env = {"N8N_PORT": str(free_port()), "BRIDGE_PORT": str(free_port())}
    return CliRunner().invoke(cli, list(args), env=env)


def test_up_prod_without_an_engine_exits_5_and_says_why(docker, project):
    docker.scenario(engine=False)
    result = run("up", "--prod")
    assert result.exit_code == 5, result.output
    assert "no Docker engine answers" in result.output and "prod stack" in result.output
    assert docker.compose_calls("up") == []


def test_up_refuses_flag_combinations_that_cannot_run(docker, project):
    native_prod = run("up", "--prod", "--runtime", "native")
    assert native_prod.exit_code == 2 and "--prod needs the compose runtime" in native_prod.output
    workers_dev = run("up", "--workers", "2")
    assert workers_dev.exit_code == 2 and "--workers needs --prod" in workers_dev.output
    assert docker.calls() == []


def test_status_lists_compose_containers_and_fails_when_probes_fail_no_docker_engine_argument_level(
    docker, project, settings
):
    runtimes.remember(settings, ActiveStack("compose"))
    result = run("status", "--json")
    assert result.exit_code == 1, result.output
    report = json.loads(result.output[: result.output.rindex("}") + 1])
    rows = {row["service"]: row for row in report["services"]}
    assert rows["postgres"]["state"] == "running (healthy)" and rows["postgres"]["healthy"] is True
    assert rows["bridge"]["healthy"] is False, "its HTTP probe failed"
    assert "unhealthy: n8n; unhealthy: bridge" in result.output


def test_logs_and_down_on_compose_no_docker_engine_argument_level(docker, project, settings):
    runtimes.remember(settings, ActiveStack("compose", "prod", prod=True, workers=2))
    docker.scenario(containers=[], logs="n8n-worker-1  | Worker started\n")
    logs = run("logs", "n8n-worker", "-n", "20")
    assert logs.exit_code == 0, logs.output
    assert logs.output == "n8n-worker-1  | Worker started\n"
    assert docker.compose_calls("logs")[0][-4:] == ["--no-color", "--tail", "20", "n8n-worker"]
    assert run("logs", "supervisord").exit_code == 2
    down = run("down")
    assert down.exit_code == 0 and down.output == "was not running\n"
    assert len(docker.compose_calls("down")) == 1
