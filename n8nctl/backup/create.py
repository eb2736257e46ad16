"""`n8nctl backup`: one folder <backup dir>/<UTC time>/ that holds the whole runtime.

    manifest.json               what is here (n8nctl/backup/manifest.py); never a secret
    n8n/database.sqlite|.pgdump n8n's database, a consistent dump taken while n8n runs
    n8n/user-folder.tar         n8n's user folder: `config` with the encryption key, binary data
    bridge/store.jsonl.gz       the bridge's jobs, outbox, audit trail and kill-switches
    n8nctl/...                  n8nctl's state that belongs with n8n's database (its API key, the ids
                                of the credentials and workflows it created)
    workflows/<id>.json         every workflow in n8n, in the normal form of n8nctl/workflows.py

Every data file gets `.age` when N8NCTL_BACKUP_ENCRYPTION_KEY is set. The folder is written as
.<id>.partial (0700, files 0600), uploaded when asked, and only then renamed: a failed run leaves
nothing that looks like a backup, and an S3 backup is complete once its manifest is there (it goes last).
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from hashlib import sha256
from pathlib import Path

from n8nctl import __version__
from n8nctl.backup import crypto
from n8nctl.backup.manifest import MANIFEST, KeyFingerprint, Manifest, WorkflowEntry, file_entry
from n8nctl.backup.steps import Progress, exclusive, step
from n8nctl.envfile import write_private
from n8nctl.errors import ConfigError, N8nctlError
from n8nctl.runtimes import Runtime
from n8nctl.settings import Settings
from n8nctl.store import Store

STATE_FILES = ("n8n-api-key", "n8n-bootstrap.json", "n8n-workflows.json")
ID_FORMAT = "%Y%m%dT%H%M%SZ"


@dataclass(frozen=True)
class BackupResult:
    id: str
    path: Path
    size: int
    duration_seconds: float
    encrypted: bool
    uploaded: str | None  # s3://bucket/prefix/<id>/ when uploaded


def new_id(now: datetime) -> str:
    return now.strftime(ID_FORMAT)


def create_backup(
    settings: Settings,
    runtime: Runtime,
    open_store: Callable[[], Store],
    *,
    dest: Path | None = None,
    upload: bool = False,
    progress: Progress = lambda name: None,
) -> BackupResult:
    key = settings.n8nctl_backup_encryption_key.get_secret_value()
    if key:
        crypto.identity(key)  # a malformed key fails before any work
    if upload and not settings.n8nctl_backup_s3_bucket:
        raise ConfigError("--upload needs N8NCTL_BACKUP_S3_BUCKET", fix="Set it in .env (docs/RUNBOOK.md).")
    with exclusive(settings.state_dir, "back up"):
        started, clock = datetime.now(UTC), time.monotonic()
        backup_id = new_id(started)
        parent = dest or settings.backup_dir
        final = parent / backup_id
        staging = parent / f".{backup_id}.partial"
        try:
            with step("backup", "prepare destination", progress):
                if final.exists():
                    raise N8nctlError(f"{final} exists", fix="Wait a second and run again.")
                parent.mkdir(parents=True, exist_ok=True)
                staging.mkdir(mode=0o700)
                for folder in ("n8n", "bridge", "n8nctl", "workflows"):
                    (staging / folder).mkdir(mode=0o700)
            manifest = _write(
                settings, runtime, open_store, staging, backup_id, started, clock, key, progress
            )
            location = None
            if upload:
                with step("backup", "upload", progress):
                    location = _upload(settings, staging, manifest)
            with step("backup", "publish", progress):
                staging.rename(final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return BackupResult(backup_id, final, manifest.size, manifest.duration_seconds, bool(key), location)


def _write(
    settings: Settings,
    runtime: Runtime,
    open_store: Callable[[], Store],
    staging: Path,
    backup_id: str,
    started: datetime,
    clock: float,
    key: str,
    progress: Progress,
) -> Manifest:
    with step("backup", "dump n8n", progress):
        dump = runtime.dump_n8n(staging / "n8n")
        fingerprint = KeyFingerprint.of(runtime.encryption_key())
    with step("backup", "dump bridge store", progress):
        store = open_store()
        try:
            revision = store.revision() or "none"
            rows = store.dump(staging / "bridge" / "store.jsonl.gz")
        finally:
            store.close()
    with step("backup", "copy n8nctl state", progress):
        for name in STATE_FILES:
            if (source := settings.state_dir / name).exists():
                write_private(staging / "n8nctl" / name, source.read_text())
    with step("backup", "export workflows", progress):
        workflows, credentials = _export_workflows(settings, staging / "workflows")
    if key:
        with step("backup", "encrypt", progress):
            for path in sorted(p for p in staging.rglob("*") if p.is_file()):
                crypto.encrypt_file(path, key)
    with step("backup", "write manifest", progress):
        files = [file_entry(staging, p) for p in sorted(staging.rglob("*")) if p.is_file()]
        manifest = Manifest(
            id=backup_id,
            runtime=runtime.name,
            stack=runtime.stack.name,
            prod=runtime.stack.prod,
            n8nctl_version=__version__,
            n8n_version=settings.n8n_version,
            n8n_database=runtime.n8n_database,
            n8n_migration=dump.migration,
            bridge_schema=revision,
            key_fingerprint=fingerprint,
            encrypted_to=crypto.recipient(key) if key else None,
            workflows=workflows,
            credentials=credentials,
            bridge_rows=rows,
            files=files,
            started_at=started,
            finished_at=datetime.now(UTC),
            duration_seconds=round(time.monotonic() - clock, 3),
        )
        write_private(staging / MANIFEST, manifest.model_dump_json(indent=2) + "\n")
    return manifest


def _export_workflows(settings: Settings, folder: Path) -> tuple[dict[str, WorkflowEntry], int]:
    """Every workflow in n8n, in the normal form, by id; and how many credentials n8n holds."""
    from n8nctl.adapters.n8n_api import N8nApi
    from n8nctl.workflows import dumps

    api = N8nApi(settings.n8n_url, api_key=settings.n8n_api_key_value())
    try:
        entries = {}
        for workflow in api.workflows():
            text = dumps(workflow)
            write_private(folder / f"{workflow['id']}.json", text)
            entries[str(workflow["id"])] = WorkflowEntry(
                name=workflow["name"],
                active=bool(workflow.get("active")),
                sha256=sha256(text.encode()).hexdigest(),
            )
        return entries, len(api.credentials())
    finally:
        api.close()


def _upload(settings: Settings, staging: Path, manifest: Manifest) -> str:
    """Every file, then the manifest: a backup on S3 without its manifest is not listed as one. A
    failed upload deletes what it had put there."""
    from n8nctl.adapters.s3 import S3, S3Location

    s3 = S3(settings)
    location = S3Location(settings.n8nctl_backup_s3_bucket, settings.n8nctl_backup_s3_prefix)
    try:
        for entry in manifest.files:
            s3.upload(staging / entry.path, location, f"{manifest.id}/{entry.path}")
        s3.upload(staging / MANIFEST, location, f"{manifest.id}/{MANIFEST}")
    except N8nctlError:
        # an unreachable store keeps the parts, but nothing is listed as a backup without its manifest
        with contextlib.suppress(N8nctlError):
            s3.delete_folder(location, manifest.id)
        raise
    return location.url(manifest.id) + "/"
