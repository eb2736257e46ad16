"""Folders as tar files, for n8n's user folder: modes kept, and on extraction nothing may
land outside the target (tarfile's "data" filter refuses absolute paths, `..` and device files)."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path


def pack(folder: Path, target: Path, *, leave_out: tuple[str, ...] = ()) -> None:
    """`folder`'s content into the tar file `target` (0600), without the top-level entries whose names
    start with one of `leave_out`."""
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w") as tar:
        for entry in sorted(folder.iterdir()):
            if not entry.name.startswith(leave_out):
                tar.add(entry, arcname=entry.name)


def unpack(source: Path, folder: Path) -> None:
    """Extract the tar file `source` into `folder` (created 0700)."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    with tarfile.open(source) as tar:
        tar.extractall(folder, filter="data")
