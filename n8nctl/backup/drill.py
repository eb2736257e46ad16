"""`n8nctl backups verify`: the restore drill. A backup is restorable when, in a throwaway folder, with
the n8n version its manifest names: its checksums hold, its files decrypt, every credential decrypts
with the key in its user folder, its workflows are the ones its manifest lists (ids, normal form,
active state), its bridge store loads with the rows it counted, and n8n starts on it and reports
ready. Nothing it does touches the running stack, and no secret is written out.

Before n8n starts, the drill copy's workflows are unpublished (n8n's own CLI, on the copy only): a
scheduled workflow must not run twice because a backup was checked.
"""

from __future__ import annotations

import shutil
import socket
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from hashlib import sha256
from pathlib import Path
from typing import Any

from n8nctl.backup.catalog import DrillRecord, Opened, open_backup, record_drill
from n8nctl.backup.steps import Progress, step
from n8nctl.errors import N8nctlError
from n8nctl.settings import Settings

READY_TIMEOUT = 180.0


@dataclass
class DrillReport:
    backup_id: str
    restorable: bool
    duration_seconds: float
    checks: list[dict[str, Any]] = field(default_factory=list)  # {check, ok, detail}
    failure: N8nctlError | None = None


def verify(settings: Settings, ref: str, *, progress: Progress = lambda name: None) -> DrillReport:
    clock = time.monotonic()
    report = DrillReport(backup_id=ref, restorable=False, duration_seconds=0.0)
    with tempfile.TemporaryDirectory(prefix="n8nctl-drill-") as scratch:
        work = Path(scratch)
        try:
            with step("verify", "checksums and decryption", progress):
                opened = open_backup(settings, ref, work)
            report.backup_id = opened.manifest.id
            report.checks.append(_ok("checksums and decryption", f"{len(opened.manifest.files)} file(s)"))
            _drill(settings, opened, work, report, progress)
            report.restorable = True
        except N8nctlError as exc:
            report.failure = exc
            report.checks.append({"check": getattr(exc, "step", "drill"), "ok": False, "detail": exc.line()})
        report.duration_seconds = round(time.monotonic() - clock, 1)
        if report.checks[0]["ok"]:  # the backup was found and read: its record goes beside it
            record = DrillRecord(
                restorable=report.restorable,
                at=datetime.now(UTC),
                duration_seconds=report.duration_seconds,
                checks=report.checks,
            )
            record_drill(settings, opened.source, record)
    return report


def _ok(check: str, detail: str) -> dict[str, Any]:
    return {"check": check, "ok": True, "detail": detail}


