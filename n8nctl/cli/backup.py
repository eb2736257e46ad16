"""backup, backups list|verify|prune, restore, prune. Core (n8nctl/backup/) returns data; this prints it."""

from __future__ import annotations

import getpass
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from n8nctl.cli.context import open_store, settings_from_env
from n8nctl.cli.output import dumps, emit, json_option
from n8nctl.errors import NotRestorableError

if TYPE_CHECKING:
    from n8nctl.runtimes import Runtime
    from n8nctl.settings import Settings


def _quiet_option(function: Any) -> Any:
    return click.option("-q", "--quiet", is_flag=True, help="Nothing on stderr but an error.")(function)


@contextmanager
def _progress(total: int, *, quiet: bool) -> Iterator[Callable[[str], None]]:
    """A progress bar on a terminal, unless quiet; nothing otherwise (cron: stderr is the error line)."""
    if not quiet and sys.stderr.isatty():
        with click.progressbar(length=total, file=sys.stderr, show_eta=False) as bar:

            def advance(name: str) -> None:
                bar.label = name
                bar.update(1)

            yield advance
    else:
        yield lambda name: None


def _context() -> tuple[Settings, Runtime]:
    from n8nctl.runtimes import current

    settings = settings_from_env()
    return settings, current(settings)


def _size(count: int) -> str:
    value, unit = float(count), "B"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            break
        value /= 1024
    return f"{count} B" if unit == "B" else f"{value:.1f} {unit}"


@click.command()
@click.option(
    "--dest",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to write into [default: N8NCTL_BACKUP_DIR, ./backups].",
)
@click.option(
    "--upload",
    is_flag=True,
    help="Also upload it to S3 (N8NCTL_BACKUP_S3_*); it is published only once uploaded.",
)
@_quiet_option
@click.option("--json", "as_json", is_flag=True, help="One JSON line: id, size, duration, where.")
def backup(dest: Path | None, upload: bool, quiet: bool, as_json: bool) -> None:
    """Back up the running stack: n8n's database and user folder (with its encryption key), the
    bridge's store, n8nctl's state and every workflow, with a manifest of checksums.

    Writes <dest>/<UTC time>/ under a temporary name and renames it once complete: a failed run leaves
    nothing that looks like a backup, and says in one line which step failed. Encrypted with
    N8NCTL_BACKUP_ENCRYPTION_KEY when set. One backup, restore or prune at a time (exit 8 if busy).

    \b
    Example:
      n8nctl backup
      n8nctl backup --upload --quiet --json     # nightly cron (docs/RUNBOOK.md)
    """
    from n8nctl.backup.create import create_backup

    settings, runtime = _context()
    with _progress(10, quiet=quiet or as_json) as progress:
        result = create_backup(
            settings, runtime, lambda: open_store(settings), dest=dest, upload=upload, progress=progress
        )
    data = {
        "id": result.id,
        "size": result.size,
        "duration_seconds": result.duration_seconds,
        "path": str(result.path),
        "uploaded": result.uploaded,
        "encrypted": result.encrypted,
    }
    if as_json:
        click.echo(dumps(data))
    elif not quiet:
        where = f", uploaded to {result.uploaded}" if result.uploaded else ""
        size = _size(result.size)
        click.echo(f"backup {result.id}: {size} in {result.duration_seconds:.1f} s, {result.path}{where}")


@click.group()
def backups() -> None:
    """The backups there are: list, verify (a restore drill), prune."""


