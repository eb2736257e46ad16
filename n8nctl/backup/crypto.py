"""Client-side encryption of backup files in the age format (ADR 30): X25519 recipients,
ChaCha20-Poly1305 in 64 KiB chunks, so files stream through in constant memory and every chunk is
authenticated (a flipped bit, a truncated file or another key fails instead of restoring garbage).
The standard `age` CLI decrypts them too: `age -d -i key.txt FILE.age > FILE`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from n8nctl.errors import ConfigError, NotRestorableError

if TYPE_CHECKING:
    from pyrage import x25519

SUFFIX = ".age"


class DecryptionError(NotRestorableError):
    """A file does not decrypt: another key, or the file was altered."""


def identity(text: str) -> x25519.Identity:
    from pyrage import IdentityError, x25519

    try:
        return x25519.Identity.from_str(text.strip())
    except (IdentityError, ValueError):
        raise ConfigError(  # never echoes the value: it is the secret
            "N8NCTL_BACKUP_ENCRYPTION_KEY is not an age identity",
            why="it must be one line AGE-SECRET-KEY-1... (age-keygen writes one)",
            fix="Fix it in .env or the environment (docs/RUNBOOK.md, Backups).",
        ) from None


def recipient(text: str) -> str:
    """The public half of an identity: recorded in manifests, safe to show."""
    return str(identity(text).to_public())


def encrypt_file(source: Path, key: str) -> Path:
    """Encrypt `source` to `source`.age (mode 0600) and delete `source`; returns the new path."""
    import pyrage

    target = source.with_name(source.name + SUFFIX)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with source.open("rb") as plain, os.fdopen(fd, "wb") as sealed:
        pyrage.encrypt_io(plain, sealed, [identity(key).to_public()])
    source.unlink()
    return target


def decrypt_file(source: Path, target: Path, key: str) -> None:
    """Decrypt `source` into `target` (0600); on failure nothing is left at `target`."""
    import pyrage

    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with source.open("rb") as sealed, os.fdopen(fd, "wb") as plain:
            pyrage.decrypt_io(sealed, plain, [identity(key)])
    except (pyrage.DecryptError, OSError, ValueError) as exc:
        target.unlink(missing_ok=True)
        why = (
            "N8NCTL_BACKUP_ENCRYPTION_KEY is not the key it was encrypted with"
            if "No matching keys" in str(exc)
            else "it is damaged (its authentication failed)"
        )
        raise DecryptionError(
            f"{source.name} does not decrypt",
            why=why,
            fix="Set the key the backup was made with (its manifest names its recipient), or use another.",
        ) from None
