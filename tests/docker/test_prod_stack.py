"""The prod compose stack on a real engine: `n8nctl up --prod --workers 2` (n8n in queue mode on
PostgreSQL, the bridge's store in its own PostgreSQL database), jobs executed on the workers, n8n's
main process crashing inside its container, the bridge container killed mid-burst, the kill-switch."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from n8nctl.errors import RemoteError, UnreachableError
from tests.docker.conftest import ComposeStack, make_stack, remove_stack
from tests.docker_engine import Engine
from tests.harness import Receiver, wait_until

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def stack(docker_engine: Engine, images: dict[str, str]) -> Iterator[ComposeStack]:
    stack = make_stack(docker_engine, images, prod=True)
    try:
        started = time.monotonic()
        done = stack.up("--workers", "2")
        assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{stack.compose('logs', '--tail', '30')}"
        print(f"n8nctl up --prod --workers 2: healthy in {time.monotonic() - started:.0f} s")
        yield stack
    finally:
        remove_stack(stack)


def run_jobs(stack: ComposeStack, receiver: Receiver, count: int) -> dict[str, dict[str, Any]]:
    client = stack.client()
    jobs = [stack.job(receiver) for _ in range(count)]
    for job in jobs:
        client.submit(job)
    results = stack.delivered(receiver, {job["job_id"] for job in jobs})
    assert all(result["status"] == "success" for result in results.values()), results
    return results


def test_the_stack_runs_two_workers_and_every_service_is_healthy(stack: ComposeStack) -> None:
    rows = stack.cli_json("status")["services"]
    assert sorted(row["service"] for row in rows) == sorted(
        ["postgres", "redis", "n8n", "n8n-worker", "n8n-worker", "bridge"]
    )
    assert all(row["healthy"] for row in rows), rows


def test_jobs_execute_on_the_workers_not_on_main(stack: ComposeStack, receiver: Receiver) -> None:
    results = run_jobs(stack, receiver, 6)
    executions = {result["execution_id"] for result in results.values()}
    worker_logs, main_logs = stack.compose("logs", "n8n-worker"), stack.compose("logs", "n8n")
    for execution_id in executions:
        assert f"Worker started execution {execution_id} " in worker_logs
        assert f"Enqueued execution {execution_id} " in main_logs
    assert "Worker started execution" not in main_logs


def test_the_bridge_keeps_its_jobs_in_its_own_postgresql_database(
    stack: ComposeStack, receiver: Receiver
) -> None:
    (job_id,) = run_jobs(stack, receiver, 1)
    assert not (stack.project / ".n8nctl" / "bridge.db").exists(), "no SQLite store on the prod stack"
    counted = stack.compose(
        "exec", "-T", "postgres", "psql", "-U", "n8n", "-d", "bridge", "-tAc",
        f"SELECT status FROM jobs WHERE job_id = '{job_id}'",
    )  # fmt: skip
    assert counted.strip() == "success"
    listed = stack.cli_json("jobs", "list", "--limit", "50")  # the host's CLI, on the published port
    assert job_id in {row["job_id"] for row in listed}
    audit = stack.cli_json("audit", "show", job_id)["events"]
    assert {"accepted", "dispatched"} <= {event["action"] for event in audit}


@pytest.mark.timeout(360)  # the test's own bound is the 240 s wait below, not pytest's default 180 s
def test_n8n_main_crashing_in_its_container_comes_back_and_jobs_accepted_meanwhile_complete(
    stack: ComposeStack, receiver: Receiver
) -> None:
    (container,) = stack.containers("n8n")
    restarts = int(stack.engine.docker("inspect", "-f", "{{.RestartCount}}", container))
    # SIGKILL every process of n8n's user but PID 1 (tini): the main process dies as in a crash; the
    # engine restarts the container (a `docker kill` would count as a manual stop)
    stack.engine.docker("exec", container, "sh", "-c", "kill -9 -1", check=False)
    wait_until(lambda: not _healthy(stack), 30, "n8n to go down")
    client = stack.client()
    jobs = [stack.job(receiver) for _ in range(3)]
    for job in jobs:
        assert client.submit(job)["status"] == "pending", "the bridge accepts while n8n is down"
    results = stack.delivered(receiver, {job["job_id"] for job in jobs}, timeout=240)
    assert all(result["status"] == "success" for result in results.values()), results
    assert int(stack.engine.docker("inspect", "-f", "{{.RestartCount}}", container)) > restarts


def _healthy(stack: ComposeStack) -> bool:
    try:
        return httpx.get(f"{stack.settings.n8n_url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_the_bridge_container_killed_mid_burst_loses_no_accepted_job(
    stack: ComposeStack, receiver: Receiver
) -> None:
    client = stack.client()
    accepted: list[str] = []
    unknown: list[dict[str, Any]] = []
    killed = threading.Event()

    def load() -> None:
        while not killed.is_set():
            job = stack.job(receiver)
            try:
                client.submit(job)
                accepted.append(job["job_id"])
            except (UnreachableError, RemoteError):
                unknown.append(job)  # the bridge died while answering: stored or not, nobody knows
                time.sleep(0.05)

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: len(accepted) >= 60, 60, "60 accepted jobs")
        (container,) = stack.containers("bridge")
        stack.engine.docker("kill", container)
    finally:
        killed.set()
        for thread in threads:
            thread.join(timeout=30)
    back = stack.up("--workers", "2")
    assert back.returncode == 0, back.stderr
    for job in unknown:
        client.submit(job)  # 202 if the crash lost it, 200 (the stored job) if it was committed
    expected = set(accepted) | {job["job_id"] for job in unknown}
    stack.delivered(receiver, expected, timeout=300)
    ids: dict[str, set[str]] = {}
    for webhook_id, body in receiver.calls:
        if body["job_id"] in expected:
            assert body["status"] == "success", body
            ids.setdefault(body["job_id"], set()).add(webhook_id)
    assert all(len(webhook_ids) == 1 for webhook_ids in ids.values()), "one webhook-id per job"
    print(f"bridge killed mid-burst: {len(accepted)} accepted, {len(unknown)} answers lost and resubmitted")


def test_kill_switch_on_compose(stack: ComposeStack, receiver: Receiver) -> None:
    client = stack.client()
    killed = stack.cli("kill", "tiktok_live_helper", "--reason", "INC-docker")
    assert killed.returncode == 0, killed.stdout + killed.stderr
    with pytest.raises(RemoteError) as refused:
        client.submit(stack.job(receiver))
    assert (refused.value.status, refused.value.error_code) == (423, "WORKFLOW_KILLED")
    revived = stack.cli("revive", "tiktok_live_helper")
    assert revived.returncode == 0, revived.stdout + revived.stderr

    everything = stack.cli("kill", "--all", "--reason", "INC-docker-all")
    assert everything.returncode == 0, everything.stdout + everything.stderr
    stopped = [row for row in status_rows(stack) if row["service"] in ("n8n", "n8n-worker")]
    assert len(stopped) == 3 and not any(row["healthy"] for row in stopped), stopped
    started = time.monotonic()
    with pytest.raises(RemoteError) as unavailable:
        client.submit(stack.job(receiver))
    assert (unavailable.value.status, unavailable.value.error_code) == (503, "N8N_KILLED")
    assert time.monotonic() - started < 1.0
    revived = stack.cli("revive", "--all", timeout=400)
    assert revived.returncode == 0, revived.stdout + revived.stderr
    run_jobs(stack, receiver, 1)


def status_rows(stack: ComposeStack) -> list[dict[str, Any]]:
    """`n8nctl status --json` rows, also when it exits 1 (a service is unhealthy)."""
    return list(json.loads(stack.cli("status", "--json").stdout)["services"])


def test_render_check_finds_no_drift(stack: ComposeStack) -> None:
    done = stack.cli("render", "--prod", "--check")
    assert done.returncode == 0, done.stdout + done.stderr
