"""n8n queue mode on the native runtime, for real: `n8nctl up` with N8NCTL_QUEUE_MODE=true brings up the
stack's own PostgreSQL and Redis, n8n main and two `n8n worker` programs under supervisord; the pilots'
jobs run end to end and their executions run on the workers (main enqueues them); status shows a row
per worker; the kill-switch stops and starts main with every worker; no secret in any rendered file,
log or command line. docs/adr/0041."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import WORKERS, Stack, receiving
from tests.e2e.test_n8n_e2e import callback_of, submit
from tests.harness import Receiver, secret_values, wait_until

pytestmark = pytest.mark.n8n

COMMENTS = {"stream_id": "q", "comments": [{"user": "ana", "text": "How much is the red one?"}]}
CAMPAIGN = {"campaign": "Queue", "plan": "- one\n- two", "start_date": "2026-12-01", "channels": ["tiktok"]}


@pytest.fixture
def receiver(queue_stack: Stack) -> Iterator[Receiver]:
    with receiving(queue_stack) as receiver:
        yield receiver


def log(stack: Stack, program: str) -> str:
    return (stack.settings.state_dir / "logs" / f"{program}.log").read_text(errors="replace")


def ran_on(stack: Stack, execution_id: str) -> list[str]:
    """The programs whose log says they ran the execution."""
    line = re.compile(rf"Worker started execution {execution_id} \(job \d+\)")
    return [program for program in ("n8n", *WORKERS) if line.search(log(stack, program))]


def rows(stack: Stack) -> dict[str, dict[str, Any]]:
    done = stack.cli("status", "--json")
    report = done.stdout[: done.stdout.rindex("}") + 1]
    return {row["instance"]: row for row in json.loads(report)["services"]}


def test_up_runs_main_two_workers_postgres_and_redis_each_with_a_status_row(queue_stack: Stack) -> None:
    status = rows(queue_stack)
    assert set(status) == {"postgres", "redis", "n8n", *WORKERS, "bridge"}
    assert all(row["healthy"] and row["state"] == "RUNNING" for row in status.values()), status
    base = queue_stack.settings.n8nctl_worker_base_port
    assert [status[w]["service"] for w in WORKERS] == ["n8n-worker", "n8n-worker"]
    assert [status[w]["url"] for w in WORKERS] == [
        f"http://127.0.0.1:{base}/healthz/readiness",
        f"http://127.0.0.1:{base + 2}/healthz/readiness",
    ]
    assert "initialised PostgreSQL" in queue_stack.up_output
    assert "migrated the bridge's job store" in queue_stack.up_output
    again = queue_stack.cli("up")
    assert again.returncode == 0, again.stderr
    assert "already up; nothing changed" in again.stdout


def test_pilot_jobs_run_end_to_end_on_the_workers(queue_stack: Stack, receiver: Receiver) -> None:
    jobs = [submit(queue_stack, receiver, "tiktok_live_helper", COMMENTS) for _ in range(4)]
    jobs += [submit(queue_stack, receiver, "content_pipeline", CAMPAIGN) for _ in range(4)]
    results = [callback_of(receiver, job_id) for job_id in jobs]
    assert [r["status"] for r in results] == ["success"] * 8, results
    main = log(queue_stack, "n8n")
    for result in results:
        execution_id = result["execution_id"]
        assert re.search(rf"Enqueued execution {execution_id} \(job \d+\)", main), execution_id
        where = wait_until(
            lambda e=execution_id: ran_on(queue_stack, e), 10, f"execution {execution_id} in a log"
        )
        assert len(where) == 1 and where[0] in WORKERS, where
    print(
        "executions per worker:",
        {w: sum(ran_on(queue_stack, r["execution_id"]) == [w] for r in results) for w in WORKERS},
    )
    shown = queue_stack.cli("logs", "n8n-worker", "-n", "2000")
    assert shown.returncode == 0, shown.stderr
    assert all(f"==> {w}.log <==" in shown.stdout for w in WORKERS)
    assert all(f"Worker started execution {r['execution_id']} " in shown.stdout for r in results)


def test_a_stopped_worker_leaves_the_executions_to_the_other(queue_stack: Stack, receiver: Receiver) -> None:
    assert "stopped" in queue_stack.supervisorctl("stop", WORKERS[0])
    try:
        job_id = submit(queue_stack, receiver, "tiktok_live_helper", COMMENTS)
        result = callback_of(receiver, job_id)
        assert result["status"] == "success"
        assert ran_on(queue_stack, result["execution_id"]) == [WORKERS[1]]
        assert rows(queue_stack)[WORKERS[0]]["healthy"] is False
    finally:
        assert "started" in queue_stack.supervisorctl("start", WORKERS[0])
    wait_until(lambda: rows(queue_stack)[WORKERS[0]]["healthy"], 120, "the worker healthy again")


def test_every_n8n_process_decrypts_with_the_one_key_from_env(queue_stack: Stack) -> None:
    key = queue_stack.settings.n8n_encryption_key.get_secret_value()
    assert key
    for program in ("n8n", *WORKERS):
        pid = int(queue_stack.supervisorctl("pid", program).strip())
        environ = dict(
            item.split("=", 1) for item in Path(f"/proc/{pid}/environ").read_text().split("\0") if "=" in item
        )
        assert environ["N8N_ENCRYPTION_KEY"] == key, program
        assert environ["EXECUTIONS_MODE"] == "queue", program


def test_kill_all_stops_main_and_every_worker_and_revive_starts_them(
    queue_stack: Stack, receiver: Receiver
) -> None:
    killed = queue_stack.cli("kill", "--all", "--reason", "e2e: queue mode", timeout=300)
    try:
        assert killed.returncode == 0, killed.stdout + killed.stderr
        status = rows(queue_stack)
        assert {name: status[name]["state"] for name in ("n8n", *WORKERS)} == dict.fromkeys(
            ("n8n", *WORKERS), "STOPPED"
        )
        assert all(status[name]["state"] == "RUNNING" for name in ("postgres", "redis", "bridge"))
    finally:
        revived = queue_stack.cli("revive", "--all", timeout=300)
    assert revived.returncode == 0, revived.stdout + revived.stderr
    started = time.monotonic()
    wait_until(
        lambda: all(row["healthy"] for row in rows(queue_stack).values()), 120, "every service healthy"
    )
    print(f"revive --all: workers healthy {time.monotonic() - started:.1f} s after revive returned")
    job_id = submit(queue_stack, receiver, "content_pipeline", CAMPAIGN)
    result = callback_of(receiver, job_id)
    assert result["status"] == "success"
    assert ran_on(queue_stack, result["execution_id"])[0] in WORKERS


def test_burst_throughput(queue_stack: Stack, receiver: Receiver) -> None:
    """A measurement more than a check: jobs per second through bridge, main and two workers, with
    the bridge's cap for the workflow at the workers' capacity (20)."""
    count = 60
    started = time.monotonic()
    jobs = [submit(queue_stack, receiver, "tiktok_live_helper", COMMENTS) for _ in range(count)]
    wait_until(
        lambda: len({body["job_id"] for _, body in receiver.calls} & set(jobs)) == count,
        240,
        "every callback",
    )
    elapsed = time.monotonic() - started
    assert {body["status"] for _, body in receiver.calls} == {"success"}
    print(
        f"queue mode, 2 workers: {count} jobs, submit to callback, in {elapsed:.1f} s "
        f"({count / elapsed:.1f} jobs/s)"
    )


def test_no_secret_in_rendered_config_logs_acl_or_command_lines(queue_stack: Stack) -> None:
    state = queue_stack.settings.state_dir
    places = {path.name: path.read_text(errors="replace") for path in sorted((state / "logs").glob("*.log*"))}
    conf = queue_stack.settings.stack_dir("e2eq") / "supervisord.conf"
    places["supervisord.conf"] = conf.read_text()
    places["users.acl"] = (state / "redis" / "users.acl").read_text()
    supervisord = int((state / "run" / "supervisord.pid").read_text())
    for pid in _descendants(supervisord):
        places[f"command line of {pid}"] = Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")
    assert {"postgres.log", "redis.log", "n8n-worker-1.log", "n8n-worker-2.log"} <= set(places)
    secrets = secret_values(queue_stack.settings)
    assert {"postgres_password", "redis_password", "n8n_encryption_key"} <= set(secrets)
    leaks = [
        (name, place) for name, value in secrets.items() for place, text in places.items() if value in text
    ]
    assert leaks == []


def _descendants(pid: int) -> list[int]:
    children = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children += [int(c) for c in (task / "children").read_text().split()]
    return [pid for child in children for pid in (child, *_descendants(child))]