@backups.command("list")
@json_option
def list_(as_json: bool) -> None:
    """Local and S3 backups, newest first: age, size, n8n version, whether a drill ever verified it.

    \b
    Example:
      n8nctl backups list
    """
    from n8nctl.backup.catalog import list_local, list_remote

    settings = settings_from_env()
    now = datetime.now(UTC)
    found = sorted(
        list_local(settings) + list_remote(settings), key=lambda b: b.manifest.started_at, reverse=True
    )
    rows = [
        {
            "id": b.id,
            "where": b.where,
            "age_hours": round((now - b.manifest.started_at).total_seconds() / 3600, 1),
            "size": b.manifest.size,
            "n8n_version": b.manifest.n8n_version,
            "runtime": b.manifest.runtime,
            "encrypted": b.manifest.encrypted_to is not None,
            "verified": None
            if b.drill is None
            else ("restorable" if b.drill.restorable else "NOT RESTORABLE"),
            "verified_at": b.drill.at if b.drill else None,
            "location": b.location,
        }
        for b in found
    ]
    if as_json:
        emit(rows, as_json=True)
        return
    for row, listed in zip(rows, found, strict=True):
        row["size"] = _size(listed.manifest.size)
    emit(
        rows,
        as_json=False,
        columns=["id", "where", "age_hours", "size", "n8n_version", "encrypted", "verified"],
    )


@backups.command()
@click.argument("backup_ref", metavar="BACKUP")
@json_option
def verify(backup_ref: str, as_json: bool) -> None:
    """Prove BACKUP restorable by a restore drill in a throwaway folder: checksums, decryption, every
    credential decrypts with the backup's key, the workflows match its manifest, the bridge store
    loads, n8n (the version it names) starts on it and is ready. Exit 7 when it is not restorable.
    BACKUP is an id, a folder, s3://bucket/prefix/<id>, or `latest`.

    \b
    Example:
      n8nctl backups verify 20261201T020000Z
      n8nctl backups verify latest --json       # weekly cron
      n8nctl backups verify s3://flowbiz-backups/n8nctl/20261201T020000Z
    """
    from n8nctl.backup.drill import as_json as report_json
    from n8nctl.backup.drill import verify as drill

    settings = settings_from_env()
    with _progress(8, quiet=as_json) as progress:
        report = drill(settings, backup_ref, progress=progress)
    if as_json:
        emit(report_json(report), as_json=True)
    else:
        for check in report.checks:
            click.echo(f"[{'ok  ' if check['ok'] else 'FAIL'}] {check['check']}: {check['detail']}")
        answer = "yes" if report.restorable else "NO"
        click.echo(
            f"restorable: {answer} (backup {report.backup_id}, drill took {report.duration_seconds:.1f} s)"
        )
    if report.failure is not None:
        failure = report.failure
        raise NotRestorableError(
            f"backup {report.backup_id} is not restorable: {failure.what}", why=failure.why, fix=failure.fix
        )


@backups.command("prune")
@click.option(
    "--keep-daily",
    type=click.IntRange(0),
    help="Days to keep one backup of [default: N8NCTL_BACKUP_KEEP_DAILY].",
)
@click.option("--keep-weekly", type=click.IntRange(0), help="ISO weeks [default: N8NCTL_BACKUP_KEEP_WEEKLY].")
@click.option("--keep-monthly", type=click.IntRange(0), help="Months [default: N8NCTL_BACKUP_KEEP_MONTHLY].")
@click.option("--dry-run", is_flag=True, help="Say what would go; delete nothing.")
@json_option
def prune_backups(
    keep_daily: int | None, keep_weekly: int | None, keep_monthly: int | None, dry_run: bool, as_json: bool
) -> None:
    """Delete local and S3 backups outside the retention policy: the newest of each of the last N
    days, weeks and months is kept, and always the newest backup.

    \b
    Example:
      n8nctl backups prune --keep-daily 7 --keep-weekly 4 --keep-monthly 6 --dry-run
    """
    from n8nctl.backup.retention import Policy, prune_backups
    from n8nctl.backup.steps import exclusive

    settings = settings_from_env()
    default = Policy.of(settings)
    policy = Policy(
        default.daily if keep_daily is None else keep_daily,
        default.weekly if keep_weekly is None else keep_weekly,
        default.monthly if keep_monthly is None else keep_monthly,
    )
    with exclusive(settings.state_dir, "prune backups"):
        report = prune_backups(settings, policy, dry_run=dry_run)
    if as_json:
        emit(asdict(report) | {"dry_run": dry_run}, as_json=True)
        return
    verb = "would delete" if dry_run else "deleted"
    for name in report.deleted:
        click.echo(f"{verb} {name}")
    click.echo(f"kept {len(report.kept)}, {verb} {len(report.deleted)}")


