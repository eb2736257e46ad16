"""The native runtime: n8n (installed from npm into the cache, n8nctl/runtimes/n8n_npm.py) and the
bridge as programs of one supervisord, rendered from templates/native/. For hosts without Docker.

With N8NCTL_QUEUE_MODE, n8n runs in queue mode: its main process, one `n8n worker` program per worker
and, unless configured elsewhere, the PostgreSQL and Redis they share (runtimes/native_queue.py)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from secrets import token_urlsafe
from typing import Any, Literal

from pydantic import SecretStr

from n8nctl.adapters.process import background, lines, run
from n8nctl.envfile import write_private
from n8nctl.errors import N8nctlError, NotFoundError
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
    n8n_command,
    node_bin_dir,
    user_folder_env,
)
from n8nctl.runtimes.native_queue import SQLITE, QueueMode, Worker, guard_database, record_database, workers
from n8nctl.wait import until

PROGRAMS = ("n8n", "bridge")
WORKER = "n8n-worker"  # the service of every worker program (n8n-worker-1, -2, ...)
BIN = Path(sys.executable).parent
# supervisord states from which a program does not come up by waiting
FAILED = ("FATAL", "BACKOFF", "EXITED")


class NativeRuntime(Runtime):
    name = "native"
    _cleanup: ExitStack  # a drill copy's: what `serve_n8n` started
    _serving = False  # n8n's own PostgreSQL started alone by `_n8n_database`

    @property
    def conf(self) -> Path:
        return self.folder / "supervisord.conf"

    @property
    def pidfile(self) -> Path:
        return self.settings.state_dir / "run" / "supervisord.pid"

    @property
    def socket(self) -> Path:
        return self.settings.state_dir / "run" / "supervisor.sock"

    @property
    def log_dir(self) -> Path:
        return self.settings.state_dir / "logs"

    @cached_property
    def queue(self) -> QueueMode | None:
        return QueueMode(self.settings) if self.stack.queue else None

    @cached_property
    def workers(self) -> list[Worker]:
        return workers(self.settings, self.stack.workers) if self.queue else []

    @property
    def programs(self) -> tuple[str, ...]:
        """Services that are supervisord programs (the workers are one service, many programs)."""
        if self.queue is None:
            return PROGRAMS
        return (*self.queue.programs, "n8n", WORKER, "bridge")

    @property
    def services(self) -> tuple[str, ...]:
        return ("supervisord", *self.programs)

    def pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text().strip())
            os.kill(pid, 0)
        except (FileNotFoundError, ValueError, ProcessLookupError):
            return None
        return pid

    # -- up ------------------------------------------------------------------------------------------

    def start(self, progress: Progress) -> Started:
        from n8nctl.render import native_context, render_native, write_stack

        secrets = self.queue.secret_env() if self.queue else self._encryption_key()
        n8n_folder, database = (
            self.settings.state_dir / "n8n",
            self.queue.database() if self.queue else SQLITE,
        )
        guard_database(n8n_folder, database)
        home = ensure_n8n(self.settings, progress)
        context = native_context(
            self.settings, n8n_home=home, node_dir=node_bin_dir(), workers=self.stack.workers
        )
        changed = bool(write_stack({self.conf.name: render_native(context)}, self.folder))
        report = Started(started=self.pid() is None, logs=str(self.log_dir))
        self.prepare_store(report)
        running = not report.started
        if running and self._secrets_changed(secrets):
            progress("the secrets supervisord passes to n8n changed: restarting the native stack")
            self.down()
            report.changes.append(
                "restarted the native stack (the secrets n8n reads from its environment changed)"
            )
            running = False
        if self.queue:
            report.changes += self.queue.prepare(progress)
            for worker in self.workers:
                worker.folder.mkdir(mode=0o700, exist_ok=True)
        if not running:
            progress(f"starting {', '.join(self.programs)} (native runtime, {self.conf})")
            self._supervisord(secrets)
        elif changed:
            progress("the rendered config changed: applying it")
            self._ctl("update")
            report.changes.append(f"applied the changed {self.conf.name}")
        if not report.started:
            for state in self.states():
                if state.state in ("STOPPED", *FAILED):
                    self._ctl("start", state.instance)
                    report.changes.append(f"started {state.instance} (was {state.state})")
        if self.queue:
            progress("waiting for n8n's PostgreSQL and Redis...")
            self.queue.check()
        progress(f"waiting for {', '.join(self.programs)} to be healthy...")
        self.wait_healthy()
        record_database(n8n_folder, database)
        return report

    def _encryption_key(self) -> dict[str, str]:
        key = self.settings.n8n_encryption_key.get_secret_value()
        return {"N8N_ENCRYPTION_KEY": key} if key else {}

    @property
    def _secrets_file(self) -> Path:
        return self.settings.state_dir / "run" / "secrets.sha256"

    @staticmethod
    def _fingerprint(secrets: dict[str, str]) -> str:
        return hashlib.sha256(json.dumps(secrets, sort_keys=True).encode()).hexdigest()

    def _secrets_changed(self, secrets: dict[str, str]) -> bool:
        """supervisord hands its programs the environment it started with: a changed secret needs a
        new supervisord. A stack started before fingerprints were kept is taken as unchanged."""
        if not self._secrets_file.exists():
            write_private(self._secrets_file, self._fingerprint(secrets) + "\n")
            return False
        return self._secrets_file.read_text().strip() != self._fingerprint(secrets)

    def _supervisord(self, secrets: dict[str, str]) -> None:
        for folder in ("run", "logs", "n8n"):
            (self.settings.state_dir / folder).mkdir(mode=0o700, parents=True, exist_ok=True)
        run(
            [BIN / "supervisord", "-c", self.conf],
            what="supervisord did not start",
            env=dict(os.environ) | secrets,
            fix=f"See {self.log_dir / 'supervisord.log'}.",
            timeout=30,
        )
        write_private(self._secrets_file, self._fingerprint(secrets) + "\n")

    def wait_healthy(self, timeout: float = HEALTH_TIMEOUT) -> None:
        from n8nctl.health import probe_services

        deadline = time.monotonic() + timeout
        while True:
            states = self.states()
            for state in states:
                if state.failed:
                    raise N8nctlError(
                        f"{state.instance} did not start ({state.state})",
                        why="its last log lines:\n" + self._tail(state.instance),
                        fix=f"See {self.log_dir / (state.instance + '.log')}.",
                    )
            waiting = [state.instance for state in states if not state.ready]
            waiting += [name for name, answer in probe_services(self.settings).items() if not answer.healthy]
            if not waiting:
                return
            if time.monotonic() > deadline:
                waiting = list(dict.fromkeys(waiting))
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
        from n8nctl.adapters import probe
        from n8nctl.adapters.supervisor import program_states

        if self.pid() is None:
            return []
        programs = program_states(self.socket, fix=f"See {self.log_dir / 'supervisord.log'}.")
        health = {worker.name: worker.health_url for worker in self.workers}
        states = []
        for name, state in programs.items():
            service = WORKER if name in health else name
            if service not in self.programs:
                continue
            url = health.get(name)  # a worker is ready when n8n's worker server says so
            ready = state == "RUNNING" and (url is None or probe.status(url) == 200)
            states.append(ServiceState(service, name, state, ready=ready, failed=state in FAILED, url=url))
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

    def _programs_of(self, service: str) -> list[str]:
        """A service's programs; n8n in queue mode is its main process and its workers, which run the
        executions (the kill-switch stops and starts them together, as on compose)."""
        self.check_services([service])
        names = [worker.name for worker in self.workers]
        if service == WORKER:
            return names
        return [service, *names] if service == "n8n" else [service]

    def stop_service(self, service: str) -> None:
        self._ctl("stop", *self._programs_of(service))

    def start_service(self, service: str) -> None:
        self._ctl("start", *self._programs_of(service))

    def _log_files(self, services: Sequence[str]) -> list[Path]:
        self.check_services(services)
        names = [name for service in (services or self.services) for name in self._log_names(service)]
        files = [self.log_dir / f"{name}.log" for name in names]
        present = [f for f in files if f.exists()]
        if not present:
            raise NotFoundError(f"no logs in {self.log_dir}", fix="Start the stack: n8nctl up.")
        return present

    def _tail(self, program: str, count: int = 15) -> str:
        path = self.log_dir / f"{program}.log"
        if not path.exists():
            return "(no log yet)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-count:])

    def _log_names(self, service: str) -> list[str]:
        return [worker.name for worker in self.workers] if service == WORKER else [service]

    def logs(self, services: Sequence[str], *, tail: int) -> str:
        files = self._log_files(services)
        headed = len(files) > 1  # as tail(1) does, so the lines of several files are told apart
        return "".join(
            (f"==> {path.name} <==\n" if headed else "") + self._tail(path.stem, tail) + "\n"
            for path in files
        )

    def follow(self, services: Sequence[str], *, tail: int) -> Iterator[str]:
        return lines(["tail", "-n", str(tail), "-F", *map(str, self._log_files(services))])

    # -- backup and restore --------------------------------------------------------------------------------

    @property
    def n8n_folder(self) -> Path:
        """N8N_USER_FOLDER of the n8n program; n8n keeps its data in .n8n/ inside it."""
        return self.settings.state_dir / "n8n"

    @property
    def n8n_database(self) -> Literal["sqlite", "postgres"]:
        return "postgres" if self.queue else "sqlite"

    def dump_n8n(self, dest: Path) -> N8nDump:
        from n8nctl.backup.archive import pack

        data = self.n8n_folder / DATA_FOLDER
        if self.queue:
            database = dest / "database.pgdump"
            self._postgres("pg_dump", "-Fc", "-f", str(database), what="pg_dump of n8n's database failed")
            database.chmod(0o600)
        else:
            database = dest / "database.sqlite"
            self._sqlite_backup(data / "database.sqlite", database)
        user_folder = dest / "user-folder.tar"
        pack(data, user_folder, leave_out=LEAVE_OUT)
        return N8nDump(database, user_folder, self._migration(database))

    @staticmethod
    def _sqlite_backup(live: Path, database: Path) -> None:
        if not live.exists():
            raise NotFoundError(f"no n8n database at {live}", fix="Start the stack once: n8nctl up.")
        os.close(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        # SQLite's online backup API: one consistent snapshot while n8n keeps writing (a copy of the
        # file could catch a write half done, or miss what is still in the -wal file)
        source, target = sqlite3.connect(live, timeout=30), sqlite3.connect(database)
        try:
            source.backup(target)
        finally:
            source.close()
            target.close()

    def _migration(self, database: Path) -> str:
        if not self.queue:
            return migration_of(database)
        query = "SELECT name FROM migrations ORDER BY timestamp DESC LIMIT 1"
        newest = self._postgres("psql", "-Atc", query, what="reading n8n's migrations failed").strip()
        return newest or "none"

    def _postgres(self, tool: str, *args: str, what: str) -> str:
        """A PostgreSQL client program on n8n's database (queue mode), served while it runs."""
        assert self.queue is not None
        with self._n8n_database():
            return run(
                [self.queue.tool(tool), *args], what=what, env=self.queue.libpq_env(), timeout=3600,
                fix="See PostgreSQL's message above (-vv); is the stack's database reachable?",
            )  # fmt: skip

    @contextmanager
    def _n8n_database(self) -> Iterator[None]:
        """n8n's database answering while the block runs. SQLite, a configured PostgreSQL, or the stack
        running: nothing to do; the stack's own PostgreSQL with the stack down (a restore, a drill copy):
        started alone on its data for the block."""
        own = self.queue is not None and self.queue.own_postgres
        if not own or self._serving or self.pid() is not None:
            yield
            return
        assert self.queue is not None
        self._serving = True
        try:
            with self.queue.serving_postgres(lambda message: None):
                yield
        finally:
            self._serving = False

    def _n8n_env(self, **extra: str) -> dict[str, str]:
        """n8n on this stack's user folder alone, on its database (queue mode: the PostgreSQL, without
        the queue: a CLI command or a drill's n8n needs no Redis)."""
        database = {}
        if self.queue:
            database = {k: v for k, v in self.queue.n8n_env().items() if k.startswith("DB_")}
            database["DB_POSTGRESDB_PASSWORD"] = self.queue.postgres.password
        return user_folder_env(self.n8n_folder, **database, **extra)

    def restore_n8n(self, dump: N8nDump) -> None:
        """The n8n folder there was is kept beside it as n8n.before-restore-<UTC time>; PostgreSQL's
        objects are replaced by the dump's (pg_restore --clean)."""
        from n8nctl.backup.archive import unpack

        if self.n8n_folder.exists():
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
            self.n8n_folder.rename(self.n8n_folder.with_name(f"n8n.before-restore-{stamp}"))
        data = self.n8n_folder / DATA_FOLDER
        unpack(dump.user_folder, data)
        self.n8n_folder.chmod(0o700)
        if self.queue:
            self._postgres(
                "pg_restore", "--clean", "--if-exists", "--no-owner", "--exit-on-error",
                f"--dbname={self.queue.postgres.database}", str(dump.database),
                what="pg_restore of n8n's database failed",
            )  # fmt: skip
            return
        shutil.copyfile(dump.database, data / "database.sqlite")
        (data / "database.sqlite").chmod(0o600)

    def encryption_key(self) -> str:
        try:
            config = json.loads((self.n8n_folder / DATA_FOLDER / "config").read_text())
            return str(config["encryptionKey"])
        except (FileNotFoundError, ValueError, KeyError):
            return self.settings.n8n_encryption_key.get_secret_value()

    def n8n_cli(self, *args: str, what: str) -> str:
        command = [*n8n_command(ensure_n8n(self.settings, lambda message: None)), *args]
        with self._n8n_database():
            return run(command, what=what, fix="See n8n's output with -vv.", env=self._n8n_env(), timeout=600)

    @contextmanager
    def drill_copy(self, work: Path) -> Iterator[Runtime]:
        """Queue mode: the copy's own scratch PostgreSQL (the configured server, or the stack's, is never
        touched), in a folder of its own that PostgreSQL's user may reach, running while the copy lives."""
        with ExitStack() as cleanup:
            update: dict[str, Any] = {"n8n_port": free_port(), "n8n_runners_broker_port": free_port()}
            if self.queue:
                state = Path(tempfile.mkdtemp(prefix="n8nctl-drill-pg-"))
                cleanup.callback(shutil.rmtree, state, ignore_errors=True)
                update |= {
                    "n8n_database_url": SecretStr(""),
                    "postgres_port": free_port(),
                    "postgres_password": SecretStr(token_urlsafe(24)),
                }
            else:
                state = work
            settings = self.settings.model_copy(update={**update, "n8nctl_state_dir": state})
            copy = NativeRuntime(settings, ActiveStack("native", "drill", queue=self.queue is not None))
            copy._cleanup = cleanup
            cleanup.enter_context(copy._n8n_database())
            yield copy

    def serve_n8n(self) -> float:
        """n8n alone, outside supervisord, on the copy's ports; stopped when the drill copy closes."""
        env = self._n8n_env(
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
