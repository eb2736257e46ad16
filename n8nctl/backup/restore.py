"""`n8nctl restore BACKUP`: the backup checked and decrypted first, refused when it does not fit (another
n8n version, another encryption key, another database kind), then: the stack stopped, n8n's user
folder and database, n8nctl's state and the bridge's store put back, the jobs that were in flight
requeued or failed, the credentials proven to decrypt, the stack started and its workflows checked.
The restore is audited in the restored store (`restored`, then `restore_completed`)."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from n8nctl.backup.catalog import Opened, open_backup
from n8nctl.backup.create import STATE_FILES
from n8nctl.backup.manifest import Manifest
from n8nctl.backup.steps import Progress, StepError, exclusive, step
from n8nctl.envfile import write_private
from n8nctl.errors import ConfigError, N8nctlError
from n8nctl.runtimes import N8nDump, Runtime
from n8nctl.settings import Settings


@dataclass
class RestoreReport:
    backup_id: str
    source: str
    refusals: list[str]  # why it would be refused without --force
    steps: list[str]  # what it does (the plan), or did
    dry_run: bool
    requeued: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    duration_seconds: float = 0.0


PLAN = (
    "stop the stack",
    "restore n8n's user folder and database",
    "restore n8nctl state",
    "restore the bridge store",
    "check credentials decrypt",
    "start the stack",
    "check workflows",
)


def refusals(settings: Settings, runtime: Runtime, opened: Opened) -> list[str]:
    from n8nctl.store.migrations import known_revisions

    manifest, found = opened.manifest, []
    if manifest.n8n_database != runtime.n8n_database:
        found.append(
            f"it holds a {manifest.n8n_database} database and the {runtime.name} runtime runs n8n on "
            f"{runtime.n8n_database}"
        )
    if manifest.n8n_version != settings.n8n_version:
        found.append(
            f"it was taken with n8n {manifest.n8n_version}, and N8N_VERSION is {settings.n8n_version}"
        )
    configured = settings.n8n_encryption_key.get_secret_value() or runtime.encryption_key()
    if configured and not manifest.key_fingerprint.matches(configured):
        found.append("its encryption key is not the N8N_ENCRYPTION_KEY configured here")
    if manifest.bridge_schema not in known_revisions():
        found.append(f"its bridge schema revision {manifest.bridge_schema} is unknown to this n8nctl")
    return found


def runtime_for(settings: Settings, manifest: Manifest) -> Runtime:
    """The stack `up` recorded here; on a host where none was (disaster recovery), the one the backup
    was taken of: its runtime, stack name and kind."""
    from n8nctl.runtimes import ActiveStack, active, create

    if (settings.state_dir / "stack.json").exists():
        return create(settings, active(settings))
    queue = manifest.runtime == "native" and manifest.n8n_database == "postgres"
    stack = ActiveStack(
        manifest.runtime, manifest.stack, prod=manifest.prod, workers=settings.n8nctl_workers, queue=queue
    )
    return create(settings, stack)


def restore(
    settings: Settings,
    ref: str,
    *,
    dry_run: bool,
    force: bool,
    actor: str,
    progress: Progress = lambda name: None,
) -> RestoreReport:
    clock = time.monotonic()
    with (
        exclusive(settings.state_dir, "restore"),
        tempfile.TemporaryDirectory(prefix=".restore-", dir=settings.state_dir) as scratch,
    ):
        with step("restore", "open backup", progress):
            opened = open_backup(settings, ref, Path(scratch))
        manifest = opened.manifest
        runtime = runtime_for(settings, manifest)
        report = RestoreReport(
            manifest.id, opened.source, refusals(settings, runtime, opened), list(PLAN), dry_run
        )
        if dry_run:
            return report
        hard = [r for r in report.refusals if "database and the" in r]
        if report.refusals and (hard or not force):
            raise ConfigError(
                f"restore of {manifest.id} refused",
                why="; ".join(report.refusals),
                fix="Restore a backup that fits this stack"
                + ("." if hard else ", or pass --force if you mean it (n8n may then refuse to start)."),
            )
        _apply(settings, runtime, opened, report, actor, progress)
    report.duration_seconds = round(time.monotonic() - clock, 1)
    return report


def _apply(
    settings: Settings,
    runtime: Runtime,
    opened: Opened,
    report: RestoreReport,
    actor: str,
    progress: Progress,
) -> None:
    from n8nctl.store import Store

    manifest = opened.manifest
    with step("restore", "stop the stack", progress):
        runtime.stop_for_restore()
    try:
        with step("restore", "restore n8n's user folder and database", progress):
            database = "database.sqlite" if manifest.n8n_database == "sqlite" else "database.pgdump"
            runtime.restore_n8n(
                N8nDump(
                    opened.path(f"n8n/{database}"), opened.path("n8n/user-folder.tar"), manifest.n8n_migration
                )
            )
        with step("restore", "restore n8nctl state", progress):
            for name in STATE_FILES:
                if (source := opened.path(f"n8nctl/{name}")).exists():
                    write_private(settings.state_dir / name, source.read_text())
        with step("restore", "restore the bridge store", progress):
            store = Store(runtime.store_url())
            try:
                store.load(opened.path("bridge/store.jsonl.gz"))
                outcome = store.requeue_after_restore(manifest.id, actor=actor)
                report.requeued, report.failed = outcome.requeued, outcome.failed
                store.record_restore("restored", actor=actor, details=_details(report, manifest.started_at))
            finally:
                store.close()
        with step("restore", "check credentials decrypt", progress):
            count = runtime.decrypted_credentials()
            if count != manifest.credentials:
                raise N8nctlError(f"{count} credential(s) decrypt, the backup counted {manifest.credentials}")
        with step("restore", "start the stack", progress):
            from n8nctl.runtimes import remember

            remember(settings, runtime.stack)
            runtime.start(progress)
        with step("restore", "check workflows", progress):
            _check_workflows(settings, manifest.workflows)
    except StepError as exc:
        exc.fix = (
            exc.fix + " " if exc.fix else ""
        ) + "The stack may be stopped: run the restore again, or n8nctl up."
        raise
    store = Store(runtime.store_url())
    try:
        store.record_restore("restore_completed", actor=actor, details=_details(report, manifest.started_at))
    finally:
        store.close()


def _details(report: RestoreReport, taken_at: Any) -> dict[str, Any]:
    return {
        "backup_id": report.backup_id,
        "source": report.source,
        "taken_at": taken_at.isoformat(),
        "forced_over": report.refusals,
        "requeued_jobs": len(report.requeued),
        "failed_jobs": len(report.failed),
    }


def _check_workflows(settings: Settings, expected: dict[str, Any]) -> None:
    """Every workflow of the backup is in n8n again, active exactly when it was, and n8n routes the
    webhooks of the registry's active ones (as after `up`: a job dispatched before would get 404)."""
    from n8nctl.adapters.n8n_api import N8nApi
    from n8nctl.registry import load_registry
    from n8nctl.workflows import WorkflowSync

    api = N8nApi(settings.n8n_url, api_key=settings.n8n_api_key_value())
    try:
        found = {str(w["id"]): bool(w.get("active")) for w in api.workflows()}
        wrong = [f"{e.name} ({i})" for i, e in expected.items() if found.get(i) != e.active]
        if wrong:
            raise N8nctlError(
                f"workflows not as in the backup: {', '.join(wrong)}", fix="n8nctl workflows list."
            )
        sync = WorkflowSync(settings, load_registry(settings.registry_path), api)
        for key in sync.registry.workflows:
            instance = sync.instance(key)
            if instance is not None and instance.get("active"):
                sync.wait_for_webhook(key, registered=True, timeout=60)
    finally:
        api.close()
