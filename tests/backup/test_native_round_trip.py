"""Backup -> destroy -> restore on the native runtime with a real n8n: the same workflows (ids, nodes,
active state), credentials usable by a workflow run, the same executions and audit rows; the drill;
S3 (upload, list, verify, restore, prune); the failures a nightly cron meets; no secret anywhere."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import stat
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from n8nctl.store import Store
from n8nctl.store.schema import audit_events, jobs
from n8nctl.workflows import normalize
from tests.backup.conftest import BUCKET, SLOW_DEADLINE
from tests.backup.s3_server import SECRET_KEY, S3Server
from tests.e2e.conftest import Stack
from tests.e2e.test_n8n_e2e import submit
from tests.harness import Receiver, free_port, secret_values, wait_until

pytestmark = pytest.mark.n8n
MEASURED: dict[str, Any] = {}  # printed at the end: the numbers the RUNBOOK quotes


@dataclass
class Taken:
    id: str
    line: dict[str, Any]
    path: Path
    workflows: dict[str, Any]
    executions: dict[str, tuple[str, str]]
    audit: dict[int, tuple[Any, ...]]
    job_count: int
    slow_job: str


def api(stack: Stack, path: str) -> Any:
    response = httpx.get(
        f"{stack.settings.n8n_url}/api/v1/{path}",
        headers={"X-N8N-API-KEY": stack.settings.n8n_api_key_value()},
        timeout=10,
    )
    return response.raise_for_status().json()


def workflows(stack: Stack) -> dict[str, Any]:
    return {
        w["id"]: {"active": w["active"], "form": normalize(api(stack, f"workflows/{w['id']}"))}
        for w in api(stack, "workflows")["data"]
    }


def finished_executions(stack: Stack) -> dict[str, tuple[str, str]]:
    page = api(stack, "executions?limit=250")["data"]
    return {e["id"]: (e["status"], e["workflowId"]) for e in page if e["status"] in ("success", "error")}


def audit_rows(stack: Stack) -> dict[int, tuple[Any, ...]]:
    store = Store(stack.settings.database_url)
    try:
        with store._read() as conn:
            return {
                row[0]: tuple(row)
                for row in conn.execute(sa.select(audit_events).order_by(audit_events.c.id))
            }
    finally:
        store.close()


def job_count(stack: Stack) -> int:
    store = Store(stack.settings.database_url)
    try:
        with store._read() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(jobs)).scalar_one())
    finally:
        store.close()


def delivered(receiver: Receiver, job_id: str, timeout: float = 90) -> dict[str, Any]:
    return wait_until(
        lambda: next((body for _, body in receiver.calls if body["job_id"] == job_id), None),
        timeout,
        f"the callback of {job_id}",
    )


TIKTOK = {"stream_id": "s1", "comments": [{"user": "ana", "text": "hello, this is great"}]}


def secrets_of(stack: Stack, backup_key: str) -> list[str]:
    """The stack's secrets in every form (tests/harness.py), the backup key and S3's secret key among
    them (settings of this stack), and the encryption key n8n keeps in its user folder."""
    config = stack.settings.state_dir / "n8n" / ".n8n" / "config"
    values = [*secret_values(stack.settings).values(), json.loads(config.read_text())["encryptionKey"]]
    assert backup_key in values and SECRET_KEY in values
    return [v for v in values if v]


def assert_no_secret(texts: list[str], secrets: list[str]) -> None:
    for text in texts:
        for secret in secrets:
            assert secret not in text, "a secret leaked into command output or a manifest"


@pytest.fixture(scope="module")
def taken(native_stack: Stack, native_receiver: Receiver, backup_key: str) -> Taken:
    stack, receiver = native_stack, native_receiver
    for _ in range(2):
        delivered(receiver, submit(stack, receiver, "tiktok_live_helper", TIKTOK))
    # in flight during the backup; after the restore it runs again well within its deadline: the drill
    # (~30 s) and the restore (~30 s) come first, and n8n's start (webhooks 404 until it has activated
    # them): 120 s ran out on a loaded machine (the job ended TIMEOUT before it ran again)
    slow = submit(stack, receiver, "slow_echo", {"seconds": 15}, timeout_seconds=SLOW_DEADLINE)
    wait_until(lambda: stack.client.status(slow)["status"] == "running", 60, "the slow job to run")
    before = (workflows(stack), finished_executions(stack), audit_rows(stack), job_count(stack))
    started = time.monotonic()
    done = stack.cli("backup", "--json")
    MEASURED["backup_seconds"] = round(time.monotonic() - started, 1)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", "--json keeps stderr for errors"
    assert len(done.stdout.splitlines()) == 1
    line = json.loads(done.stdout)
    assert set(line) == {"id", "size", "duration_seconds", "path", "uploaded", "encrypted"}
    assert (line["encrypted"], line["uploaded"]) == (True, None)
    assert (workflows(stack), finished_executions(stack), audit_rows(stack)) == before[:3], "nothing moved"
    MEASURED["backup_bytes"] = line["size"]
    assert_no_secret([done.stdout, done.stderr], secrets_of(stack, backup_key))
    return Taken(line["id"], line, Path(line["path"]), *before, slow)


def test_a_backup_holds_everything_privately_and_no_secret_in_its_manifest(
    native_stack: Stack, taken: Taken, backup_key: str
) -> None:
    manifest_text = (taken.path / "manifest.json").read_text()
    manifest = json.loads(manifest_text)
    assert taken.path.parent == native_stack.project / "backups" and taken.path.name == taken.id
    assert not [p for p in taken.path.parent.iterdir() if p.name.startswith(".")], "no partial left"
    stored = {f["path"] for f in manifest["files"]}
    assert {"n8n/database.sqlite.age", "n8n/user-folder.tar.age", "bridge/store.jsonl.gz.age"} <= stored
    assert {f"workflows/{i}.json.age" for i in taken.workflows} <= stored
    assert {"n8nctl/n8n-api-key.age", "n8nctl/n8n-bootstrap.json.age"} <= stored
    for path in [taken.path, *taken.path.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), f"{path} is {oct(mode)}"
    for entry in manifest["files"]:
        data = (taken.path / entry["path"]).read_bytes()
        assert data.startswith(b"age-encryption.org/v1"), f"{entry['path']} is not encrypted"
        assert hashlib.sha256(data).hexdigest() == entry["sha256"] and len(data) == entry["size"]
    assert manifest["n8n_version"] == "2.40.7" and manifest["n8n_database"] == "sqlite"
    assert manifest["n8n_migration"] and manifest["bridge_schema"] == "0002"
    assert manifest["credentials"] == 2 and set(manifest["workflows"]) == set(taken.workflows)
    assert manifest["bridge_rows"]["jobs"] == taken.job_count
    assert manifest["bridge_rows"]["audit_events"] == len(taken.audit)
    assert set(manifest["key_fingerprint"]) == {"salt", "hmac_sha256"}
    assert manifest["duration_seconds"] > 0 and manifest["started_at"] < manifest["finished_at"]
    assert_no_secret([manifest_text], secrets_of(native_stack, backup_key))


def test_verify_runs_a_restore_drill_and_records_it(native_stack: Stack, taken: Taken) -> None:
    started = time.monotonic()
    done = native_stack.cli("backups", "verify", taken.id, timeout=600)
    MEASURED["drill_seconds"] = round(time.monotonic() - started, 1)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"restorable: yes (backup {taken.id}" in done.stdout
    for check in (
        "checksums and decryption",
        "credentials decrypt",
        "workflows match the manifest",
        "bridge store loads",
        "n8n starts and is ready",
    ):
        assert f"[ok  ] {check}" in done.stdout, done.stdout
    assert "2 credential(s)" in done.stdout
    listed = {b["id"]: b for b in native_stack.cli_json("backups", "list")}
    assert listed[taken.id]["verified"] == "restorable" and listed[taken.id]["where"] == "local"
    assert listed[taken.id]["n8n_version"] == "2.40.7" and listed[taken.id]["encrypted"] is True
    assert native_stack.cli("status").returncode == 0, "the drill never touches the running stack"


@pytest.fixture(scope="module")
def restored(native_stack: Stack, taken: Taken) -> subprocess.CompletedProcess[str]:
    stack = native_stack
    assert stack.cli("down").returncode == 0
    state = stack.settings.state_dir
    shutil.rmtree(state / "n8n")
    for name in (
        "bridge.db",
        "bridge.db-wal",
        "bridge.db-shm",
        "n8n-api-key",
        "n8n-bootstrap.json",
        "n8n-workflows.json",
    ):
        (state / name).unlink(missing_ok=True)
    plan = stack.cli("restore", taken.id, "--dry-run")
    assert plan.returncode == 0, plan.stderr
    assert "1. stop the stack" in plan.stdout and "refused" not in plan.stdout
    assert not (state / "n8n").exists(), "a dry run changes nothing"
    started = time.monotonic()
    done = stack.cli("restore", taken.id, "--actor", "ops-drill", timeout=900)
    MEASURED["restore_seconds"] = round(time.monotonic() - started, 1)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{stack.logs()}"
    return done


def test_restore_brings_back_workflows_executions_and_audit(
    native_stack: Stack, taken: Taken, restored: subprocess.CompletedProcess[str]
) -> None:
    stack = native_stack
    assert f"restored {taken.id}" in restored.stdout and "1 job(s) requeued" in restored.stdout
    assert workflows(stack) == taken.workflows, "same ids, nodes and active state"
    after = finished_executions(stack)
    assert {i: after.get(i) for i in taken.executions} == taken.executions, "the same executions"
    audit = audit_rows(stack)
    assert {i: audit.get(i) for i in taken.audit} == taken.audit, "every audit row, unchanged"
    assert job_count(stack) == taken.job_count


@pytest.mark.timeout(300)  # its own bounds are the waits below (120 s + 60 s), not pytest's default 180 s
def test_the_restore_is_audited_and_in_flight_jobs_run_again(
    native_stack: Stack, native_receiver: Receiver, taken: Taken, restored: subprocess.CompletedProcess[str]
) -> None:
    stack = native_stack
    columns = [c.name for c in audit_events.c]
    new = [
        dict(zip(columns, row, strict=True)) for i, row in audit_rows(stack).items() if i not in taken.audit
    ]
    operator = {row["action"]: row for row in new if row["source"] == "operator" and row["job_id"] is None}
    assert {"restored", "restore_completed"} <= set(operator), new
    restored_event = operator["restored"]
    assert restored_event["actor"] == "ops-drill" and restored_event["workflow_key"] == "*"
    assert restored_event["details"]["backup_id"] == taken.id
    assert restored_event["details"]["requeued_jobs"] == 1
    events = stack.audit(taken.slow_job)
    requeued = next(e for e in events if e["action"] == "requeued_after_restore")
    assert (
        requeued["details"]["previous_status"] == "running" and requeued["details"]["backup_id"] == taken.id
    )

    # the job may have finished before the disaster (its first callback); the restore brought it back
    # to "running", so it is dispatched and runs again, and FlowBiz hears of it again
    def after_restore() -> list[str]:
        actions = [e["action"] for e in stack.audit(taken.slow_job)]
        return actions[actions.index("requeued_after_restore") :]

    actions = wait_until(lambda: (a := after_restore()) and "success" in a and a, 120, "the job to run again")
    assert "dispatched" in actions, actions  # after dispatch_failed while n8n was still starting, maybe

    def second_callback() -> dict[str, Any] | None:
        for _, body in native_receiver.calls:
            if body["job_id"] == taken.slow_job and "requeued_after_restore" in {
                e["action"] for e in body["audit"]
            }:
                return body
        return None

    result = wait_until(second_callback, 60, "the callback of the run after the restore")
    assert result["status"] == "success" and result["outputs"]["echo"] == {"seconds": 15}
    assert result["outputs"]["waited_ms"] >= 15000, "a whole new run"


def test_restored_credentials_work_in_a_workflow_run(
    native_stack: Stack, native_receiver: Receiver, restored: subprocess.CompletedProcess[str]
) -> None:
    """The webhook's header auth and the Crypto node's signing key are both restored credentials."""
    job_id = submit(native_stack, native_receiver, "tiktok_live_helper", TIKTOK)
    assert delivered(native_receiver, job_id)["status"] == "success"
    assert not native_receiver.rejected, "the callback verified with the restored signing credential"


def test_restore_refuses_a_backup_whose_key_is_not_the_configured_one(
    native_stack: Stack, taken: Taken, restored: subprocess.CompletedProcess[str]
) -> None:
    done = native_stack.cli(
        "restore", taken.id, env={"N8N_ENCRYPTION_KEY": "another-key-" + uuid.uuid4().hex}
    )
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert (
        "encryption key is not the N8N_ENCRYPTION_KEY configured here" in done.stderr
        and "--force" in done.stderr
    )
    assert native_stack.cli("status").returncode == 0, "nothing was stopped"


def test_s3_upload_list_verify_and_restore(
    native_stack: Stack, s3_server: S3Server, restored: subprocess.CompletedProcess[str], backup_key: str
) -> None:
    stack = native_stack
    done = stack.cli("backup", "--upload", "--json", timeout=300)
    assert done.returncode == 0, done.stderr
    line = json.loads(done.stdout)
    url = f"s3://{BUCKET}/flowbiz/n8nctl/{line['id']}"
    assert line["uploaded"] == url + "/"
    keys = s3_server.keys(BUCKET, f"flowbiz/n8nctl/{line['id']}/")
    assert f"flowbiz/n8nctl/{line['id']}/manifest.json" in keys and len(keys) > 8
    head = s3_server.client().head_object(
        Bucket=BUCKET, Key=f"flowbiz/n8nctl/{line['id']}/n8n/database.sqlite.age"
    )
    assert head["ServerSideEncryption"] == "AES256"
    listed = [b for b in stack.cli_json("backups", "list") if b["id"] == line["id"]]
    assert {b["where"] for b in listed} == {"local", "s3"}
    verify = stack.cli("backups", "verify", url, timeout=600)
    assert verify.returncode == 0 and "restorable: yes" in verify.stdout, verify.stdout + verify.stderr
    assert f"flowbiz/n8nctl/{line['id']}/drill.json" in s3_server.keys(BUCKET, "flowbiz/")
    shutil.rmtree(line["path"])  # only the S3 copy is left
    started = time.monotonic()
    again = stack.cli("restore", url, timeout=900)
    MEASURED["restore_from_s3_seconds"] = round(time.monotonic() - started, 1)
    assert again.returncode == 0, again.stdout + again.stderr
    assert stack.cli("status").returncode == 0
    assert list(stack.settings.state_dir.glob("n8n.before-restore-*")), "the replaced n8n folder is kept"
    assert_no_secret(
        [done.stdout, done.stderr, verify.stdout, verify.stderr, again.stdout, again.stderr],
        secrets_of(stack, backup_key),
    )


def test_prune_keeps_the_policy_locally_and_on_s3(
    native_stack: Stack, s3_server: S3Server, taken: Taken, restored: subprocess.CompletedProcess[str]
) -> None:
    """Copies of the backup dated 1, 2, 10 and 40 days back: keep one daily backup -> only the newest."""
    stack = native_stack
    source = json.loads((taken.path / "manifest.json").read_text())
    old_ids = []
    for days in (1, 2, 10, 40):
        moment = time.gmtime(time.time() - days * 86400)
        backup_id = time.strftime("%Y%m%dT%H%M%SZ", moment)
        copy = taken.path.parent / backup_id
        shutil.copytree(taken.path, copy)
        manifest = {**source, "id": backup_id, "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", moment)}
        (copy / "manifest.json").write_text(json.dumps(manifest))
        for path in sorted(copy.rglob("*")):
            if path.is_file():
                key = f"flowbiz/n8nctl/{backup_id}/{path.relative_to(copy).as_posix()}"
                s3_server.client().upload_file(str(path), BUCKET, key)
        old_ids.append(backup_id)
    dry = stack.cli(
        "backups", "prune", "--keep-daily", "1", "--keep-weekly", "0", "--keep-monthly", "0", "--dry-run"
    )
    assert dry.returncode == 0, dry.stderr
    for backup_id in old_ids:
        assert (
            f"would delete local {backup_id}" in dry.stdout and f"would delete s3 {backup_id}" in dry.stdout
        )
    assert all((taken.path.parent / i).exists() for i in old_ids), "a dry run deletes nothing"
    done = stack.cli_json(
        "backups", "prune", "--keep-daily", "1", "--keep-weekly", "0", "--keep-monthly", "0"
    )
    assert sorted(done["deleted"]) == sorted([f"local {i}" for i in old_ids] + [f"s3 {i}" for i in old_ids])
    left = {b["id"] for b in stack.cli_json("backups", "list")}
    assert not left & set(old_ids) and len(done["kept"]) >= 1
    assert not any(s3_server.keys(BUCKET, f"flowbiz/n8nctl/{i}/") for i in old_ids)


def test_prune_deletes_old_executions_through_the_api(
    native_stack: Stack, restored: subprocess.CompletedProcess[str]
) -> None:
    from n8nctl.backup.prune import FINISHED

    stack = native_stack

    def finished() -> int:
        return sum(e["status"] in FINISHED for e in api(stack, "executions?limit=250")["data"])

    count = finished()
    assert count >= 3
    dry = json.loads(ok(stack.cli("prune", "--dry-run", "--json")).stdout)
    assert (dry["dry_run"], dry["executions"]) == (True, 0), "none is 336 hours old"
    everything = {"N8NCTL_PRUNE_EXECUTIONS_HOURS": "0"}  # every finished execution is old
    dry = json.loads(ok(stack.cli("prune", "--dry-run", "--json", env=everything)).stdout)
    assert dry["executions"] == count and finished() == count
    started = time.monotonic()
    report = json.loads(ok(stack.cli("prune", "--json", env=everything)).stdout)
    MEASURED["prune_executions"] = {"count": count, "seconds": round(time.monotonic() - started, 2)}
    assert report["executions"] == count and finished() == 0
    assert set(report["seconds"]) == {"n8n executions", "audit trail", "backups", "images"}


def ok(done: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert done.returncode == 0, done.stderr
    return done


def test_failures_exit_non_zero_name_the_step_and_leave_nothing(
    native_stack: Stack,
    taken: Taken,
    restored: subprocess.CompletedProcess[str],
    backup_key: str,
    tmp_path: Path,
) -> None:
    stack = native_stack
    backups = stack.project / "backups"
    before = sorted(p.name for p in backups.iterdir())

    def fails(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
        done = stack.cli(*args, env=env, timeout=600)
        assert done.returncode != 0, done.stdout
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert_no_secret([done.stdout, done.stderr], secrets_of(stack, backup_key))
        return done

    closed = f"http://127.0.0.1:{free_port()}"
    unreachable = fails({"N8NCTL_BACKUP_S3_ENDPOINT_URL": closed}, "backup", "--upload", "--quiet")
    assert unreachable.returncode == 5 and 'backup failed at step "upload"' in unreachable.stderr
    assert sorted(p.name for p in backups.iterdir()) == before, "nothing left that looks like a backup"

    full = tmp_path / "full"
    full.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(full)], check=True)
    try:
        disk = fails({}, "backup", "--dest", str(full))
        assert disk.returncode == 1 and 'backup failed at step "dump n8n"' in disk.stderr, disk.stderr
        assert "disk is full" in disk.stderr or "No space left on device" in disk.stderr
        assert list(full.iterdir()) == [], "the partial folder is gone"
    finally:
        subprocess.run(["umount", str(full)], check=True)

    from pyrage import x25519

    wrong = fails(
        {"N8NCTL_BACKUP_ENCRYPTION_KEY": str(x25519.Identity.generate())}, "backups", "verify", taken.id
    )
    assert wrong.returncode == 7 and "not the key it was encrypted with" in wrong.stderr
    assert "restorable: NO" in wrong.stdout

    damaged = backups / "20000101T000000Z"
    shutil.copytree(taken.path, damaged)
    database = damaged / "n8n" / "database.sqlite.age"
    data = bytearray(database.read_bytes())
    data[len(data) // 2] ^= 0x01
    database.write_bytes(bytes(data))
    corrupt = fails({}, "backups", "verify", damaged.name)
    assert corrupt.returncode == 7 and "n8n/database.sqlite.age in backup" in corrupt.stderr
    assert "does not match its checksum" in corrupt.stderr
    refused = fails({}, "restore", str(damaged))
    assert refused.returncode == 7 and 'restore failed at step "open backup"' in refused.stderr
    assert stack.cli("status").returncode == 0, "a refused restore stops nothing"
    shutil.rmtree(damaged)

    lock = os.open(stack.settings.state_dir / "backup.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        busy = fails({}, "backup")
        assert busy.returncode == 8 and "cannot back up now" in busy.stderr
    finally:
        os.close(lock)


def test_report_measurements(taken: Taken, restored: subprocess.CompletedProcess[str]) -> None:
    print(f"\nMEASURED {json.dumps(MEASURED)}")
    assert MEASURED["backup_seconds"] > 0
