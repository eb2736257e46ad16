"""What backup, restore and verify share: named steps (a failure names the step it happened in, in
one line), and the lock that keeps two of them from overlapping."""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from n8nctl.errors import BusyError, N8nctlError

log = logging.getLogger(__name__)
Progress = Callable[[str], None]


class StepError(N8nctlError):
    """`operation` failed at `step`; carries the cause's exit code."""

    def __init__(self, operation: str, step: str, cause: N8nctlError) -> None:
        self.step, self.exit_code = step, cause.exit_code
        super().__init__(f'{operation} failed at step "{step}": {cause.what}', why=cause.why, fix=cause.fix)


@contextmanager
def step(operation: str, name: str, progress: Progress) -> Iterator[None]:
    """Run one step; any failure becomes a StepError naming it. Exception texts of drivers are not
    shown (they may carry a URL with a password): only their type."""
    progress(name)
    try:
        yield
    except StepError:
        raise
    except N8nctlError as exc:
        raise StepError(operation, name, exc) from None
    except sqlite3.Error as exc:  # SQLite's messages carry no URL or password ("database or disk is full")
        raise StepError(operation, name, N8nctlError(f"SQLite: {exc}")) from None
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        cause = N8nctlError(exc.strerror or type(exc).__name__, why=f"{type(exc).__name__}{where}")
        raise StepError(operation, name, cause) from None
    except Exception as exc:
        log.debug("step %s failed", name, exc_info=True)
        cause = N8nctlError(type(exc).__name__, fix="Re-run with -vv for the details.")
        raise StepError(operation, name, cause) from None


@contextmanager
def exclusive(state_dir: Path, operation: str) -> Iterator[None]:
    """One backup, restore or prune at a time per project (a cron run overlapping a manual one)."""
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = state_dir / "backup.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another n8nctl"
            raise BusyError(
                f"cannot {operation} now",
                why=f"{holder} holds {path}",
                fix="Wait for it to finish and run again (cron: the next run will).",
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"n8nctl {operation} (pid {os.getpid()})".encode(), 0)
        yield
    finally:
        os.close(fd)
