"""The dev compose stack on a real engine, as an operator runs it: `n8nctl up --runtime compose`,
both pilots end to end, status, logs, down and up again with the data kept, no drift, and a new
POSTGRES_PASSWORD meeting the old volume."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest

from tests.conftest import CALLBACK_KEYS
from tests.docker.conftest import ComposeStack, make_stack, remove_stack
from tests.docker_engine import Engine
from tests.harness import Receiver, secret_values

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def stack(docker_engine: Engine, images: dict[str, str]) -> Iterator[ComposeStack]:
    stack = make_stack(docker_engine, images, prod=False)
    try:
        yield stack
    finally:
        remove_stack(stack)


@pytest.fixture(scope="module")
def first_up(stack: ComposeStack) -> str:
    done = stack.up()
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{stack.compose('logs', '--tail', '30')}"
    return done.stderr


def test_up_runs_every_service_healthy_and_bootstraps_n8n(stack: ComposeStack, first_up: str) -> None:
    assert "runtime: compose (--runtime)" in first_up
    assert "created the n8n owner" in first_up and "created an n8n API key" in first_up
    status = stack.cli_json("status")
    rows = {row["service"]: row for row in status["services"]}
    assert set(rows) == {"postgres", "redis", "n8n", "bridge"}
    assert all(row["healthy"] for row in rows.values()), rows
    assert rows["n8n"]["version"] == "2.40.7" and rows["bridge"]["version"]
    workflows = {row["workflow_key"]: row for row in stack.cli_json("workflows", "list")}
    assert {"tiktok_live_helper", "content_pipeline"} <= set(workflows)
    assert all(workflows[key]["active"] for key in ("tiktok_live_helper", "content_pipeline"))


def test_each_pilot_runs_end_to_end_with_a_verified_callback(
    stack: ComposeStack, first_up: str, receiver: Receiver
) -> None:
    client = stack.client()
    plan = "- Teaser video\n- Behind the scenes\n- Launch day live"
    jobs = [
        stack.job(receiver),
        stack.job(receiver, "content_pipeline", campaign="Summer", plan=plan, start_date="2026-12-01"),
    ]
    for job in jobs:
        assert client.submit(job)["status"] == "pending"
    results = stack.delivered(receiver, {job["job_id"] for job in jobs})
    assert not receiver.rejected, "every callback verified by the standardwebhooks package"
    for job in jobs:
        result = results[job["job_id"]]
        assert set(result) == CALLBACK_KEYS and result["status"] == "success", result
        execution_id = result["execution_id"]
        assert stack.n8n_api(f"executions/{execution_id}")["status"] == "success"
        events = stack.cli_json("audit", "show", job["job_id"])["events"]
        dispatched = next(e for e in events if e["action"] == "dispatched")
        assert dispatched["details"]["execution_id"] == execution_id, "the audit links job and execution"
    assert results[jobs[1]["job_id"]]["outputs"]["post_count"] == 3


def test_logs_show_each_service(stack: ComposeStack, first_up: str) -> None:
    for service in ("bridge", "n8n", "postgres"):
        done = stack.cli("logs", service, "-n", "5")
        assert done.returncode == 0 and done.stdout.strip(), (service, done.stderr)
    assert stack.cli("logs", "supervisord").returncode == 2, "compose has no supervisord"


def test_render_check_finds_no_drift(stack: ComposeStack, first_up: str) -> None:
    done = stack.cli("render", "--check")
    assert done.returncode == 0, done.stdout + done.stderr


def test_up_rebuilds_the_bridge_image_when_its_code_changed(stack: ComposeStack, first_up: str) -> None:
    package = stack.project / "n8nctl" / "__init__.py"
    original = package.read_text()
    package.write_text(original.replace('__version__ = "', '__version__ = "9.9.9+'))
    try:
        done = stack.up()
        assert done.returncode == 0, done.stderr
        versions = {row["service"]: row["version"] for row in stack.cli_json("status")["services"]}
        assert versions["bridge"].startswith("9.9.9+"), "the same image tag, the new code"
    finally:
        package.write_text(original)


def test_down_then_up_keeps_the_data(stack: ComposeStack, first_up: str, receiver: Receiver) -> None:
    client = stack.client()
    job = stack.job(receiver)
    client.submit(job)
    execution_id = stack.delivered(receiver, {job["job_id"]})[job["job_id"]]["execution_id"]
    down = stack.cli_json("down")
    assert down == {"stopped": True}
    assert stack.containers("n8n") == [], "down removes the containers"
    assert stack.cli("status").returncode == 1
    again = stack.up("--json")
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert (report["runtime"], report["started"], report["unchanged"]) == ("compose", True, False)
    assert {w["workflow_key"]: w["result"] for w in report["workflows"]}["tiktok_live_helper"] == "unchanged"
    assert "created the n8n owner" not in again.stderr, "n8n's database survived in its volume"
    assert stack.n8n_api(f"executions/{execution_id}")["id"] == execution_id
    assert client.status(job["job_id"])["status"] == "success", "the job store survived"
    second = stack.job(receiver)
    client.submit(second)
    assert stack.delivered(receiver, {second["job_id"]})[second["job_id"]]["status"] == "success"


def test_no_secret_in_container_logs_rendered_files_or_output(stack: ComposeStack, first_up: str) -> None:
    status = stack.cli("status")
    places = {
        "n8nctl up output": first_up,
        "n8nctl status output": status.stdout + status.stderr,
        "container logs": stack.compose("logs", "--no-color"),
    }
    for path in sorted((stack.project / "stacks").rglob("*")):
        if path.is_file():
            places[str(path.relative_to(stack.project))] = path.read_text()
    places["compose.env"] = (stack.project / ".n8nctl" / "compose.env").read_text()
    secrets = secret_values(stack.settings)
    assert len(secrets) >= 10, secrets.keys()
    leaks = [
        (name, place) for name, value in secrets.items() for place, text in places.items() if value in text
    ]
    assert leaks == []


def test_a_new_postgres_password_meets_the_old_volume_with_a_clear_error(
    stack: ComposeStack, first_up: str
) -> None:
    env_file = stack.project / ".env"
    original = env_file.read_text()
    env_file.write_text(re.sub(r"(?m)^POSTGRES_PASSWORD=.*$", "POSTGRES_PASSWORD=another-one", original))
    try:
        done = stack.up()
    finally:
        env_file.write_text(original)
    assert done.returncode == 2, done.stderr
    line = done.stderr.strip().splitlines()[-1]
    assert f"the PostgreSQL volume n8nctl-{stack.name}_postgres-data was created with another" in line
    assert "another-one" not in done.stderr + done.stdout
    assert stack.up().returncode == 0, "the right password opens it again"
