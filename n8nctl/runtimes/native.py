"""The native runtime: n8n (installed from npm into the cache, n8nctl/runtimes/n8n_npm.py) and the
bridge as programs of one supervisord, rendered from templates/native/. For hosts without Docker."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path

from n8nctl.adapters.process import background, lines, run
from n8nctl.errors import N8nctlError, NotFoundError
from n8nctl.health import probe_services
from n8nctl.render import native_context, render_native, write_stack
from n8nctl.runtimes import (
    HEALTH_TIMEOUT,
    ActiveStack,
    N8nDump,
    Progress,
    Runtime,
    ServiceState,
    Started,
    free_port,
    wait_ready,
)
from n8nctl.runtimes.n8n_npm import (
    DATA_FOLDER,
    LEAVE_OUT,
    ensure_n8n,
    migration_of,
    n8n_cli,
    n8n_command,
    node_bin_dir,
    user_folder_env,
)
from n8nctl.wait import until

PROGRAMS = ("n8n", "bridge")
BIN = Path(sys.executable).parent
# supervisord states from which a program does not come up by waiting
FAILED = ("FATAL", "BACKOFF", "EXITED")


class NativeRuntime(Runtime):
    name = "native"
    n8n_database = "sqlite"
    _cleanup: ExitStack  # a drill copy's: what `serve_n8n` started

    @property
    def conf(self) -> Path:
        return self.folder / "supervisord.conf"

    @property
    def pidfile(self) -> Path:
        return self.settings.state_dir / "run" / "supervisord.pid"

    @property
    def log_dir(self) -> Path:
        return self.settings.state_dir / "logs"

    @property
    def services(self) -> tuple[str, ...]:
        return ("supervisord", *PROGRAMS)

    def pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text().strip())
            os.kill(pid, 0)
        except (FileNotFoundError, ValueError, ProcessLookupError):
            return None
        return pid

    # -- up ------------------------------------------------------------------------------------------

    def start(self, progress: Progress) -> Started:
        home = ensure_n8n(self.settings, progress)
        text = render_native(native_context(self.settings, n8n_home=home, node_dir=node_bin_dir()))
        changed = bool(write_stack({self.conf.name: text}, self.folder))
        report = Started(started=self.pid() is None, logs=str(self.log_dir))
        if report.started:
            progress(f"starting n8n {self.settings.n8n_version} and the bridge (native runtime, {self.conf})")
            self._supervisord()
        elif changed:
            progress("the rendered config changed: applying it")
            self._ctl("update")
            report.changes.append(f"applied the changed {self.conf.name}")
        if not report.started:
            for state in self.states():
                if state.state in ("STOPPED", *FAILED):
                    self._ctl("start", state.service)
                    report.changes.append(f"started {state.service} (was {state.state})")
        progress("waiting for n8n and the bridge to be healthy...")
        self.wait_healthy()
        return report

    def _supervisord(self) -> None:
        for folder in ("run", "logs", "n8n"):
            (self.settings.state_dir / folder).mkdir(mode=0o700, parents=True, exist_ok=True)
        env = dict(os.environ)
        if key := self.settings.n8n_encryption_key.get_secret_value():
            env["N8N_ENCRYPTION_KEY"] = key
        run(
            [BIN / "supervisord", "-c", self.conf],
            what="supervisord did not start",
            env=env,
            fix=f"See {self.log_dir / 'supervisord.log'}.",
            timeout=30,
        )

    def wait_healthy(self, timeout: float = HEALTH_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while True:
            for state in self.states():
                if state.failed:
                    raise N8nctlError(
                        f"{state.service} did not start ({state.state})",
                        why="its last log lines:\n" + self._tail(state.service),
                        fix=f"See {self.log_dir / (state.service + '.log')}.",
                    )
            waiting = [name for name, probe in probe_services(self.settings).items() if not probe.healthy]
            if not waiting:
                return
            if time.monotonic() > deadline:
                raise N8nctlError(
                    f"{', '.join(waiting)} not healthy after {timeout:.0f} s",
                    why="last log lines:\n" + "\n".join(self._tail(name) for name in waiting),
                    fix=f"See {self.log_dir}; n8nctl down, then n8nctl up.",
                )
            time.sleep(0.5)

    # -- the rest of the interface ---------------------------------------------------------------------

    def _ctl(self, *args: str) -> str:
        return run(
            [BIN / "supervisorctl", "-c", self.conf, *args],
            what=f"supervisorctl {' '.join(args)} failed",
            fix=f"See {self.log_dir / 'supervisord.log'}.",
            timeout=60,
        )

    def states(self) -> list[ServiceState]:
        if self.pid() is None:
            return []
        # supervisorctl status exits 3 when a program is not running: a state like any other here
        output = run(
            [BIN / "supervisorctl", "-c", self.conf, "status"],
            what="supervisorctl status failed",
            fix=f"See {self.log_dir / 'supervisord.log'}.",
            timeout=30,
            ok_codes=(0, 3),
        )
        states = []
        for line in output.splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] in PROGRAMS:
                name, state = parts[0], parts[1]
                states.append(
                    ServiceState(name, name, state, ready=state == "RUNNING", failed=state in FAILED)
                )
        return states

    def down(self, timeout: float = 60) -> bool:
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

    def stop_service(self, service: str) -> None:
        self._ctl("stop", service)

    def start_service(self, service: str) -> None:
        self._ctl("start", service)

    def _log_files(self, services: Sequence[str]) -> list[Path]:
        self.check_services(services)
        files = [self.log_dir / f"{name}.log" for name in (services or self.services)]
        present = [f for f in files if f.exists()]
        if not present:
            raise NotFoundError(f"no logs in {self.log_dir}", fix="Start the stack: n8nctl up.")
        return present

    def _tail(self, program: str, count: int = 15) -> str:
        path = self.log_dir / f"{program}.log"
        if not path.exists():
            return "(no log yet)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-count:])

    def logs(self, services: Sequence[str], *, tail: int) -> str:
        return "".join(self._tail(path.stem, tail) + "\n" for path in self._log_files(services))

    def follow(self, services: Sequence[str], *, tail: int) -> Iterator[str]:
        return lines(["tail", "-n", str(tail), "-F", *map(str, self._log_files(services))])

    # -- backup and restore --------------------------------------------------------------------------------

    @property
    def n8n_folder(self) -> Path:
        """N8N_USER_FOLDER of the n8n program; n8n keeps its data in .n8n/ inside it."""
        return self.settings.state_dir / "n8n"

    def dump_n8n(self, dest: Path) -> N8nDump:
        from n8nctl.backup.archive import pack

        data = self.n8n_folder / DATA_FOLDER
        live = data / "database.sqlite"
        if not live.exists():
            raise NotFoundError(f"no n8n database at {live}", fix="Start the stack once: n8nctl up.")
        database = dest / "database.sqlite"
        os.close(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        # SQLite's online backup API: one consistent snapshot while n8n keeps writing (a copy of the
        # file could catch a write half done, or miss what is still in the -wal file)
        source, target = sqlite3.connect(live, timeout=30), sqlite3.connect(database)
        try:
            source.backup(target)
        finally:
            source.close()
            target.close()
        user_folder = dest / "user-folder.tar"
        pack(data, user_folder, leave_out=LEAVE_OUT)
        return N8nDump(database, user_folder, migration_of(database))

    def restore_n8n(self, dump: N8nDump) -> None:
        """The n8n folder there was is kept beside it as n8n.before-restore-<UTC time>."""
        from n8nctl.backup.archive import unpack

        if self.n8n_folder.exists():
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
            self.n8n_folder.rename(self.n8n_folder.with_name(f"n8n.before-restore-{stamp}"))
        data = self.n8n_folder / DATA_FOLDER
        unpack(dump.user_folder, data)
        self.n8n_folder.chmod(0o700)
        shutil.copyfile(dump.database, data / "database.sqlite")
        (data / "database.sqlite").chmod(0o600)

    def encryption_key(self) -> str:
        try:
            config = json.loads((self.n8n_folder / DATA_FOLDER / "config").read_text())
            return str(config["encryptionKey"])
        except (FileNotFoundError, ValueError, KeyError):
            return self.settings.n8n_encryption_key.get_secret_value()

    def n8n_cli(self, *args: str, what: str) -> str:
        return n8n_cli(self.settings, self.n8n_folder, *args, what=what, fix="See n8n's output with -vv.")

    @contextmanager
    def drill_copy(self, work: Path) -> Iterator[Runtime]:
        settings = self.settings.model_copy(
            update={"n8nctl_state_dir": work, "n8n_port": free_port(), "n8n_runners_broker_port": free_port()}
        )
        copy = NativeRuntime(settings, ActiveStack("native", "drill"))
        with ExitStack() as cleanup:
            copy._cleanup = cleanup
            yield copy

    def serve_n8n(self) -> float:
        """n8n alone, outside supervisord, on the copy's ports; stopped when the drill copy closes."""
        env = user_folder_env(
            self.n8n_folder,
            N8N_PORT=str(self.settings.n8n_port),
            N8N_RUNNERS_BROKER_PORT=str(self.settings.n8n_runners_broker_port),
        )
        command = [*n8n_command(ensure_n8n(self.settings, lambda message: None)), "start"]
        self._cleanup.enter_context(
            background(command, log_file=self.settings.state_dir / "n8n.log", env=env)
        )
        return wait_ready(self.settings)

    def stop_for_restore(self) -> None:
        self.down()