def _drill(settings: Settings, opened: Opened, work: Path, report: DrillReport, progress: Progress) -> None:
    from n8nctl.backup.archive import unpack
    from n8nctl.runtimes.n8n_npm import DATA_FOLDER, decrypted_credentials, json_array, n8n_cli

    manifest = opened.manifest
    with step("verify", "n8n version", progress):
        if manifest.n8n_database != "sqlite":
            raise N8nctlError(
                f"backup {manifest.id} holds a PostgreSQL dump",
                why="the drill restores SQLite backups (native runtime) only, so far",
                fix="Check it by a restore into a scratch stack (docs/RUNBOOK.md).",
            )
        if manifest.n8n_version != settings.n8n_version:
            raise N8nctlError(
                f"backup {manifest.id} was taken with n8n {manifest.n8n_version}",
                why=f"this n8nctl runs n8n {settings.n8n_version}, and n8n's migrations are one-way",
                fix=f"Verify it with an n8nctl that pins n8n {manifest.n8n_version}.",
            )
    report.checks.append(_ok("n8n version", manifest.n8n_version))
    user_folder = work / "n8n"
    with step("verify", "user folder and database", progress):
        unpack(opened.path("n8n/user-folder.tar"), user_folder / DATA_FOLDER)
        shutil.copyfile(opened.path("n8n/database.sqlite"), user_folder / DATA_FOLDER / "database.sqlite")
    report.checks.append(_ok("user folder and database", manifest.n8n_migration))
    with step("verify", "credentials decrypt", progress):
        count = decrypted_credentials(settings, user_folder)
        if count != manifest.credentials:
            raise N8nctlError(
                f"{count} credential(s) decrypt, the manifest counts {manifest.credentials}",
                fix="Use another backup.",
            )
    report.checks.append(_ok("credentials decrypt", f"{count} credential(s), with the backup's own key"))
    with step("verify", "workflows match the manifest", progress):
        exported = n8n_cli(
            settings,
            user_folder,
            "export:workflow",
            "--all",
            "--output=/dev/stdout",
            what="n8n could not export the backup's workflows",
            fix="Use another backup.",
        )
        _compare_workflows(json_array(exported), manifest.workflows)
    report.checks.append(_ok("workflows match the manifest", f"{len(manifest.workflows)} workflow(s)"))
    with step("verify", "bridge store loads", progress):
        from n8nctl.store import Store

        store = Store(f"sqlite:///{work / 'bridge.db'}")
        try:
            rows = store.load(opened.path("bridge/store.jsonl.gz"))
        finally:
            store.close()
        if rows != manifest.bridge_rows:
            raise N8nctlError(f"the bridge store loads {rows}, the manifest counts {manifest.bridge_rows}")
    report.checks.append(_ok("bridge store loads", ", ".join(f"{t} {n}" for t, n in rows.items())))
    with step("verify", "n8n starts and is ready", progress):
        n8n_cli(
            settings,
            user_folder,
            "unpublish:workflow",
            "--all",
            what="n8n could not unpublish the drill copy's workflows",
            fix="Use another backup.",
        )
        seconds = _serve_until_ready(settings, user_folder, work / "n8n.log")
    report.checks.append(_ok("n8n starts and is ready", f"ready after {seconds:.1f} s on 127.0.0.1"))


def _compare_workflows(exported: list[dict[str, Any]], expected: dict[str, Any]) -> None:
    from n8nctl.workflows import dumps

    found = {str(w["id"]): w for w in exported}
    if set(found) != set(expected):
        missing, extra = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
        raise N8nctlError(f"the backup's n8n holds other workflows: missing {missing}, not listed {extra}")
    for workflow_id, entry in expected.items():
        workflow = found[workflow_id]
        if sha256(dumps(workflow).encode()).hexdigest() != entry.sha256:
            raise N8nctlError(f"workflow {workflow_id} ({entry.name}) differs from its exported form")
        if bool(workflow.get("active")) != entry.active:
            raise N8nctlError(
                f"workflow {workflow_id} ({entry.name}) is not {'active' if entry.active else 'inactive'}"
            )


def _serve_until_ready(settings: Settings, user_folder: Path, log_file: Path) -> float:
    import httpx

    from n8nctl.adapters.process import background
    from n8nctl.runtimes.n8n_npm import ensure_n8n, n8n_command, user_folder_env
    from n8nctl.wait import until

    port, broker = _free_port(), _free_port()
    env = user_folder_env(user_folder, N8N_PORT=str(port), N8N_RUNNERS_BROKER_PORT=str(broker))
    command = [*n8n_command(ensure_n8n(settings, lambda message: None)), "start"]
    started = time.monotonic()

    def ready() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/healthz/readiness", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    with background(command, log_file=log_file, env=env):
        if not until(ready, READY_TIMEOUT, interval=0.5):
            tail = " | ".join(log_file.read_text(errors="replace").splitlines()[-3:])
            raise N8nctlError(
                f"n8n did not get ready on the backup within {READY_TIMEOUT:.0f} s", why=tail[-300:]
            )
        return time.monotonic() - started


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def as_json(report: DrillReport) -> dict[str, Any]:
    return {
        "backup": report.backup_id,
        "restorable": report.restorable,
        "duration_seconds": report.duration_seconds,
        "checks": report.checks,
    }
