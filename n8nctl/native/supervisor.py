"""Drive the native stack's supervisord: start, apply a changed config, status, stop, per-program control."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path

from n8nctl.adapters.process import run
from n8nctl.errors import N8nctlError
from n8nctl.settings import Settings
from n8nctl.wait import until

PROGRAMS = ("n8n", "bridge")
BIN = Path(sys.executable).parent


class NativeStack:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.conf = settings.stack_dir / "supervisord.conf"
        self.pidfile = settings.state_dir / "run" / "supervisord.pid"
        self.log_dir = settings.state_dir / "logs"

    def pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text().strip())
            os.kill(pid, 0)
        except (FileNotFoundError, ValueError, ProcessLookupError):
            return None
        return pid

    def start(self, env: Mapping[str, str]) -> None:
        for folder in ("run", "logs", "n8n"):
            (self.settings.state_dir / folder).mkdir(mode=0o700, parents=True, exist_ok=True)
        run(
            [BIN / "supervisord", "-c", self.conf],
            what="supervisord did not start",
            env=env,
            fix=f"See {self.log_dir / 'supervisord.log'}.",
            timeout=30,
        )

    def ctl(self, *args: str) -> str:
        return run(
            [BIN / "supervisorctl", "-c", self.conf, *args],
            what=f"supervisorctl {' '.join(args)} failed",
            fix=f"See {self.log_dir / 'supervisord.log'}.",
            timeout=60,
        )

    def states(self) -> dict[str, str]:
        """Program -> supervisor state (RUNNING, STARTING, BACKOFF, FATAL, STOPPED...); {} when down."""
        if self.pid() is None:
            return {}
        # supervisorctl status exits 3 when a program is not running: a state like any other here
        output = run(
            [BIN / "supervisorctl", "-c", self.conf, "status"],
            what="supervisorctl status failed",
            fix=f"See {self.log_dir / 'supervisord.log'}.",
            timeout=30,
            ok_codes=(0, 3),
        )
        states = {}
        for line in output.splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] in PROGRAMS:
                states[parts[0]] = parts[1]
        return states

    def stop(self, timeout: float = 60) -> bool:
        """Stop every program and supervisord. False when it was not running."""
        pid = self.pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGTERM)  # supervisord stops its programs (process groups) before exiting
        if not until(lambda: self.pid() is None, timeout, interval=0.2):
            raise N8nctlError(
                "the native stack did not stop",
                why=f"supervisord (pid {pid}) still runs after {timeout:.0f} s",
                fix=f"kill {pid}, then check {self.log_dir}.",
            )
        return True

    def log_tail(self, program: str, lines: int = 15) -> str:
        try:
            return "\n".join(
                (self.log_dir / f"{program}.log").read_text(errors="replace").splitlines()[-lines:]
            )
        except FileNotFoundError:
            return "(no log yet)"
