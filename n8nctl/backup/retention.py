"""Which backups to keep: the newest of each of the last N days, ISO weeks and months that have one
(grandfather-father-son), and always the newest backup of all. `prune_backups` deletes the rest,
local and on S3."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from n8nctl.backup.catalog import Listed, list_local, list_remote
from n8nctl.backup.manifest import MANIFEST
from n8nctl.settings import Settings


@dataclass(frozen=True)
class Policy:
    daily: int
    weekly: int
    monthly: int

    @classmethod
    def of(cls, settings: Settings) -> Policy:
        return cls(
            settings.n8nctl_backup_keep_daily,
            settings.n8nctl_backup_keep_weekly,
            settings.n8nctl_backup_keep_monthly,
        )


def keep(moments: Iterable[datetime], policy: Policy) -> set[datetime]:
    newest_first = sorted(set(moments), reverse=True)
    kept = set(newest_first[:1])
    periods: list[tuple[int, Callable[[datetime], object]]] = [
        (policy.daily, lambda m: m.date()),
        (policy.weekly, lambda m: m.isocalendar()[:2]),
        (policy.monthly, lambda m: (m.year, m.month)),
    ]
    for count, period in periods:
        seen: set[object] = set()
        for moment in newest_first:
            if len(seen) >= count:
                break
            if period(moment) not in seen:
                seen.add(period(moment))
                kept.add(moment)
    return kept


@dataclass
class PruneReport:
    kept: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)  # "local <id>" / "s3 <id>"


def prune_backups(settings: Settings, policy: Policy, *, dry_run: bool) -> PruneReport:
    """Apply `policy` to the local backups and, when a bucket is set, to those on S3 (each on its own)."""
    import shutil

    report = PruneReport()
    for listed in (list_local(settings), list_remote(settings)):
        kept = keep((b.manifest.started_at for b in listed), policy)
        for backup in listed:
            name = f"{backup.where} {backup.id}"
            if backup.manifest.started_at in kept:
                report.kept.append(name)
                continue
            report.deleted.append(name)
            if not dry_run:
                _delete(settings, backup, shutil.rmtree)
    return report


def _delete(settings: Settings, backup: Listed, rmtree: Callable[[Path], None]) -> None:
    """The manifest goes first (locally: the folder is renamed away), so a deletion cut short never
    leaves something listed as a backup."""
    if backup.where == "local":
        folder = Path(backup.location)
        doomed = folder.with_name(f".{folder.name}.deleting")
        folder.rename(doomed)
        rmtree(doomed)
        return
    from n8nctl.adapters.s3 import S3, S3Location

    s3 = S3(settings)
    location = S3Location(settings.n8nctl_backup_s3_bucket, settings.n8nctl_backup_s3_prefix)
    s3.delete(location, f"{backup.id}/{MANIFEST}")
    s3.delete_folder(location, backup.id)
