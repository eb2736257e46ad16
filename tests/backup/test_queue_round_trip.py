"""Backup -> destroy -> restore of a native queue-mode stack (n8n main and a worker on the stack's own
PostgreSQL and Redis): n8n's database is dumped with pg_dump -Fc, never read as SQLite; the drill
restores it into a scratch PostgreSQL of its own; a restore on a host whose PostgreSQL data is gone
initialises a new one, and brings back the same workflows, executions and working credentials."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator

import pytest

from tests.backup.test_native_round_trip import TIKTOK, delivered, finished_executions, workflows
from tests.e2e.conftest import Stack, receiving, running_stack
from tests.e2e.test_n8n_e2e import submit
from tests.harness import free_port, free_ports

pytestmark = pytest.mark.n8n


@pytest.fixture(scope="module")
def queue_stack() -> Iterator[Stack]:
    with running_stack(
        "e2ebq",
        N8NCTL_QUEUE_MODE="true",
        N8NCTL_WORKERS="1",
        N8NCTL_WORKER_BASE_PORT=str(free_ports(2)),
        POSTGRES_PORT=str(free_port()),
        REDIS_PORT=str(free_port()),
    ) as stack:
        yield stack


def test_a_queue_mode_stack_backs_up_verifies_and_restores_on_postgresql(queue_stack: Stack) -> None:
    stack = queue_stack
    with receiving(stack) as receiver:
        first = submit(stack, receiver, "tiktok_live_helper", TIKTOK)
        assert delivered(receiver, first)["status"] == "success"
    before = (workflows(stack), finished_executions(stack))
    assert before[1], "an execution to find again"
    state = stack.settings.state_dir
    assert not (state / "n8n" / ".n8n" / "database.sqlite").exists()

    started = time.monotonic()
    done = stack.cli("backup", "--json", timeout=300)
    backup_seconds = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    line = json.loads(done.stdout)
    manifest = json.loads((stack.project / "backups" / line["id"] / "manifest.json").read_text())
    assert manifest["n8n_database"] == "postgres" and manifest["credentials"] == 2
    assert manifest["n8n_migration"] not in ("", "none"), "read from PostgreSQL's migrations table"
    stored = {f["path"] for f in manifest["files"]}
    assert "n8n/database.pgdump" in stored and "n8n/database.sqlite" not in stored
    dump = stack.project / "backups" / line["id"] / "n8n" / "database.pgdump"
    assert dump.read_bytes()[:5] == b"PGDMP", "pg_dump's custom format"
    assert not (state / "n8n" / ".n8n" / "database.sqlite").exists(), "no n8n command fell back to SQLite"

    started = time.monotonic()
    drill = stack.cli("backups", "verify", line["id"], timeout=600)
    drill_seconds = time.monotonic() - started
    assert drill.returncode == 0, drill.stdout + drill.stderr
    assert f"restorable: yes (backup {line['id']}" in drill.stdout and "2 credential(s)" in drill.stdout
    assert stack.cli("status").returncode == 0, "the drill never touches the running stack"

    assert stack.cli("down").returncode == 0
    for lost in ("n8n", "postgres"):
        shutil.rmtree(state / lost)
    started = time.monotonic()
    restored = stack.cli("restore", line["id"], timeout=900)
    restore_seconds = time.monotonic() - started
    assert restored.returncode == 0, f"{restored.stdout}\n{restored.stderr}\n{stack.logs()}"
    assert (state / "postgres" / "PG_VERSION").exists(), "a new PostgreSQL, initialised by the restore"
    assert workflows(stack) == before[0], "same ids, nodes and active state"
    after = finished_executions(stack)
    assert {i: after.get(i) for i in before[1]} == before[1], "the same executions"
    with receiving(stack) as receiver:
        job_id = submit(stack, receiver, "tiktok_live_helper", TIKTOK)
        assert delivered(receiver, job_id)["status"] == "success", "restored credentials work on the worker"
    print(
        f"queue mode: backup {backup_seconds:.1f} s ({line['size']} bytes), drill {drill_seconds:.1f} s,"
        f" restore onto a new PostgreSQL {restore_seconds:.1f} s"
    )
