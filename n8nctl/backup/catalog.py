"""Finding backups (local folders and S3 prefixes) and opening one: downloaded when remote, every file
checked against its manifest (size, sha256), then decrypted into a private working folder."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ValidationError

from n8nctl.backup import crypto
from n8nctl.backup.manifest import DRILL, MANIFEST, Manifest, read_manifest, sha256_file
from n8nctl.envfile import write_private
from n8nctl.errors import ConfigError, NotFoundError, NotRestorableError
from n8nctl.settings import Settings


class DrillRecord(BaseModel):
    """The last restore drill of a backup (drill.json beside its manifest)."""

    restorable: bool
    at: datetime
    duration_seconds: float
    checks: list[dict[str, object]]


@dataclass(frozen=True)
class Listed:
    id: str
    where: Literal["local", "s3"]
    location: str  # a folder, or s3://bucket/prefix/<id>/
    manifest: Manifest
    drill: DrillRecord | None


@dataclass(frozen=True)
class Opened:
    """A backup checked and readable: `folder` holds its files in clear (decrypted when they were not)."""

    manifest: Manifest
    source: str
    folder: Path

    def path(self, name: str) -> Path:
        return self.folder / name


def _drill(text: bytes | None) -> DrillRecord | None:
    try:
        return DrillRecord.model_validate_json(text) if text else None
    except ValidationError:
        return None


def list_local(settings: Settings) -> list[Listed]:
    found = []
    folder = settings.backup_dir
    for entry in sorted(folder.iterdir()) if folder.is_dir() else []:
        if entry.name.startswith(".") or (manifest := read_manifest(entry)) is None:
            continue  # .<id>.partial: a backup being written, or one that failed
        drill_file = entry / DRILL
        found.append(
            Listed(
                manifest.id,
                "local",
                str(entry),
                manifest,
                _drill(drill_file.read_bytes() if drill_file.exists() else None),
            )
        )
    return found


def list_remote(settings: Settings) -> list[Listed]:
    from n8nctl.adapters.s3 import S3, S3Location

    if not settings.n8nctl_backup_s3_bucket:
        return []
    s3 = S3(settings)
    location = S3Location(settings.n8nctl_backup_s3_bucket, settings.n8nctl_backup_s3_prefix)
    found = []
    for name in sorted(s3.folders(location)):
        try:
            manifest = Manifest.model_validate_json(s3.read(location, f"{name}/{MANIFEST}"))
        except (NotFoundError, ValidationError, ValueError):
            continue  # no manifest: an upload that never completed
        try:
            drill = _drill(s3.read(location, f"{name}/{DRILL}"))
        except NotFoundError:
            drill = None
        found.append(Listed(name, "s3", location.url(name) + "/", manifest, drill))
    return found


def resolve(settings: Settings, ref: str) -> str:
    """A backup named by its folder, its id (in the backup folder), s3://bucket/prefix/<id>, or
    `latest`: the newest local backup, else the newest on S3."""
    if ref == "latest":
        found = list_local(settings) or list_remote(settings)
        if not found:
            raise NotFoundError("there is no backup yet", fix="Take one: n8nctl backup.")
        return max(found, key=lambda b: b.manifest.started_at).location.rstrip("/")
    if ref.startswith("s3://"):
        return ref.rstrip("/")
    path = Path(ref)
    if (path / MANIFEST).exists():
        return str(path)
    if (settings.backup_dir / ref / MANIFEST).exists():
        return str(settings.backup_dir / ref)
    raise NotFoundError(
        f"no backup {ref}",
        why=f"neither {path} nor {settings.backup_dir / ref} holds a {MANIFEST}",
        fix="n8nctl backups list shows the backups there are.",
    )


def open_backup(settings: Settings, ref: str, workdir: Path) -> Opened:
    """Check and decrypt the backup `ref` (see `resolve`) into `workdir` (a private, empty folder)."""
    source = resolve(settings, ref)
    folder = _download(settings, source, workdir / "download") if source.startswith("s3://") else Path(source)
    manifest = read_manifest(folder)
    if manifest is None:
        raise NotRestorableError(f"{source} has no readable {MANIFEST}", fix="Use another backup.")
    for entry in manifest.files:
        path = folder / entry.path
        if not path.is_file() or path.stat().st_size != entry.size or sha256_file(path) != entry.sha256:
            raise NotRestorableError(
                f"{entry.path} in backup {manifest.id} does not match its checksum",
                why="the file is missing, truncated or altered",
                fix="Use another backup (n8nctl backups list); this one cannot be trusted.",
            )
    if manifest.encrypted_to is None:
        return Opened(manifest, source, folder)
    key = settings.n8nctl_backup_encryption_key.get_secret_value()
    if not key:
        raise ConfigError(
            f"backup {manifest.id} is encrypted and N8NCTL_BACKUP_ENCRYPTION_KEY is not set",
            why=f"its files are encrypted to {manifest.encrypted_to}",
            fix="Set the age identity of that recipient in .env or the environment.",
        )
    plain = workdir / "plain"
    for entry in manifest.files:
        target = plain / entry.path.removesuffix(crypto.SUFFIX)
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        crypto.decrypt_file(folder / entry.path, target, key)
    shutil.copyfile(folder / MANIFEST, plain / MANIFEST)
    return Opened(manifest, source, plain)


def _download(settings: Settings, url: str, target: Path) -> Path:
    from n8nctl.adapters.s3 import S3, S3Location

    s3 = S3(settings)
    location = S3Location.parse(url)
    target.mkdir(mode=0o700, parents=True)
    write_private(target / MANIFEST, s3.read(location, MANIFEST).decode())
    manifest = read_manifest(target)
    if manifest is None:
        raise NotRestorableError(f"{url} has no readable {MANIFEST}", fix="Use another backup.")
    for entry in manifest.files:
        (target / entry.path).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        s3.download(location, entry.path, target / entry.path)
    return target


def record_drill(settings: Settings, source: str, record: DrillRecord) -> None:
    """Keep the drill's result beside the backup's manifest (`backups list` shows it)."""
    text = record.model_dump_json(indent=2) + "\n"
    if not source.startswith("s3://"):
        write_private(Path(source) / DRILL, text)
        return
    import tempfile

    from n8nctl.adapters.s3 import S3, S3Location

    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / DRILL
        write_private(path, text)
        S3(settings).upload(path, S3Location.parse(source), DRILL)
