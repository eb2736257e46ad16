"""`n8nctl prune`: n8n's executions older than N8NCTL_PRUNE_EXECUTIONS_HOURS (through its public API,
a page at a time, one DELETE per execution: the API has no bulk delete), the bridge's audit rows past
each job's retention (store/retention.py), backups outside the retention policy, and on compose the
dangling images. `dry_run` counts and deletes nothing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from n8nctl.backup.retention import Policy, prune_backups
from n8nctl.backup.steps import Progress, exclusive, step
from n8nctl.runtimes import Runtime
from n8nctl.settings import Settings
from n8nctl.store import Store

FINISHED = ("success", "error", "crashed", "canceled")


@dataclass
class PruneReport:
    dry_run: bool
    executions: int = 0
    audit_events: int = 0
    jobs: int = 0
    backups: list[str] = field(default_factory=list)
    images: int = 0
    seconds: dict[str, float] = field(default_factory=dict)


def prune(
    settings: Settings,
    runtime: Runtime,
    open_store: Callable[[], Store],
    *,
    dry_run: bool,
    progress: Progress = lambda name: None,
) -> PruneReport:
    import time

    report = PruneReport(dry_run)
    with exclusive(settings.state_dir, "prune"):
        parts: list[tuple[str, Callable[[], None]]] = [
            ("n8n executions", lambda: _executions(settings, report)),
            ("audit trail", lambda: _audit(open_store, report)),
            ("backups", lambda: _backups(settings, report)),
            ("images", lambda: _images(runtime, report)),
        ]
        for name, part in parts:
            clock = time.monotonic()
            with step("prune", name, progress):
                part()
            report.seconds[name] = round(time.monotonic() - clock, 2)
    return report


def old_executions(page: list[dict[str, object]], cutoff: datetime) -> list[str]:
    """The finished executions of a page that stopped before `cutoff`."""
    old = []
    for execution in page:
        stopped = execution.get("stoppedAt")
        finished = execution.get("status") in FINISHED and isinstance(stopped, str)
        if finished and datetime.fromisoformat(str(stopped).replace("Z", "+00:00")) < cutoff:
            old.append(str(execution["id"]))
    return old


def _executions(settings: Settings, report: PruneReport) -> None:
    from n8nctl.adapters.n8n_api import N8nApi

    cutoff = datetime.now(UTC) - timedelta(hours=settings.n8nctl_prune_executions_hours)
    api = N8nApi(settings.n8n_url, api_key=settings.n8n_api_key_value())
    try:
        cursor: str | None = None
        while True:
            page, cursor = api.executions_page(cursor)
            for execution_id in old_executions(page, cutoff):
                if not report.dry_run:
                    api.delete_execution(execution_id)
                report.executions += 1
            if not cursor:
                return
    finally:
        api.close()


def _audit(open_store: Callable[[], Store], report: PruneReport) -> None:
    store = open_store()
    try:
        pruned = store.prune_audit(dry_run=report.dry_run)
    finally:
        store.close()
    report.audit_events, report.jobs = pruned.events, pruned.jobs


def _backups(settings: Settings, report: PruneReport) -> None:
    report.backups = prune_backups(settings, Policy.of(settings), dry_run=report.dry_run).deleted


def _images(runtime: Runtime, report: PruneReport) -> None:
    report.images = runtime.prune_images(dry_run=report.dry_run)
