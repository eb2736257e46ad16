"""`n8nctl backups verify`: the restore drill. A backup is restorable when, in a throwaway folder, with
the n8n version its manifest names: its checksums hold, its files decrypt, every credential decrypts
with the key in its user folder, its workflows are the ones its manifest lists (ids, normal form,
active state), its bridge store loads with the rows it counted, and n8n starts on it and reports
ready. Nothing it does touches the running stack, and no secret is written out.

Before n8n starts, the drill copy's workflows are unpublished (n8n's own CLI, on the copy only): a
scheduled workflow must not run twice because a backup was checked.
"""

from __future__ import annotations

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
    from n8nctl.runtimes import ActiveStack, N8nDump, create
    from n8nctl.runtimes.n8n_npm import json_array

    manifest = opened.manifest
    with step("verify", "n8n version", progress):
        if manifest.n8n_version != settings.n8n_version:
            raise N8nctlError(
                f"backup {manifest.id} was taken with n8n {manifest.n8n_version}",
                why=f"this n8nctl runs n8n {settings.n8n_version}, and n8n's migrations are one-way",
                fix=f"Verify it with an n8nctl that pins n8n {manifest.n8n_version}.",
            )
    report.checks.append(_ok("n8n version", manifest.n8n_version))
    # a throwaway stack of the runtime that took the backup: a user folder (native), or a compose
    # project of its own (compose); nothing of the running stack is used
    queue = manifest.runtime == "native" and manifest.n8n_database == "postgres"
    runtime = create(settings, ActiveStack(manifest.runtime, name="drill", queue=queue))
    with runtime.drill_copy(work / "stack") as copy:
        with step("verify", "restore into a scratch stack", progress):
            database = "database.sqlite" if manifest.n8n_database == "sqlite" else "database.pgdump"
            copy.stop_for_restore()
            copy.restore_n8n(
                N8nDump(
                    opened.path(f"n8n/{database}"), opened.path("n8n/user-folder.tar"), manifest.n8n_migration
                )
            )
        report.checks.append(_ok("restore into a scratch stack", f"{copy.name}, {manifest.n8n_migration}"))
        with step("verify", "credentials decrypt", progress):
            count = copy.decrypted_credentials()
            if count != manifest.credentials:
                raise N8nctlError(
                    f"{count} credential(s) decrypt, the manifest counts {manifest.credentials}",
                    fix="Use another backup.",
                )
        report.checks.append(_ok("credentials decrypt", f"{count} credential(s), with the backup's own key"))
        with step("verify", "workflows match the manifest", progress):
            exported = copy.n8n_cli(
                "export:workflow", "--all", "--output=/dev/stdout", what="n8n exported no workflows"
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
                raise N8nctlError(
                    f"the bridge store loads {rows}, the manifest counts {manifest.bridge_rows}"
                )
        report.checks.append(_ok("bridge store loads", ", ".join(f"{t} {n}" for t, n in rows.items())))
        with step("verify", "n8n starts and is ready", progress):
            copy.n8n_cli(
                "unpublish:workflow", "--all", what="n8n could not unpublish the drill copy's workflows"
            )
            seconds = copy.serve_n8n()
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


def as_json(report: DrillReport) -> dict[str, Any]:
    return {
        "backup": report.backup_id,
        "restorable": report.restorable,
        "duration_seconds": report.duration_seconds,
        "checks": report.checks,
    }
