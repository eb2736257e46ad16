"""Every subprocess n8nctl runs goes through `run`: logged (never with secrets), failures explained."""

from __future__ import annotations

import logging
import shlex
import subprocess
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from n8nctl.errors import N8nctlError

log = logging.getLogger(__name__)


def run(
    command: Sequence[str | Path],
    *,
    what: str,
    fix: str,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    ok_codes: Collection[int] = (0,),
    stdin: str | None = None,
) -> str:
    """Run `command`; return its stdout. When it exits with a code not in `ok_codes`, raise
    N8nctlError with the output's last lines.

    `env` must not carry secrets into `command`'s arguments: only the command line is logged."""
    args = [str(part) for part in command]
    log.debug("run: %s", shlex.join(args))
    try:
        done = subprocess.run(
            args, cwd=cwd, env=env, input=stdin, capture_output=True, text=True, timeout=timeout, check=False
        )
    except FileNotFoundError:
        raise N8nctlError(what, why=f"{args[0]} is not installed", fix=fix) from None
    except subprocess.TimeoutExpired:
        raise N8nctlError(
            what, why=f"{Path(args[0]).name} ran longer than {timeout:.0f} s", fix=fix
        ) from None
    if done.returncode not in ok_codes:
        tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        raise N8nctlError(what, why=f"exit {done.returncode}: {tail[-400:]}", fix=fix)
    return done.stdout


def lines(command: Sequence[str | Path]) -> Iterator[str]:
    """Run `command` and yield its output line by line while it runs (e.g. `tail -F`); stopped when
    the caller stops reading."""
    args = [str(part) for part in command]
    log.debug("run: %s", shlex.join(args))
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    try:
        yield from process.stdout
    finally:
        process.terminate()
        process.wait(timeout=10)


@contextmanager
def background(
    command: Sequence[str | Path], *, log_file: Path, env: Mapping[str, str], user: str | None = None
) -> Iterator[None]:
    """Run `command` (as `user`, when given) while the block runs, its output to `log_file`, then stop
    it: SIGTERM, and SIGKILL after 30 s."""
    args = [str(part) for part in command]
    log.debug("start: %s", shlex.join(args))
    with log_file.open("ab") as output:
        process = subprocess.Popen(
            args, env=env, stdout=output, stderr=subprocess.STDOUT,
            user=user, group=user, extra_groups=[] if user else None,  # the user's groups, none of ours
        )  # fmt: skip
    try:
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
