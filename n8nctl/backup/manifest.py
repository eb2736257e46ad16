"""manifest.json: what a backup holds and how to check it. No secret is in it: the encryption key
appears only as a keyed hash (HMAC-SHA256 under a random salt of this backup), the backup's own
encryption only as its age recipient (a public key)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

MANIFEST = "manifest.json"
DRILL = "drill.json"  # the last restore drill's result, written by `backups verify`
CHUNK = 1 << 20


class KeyFingerprint(BaseModel):
    model_config = ConfigDict(frozen=True)

    salt: str
    hmac_sha256: str

    @classmethod
    def of(cls, key: str) -> KeyFingerprint:
        salt = secrets.token_hex(16)
        return cls(salt=salt, hmac_sha256=_mac(salt, key))

    def matches(self, key: str) -> bool:
        return hmac.compare_digest(self.hmac_sha256, _mac(self.salt, key))


def _mac(salt: str, key: str) -> str:
    return hmac.new(bytes.fromhex(salt), key.encode(), hashlib.sha256).hexdigest()


class FileEntry(BaseModel):
    model_config = ConfigDict(frozen=True)

    path: str  # relative to the backup folder, as stored (".age" when encrypted)
    size: int
    sha256: str


class WorkflowEntry(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    active: bool
    sha256: str  # of its normal form (n8nctl/workflows.py `dumps`)


class Manifest(BaseModel):
    model_config = ConfigDict(frozen=True)

    format: Literal[1] = 1
    id: str
    runtime: Literal["compose", "native"]
    stack: str
    prod: bool = False  # compose: the prod stack (queue mode)
    n8nctl_version: str
    n8n_version: str
    n8n_database: Literal["sqlite", "postgres"]
    n8n_migration: str  # the newest migration in n8n's database: a backup restores into that n8n
    bridge_schema: str  # alembic revision of the bridge's store
    key_fingerprint: KeyFingerprint
    encrypted_to: str | None  # the age recipient the files are encrypted to; None: not encrypted
    workflows: dict[str, WorkflowEntry]  # n8n workflow id -> entry
    credentials: int
    bridge_rows: dict[str, int]
    files: list[FileEntry]
    started_at: datetime
    finished_at: datetime
    duration_seconds: float

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    def file(self, name: str) -> FileEntry:
        """The entry of a logical file name (`n8n/database.sqlite`), encrypted or not."""
        for entry in self.files:
            if entry.path in (name, name + ".age"):
                return entry
        raise KeyError(name)


def read_manifest(folder: Path) -> Manifest | None:
    """The manifest of a backup folder; None when there is none or it does not parse."""
    try:
        return Manifest.model_validate_json((folder / MANIFEST).read_bytes())
    except (FileNotFoundError, NotADirectoryError, ValidationError, ValueError):
        return None


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while chunk := source.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def file_entry(folder: Path, path: Path) -> FileEntry:
    return FileEntry(
        path=path.relative_to(folder).as_posix(), size=path.stat().st_size, sha256=sha256_file(path)
    )