@click.command()
@click.argument("backup_ref", metavar="BACKUP")
@click.option("--dry-run", is_flag=True, help="Check the backup and print the plan; change nothing.")
@click.option("--force", is_flag=True, help="Restore a backup of another n8n version or encryption key.")
@click.option("--actor", default=getpass.getuser, help="Who restores (audited) [default: login name].")
@json_option
def restore(backup_ref: str, dry_run: bool, force: bool, actor: str, as_json: bool) -> None:
    """Restore BACKUP (an id, a folder, s3://bucket/prefix/<id>, or `latest`) into this project's stack.

    Checks and decrypts it first, and refuses one from another n8n version or whose encryption key
    is not the configured N8N_ENCRYPTION_KEY (unless --force), saying why. Then stops the stack,
    puts back n8n's user folder and database (the old n8n folder is kept beside it), n8nctl's state
    and the bridge's store, requeues the jobs that were pending or running in the backup (or fails
    them with RESTORE_DEADLINE_PASSED), proves the credentials decrypt, starts the stack, waits for
    health and checks the workflows are active as they were. Audited as `restored`.

    \b
    Example:
      n8nctl restore 20261201T020000Z --dry-run
      n8nctl restore s3://flowbiz-backups/n8nctl/20261201T020000Z
    """
    from n8nctl.backup.restore import restore as run_restore

    settings = settings_from_env()
    with _progress(10, quiet=as_json) as progress:
        report = run_restore(
            settings, backup_ref, dry_run=dry_run, force=force, actor=actor, progress=progress
        )
    if as_json:
        emit(asdict(report), as_json=True)
        return
    if dry_run:
        click.echo(f"restore plan for backup {report.backup_id} ({report.source}):")
        for number, name in enumerate(report.steps, 1):
            click.echo(f"  {number}. {name}")
        for refusal in report.refusals:
            click.echo(f"refused without --force: {refusal}")
        return
    click.echo(
        f"restored {report.backup_id} in {report.duration_seconds:.1f} s: "
        f"{len(report.requeued)} job(s) requeued, {len(report.failed)} failed with RESTORE_DEADLINE_PASSED"
    )


@click.command()
@click.option("--dry-run", is_flag=True, help="Count what would go; delete nothing.")
@_quiet_option
@json_option
def prune(dry_run: bool, quiet: bool, as_json: bool) -> None:
    """Delete what is past retention: n8n executions older than N8NCTL_PRUNE_EXECUTIONS_HOURS (public
    API, one at a time), the bridge's audit events past each job's retention (90 days, 365 for
    financial workflows) and the jobs none of whose events remain, backups outside the retention
    policy, and dangling images on compose.

    \b
    Example:
      n8nctl prune --dry-run
      n8nctl prune --quiet          # cron, after the nightly backup
    """
    from n8nctl.backup.prune import prune as run_prune

    settings, runtime = _context()
    with _progress(4, quiet=quiet or as_json) as progress:
        report = run_prune(
            settings, runtime, lambda: open_store(settings), dry_run=dry_run, progress=progress
        )
    if as_json:
        emit(asdict(report), as_json=True)
    elif not quiet:
        verb = "would delete" if dry_run else "deleted"
        click.echo(
            f"{verb}: {report.executions} n8n execution(s), {report.audit_events} audit event(s), "
            f"{report.jobs} job(s), {len(report.backups)} backup(s), {report.images} image(s)"
        )
