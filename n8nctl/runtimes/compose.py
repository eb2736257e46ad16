"""The compose runtime: render stacks/<stack>/, `docker compose up`, wait until every service is
healthy (or name the one that is not, with its last log lines). Docker is reached only through
n8nctl/adapters/docker.py, PostgreSQL (the stack's own, from the host) through adapters/postgres.py.

PostgreSQL comes up first: `up` checks that the password in .env opens its volume (a volume created
under another password is a clear error, not n8n failing to start) and, on the prod stack, gives the
bridge its own role and database on that server before anything else starts.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Literal

from n8nctl.adapters.docker import Compose, ContainerState
from n8nctl.errors import ConfigError, N8nctlError
from n8nctl.health import probe_services
from n8nctl.render import render_stack, write_stack
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
from n8nctl.runtimes.n8n_npm import LEAVE_OUT

BASE_SERVICES = ("postgres", "redis", "n8n", "bridge")
DATA_SERVICES = ("postgres", "redis")
WORKER = "n8n-worker"
BRIDGE_UID = 10001  # the Dockerfile's `bridge` user
BRIDGE_FILES = ("bridge.db", "bridge.db-wal", "bridge.db-shm", "n8n-api-key")
BRIDGE_ROLE = "bridge"  # the prod bridge's role and database on the stack's PostgreSQL
N8N_HOME = "/home/node/.n8n"  # n8n's user folder in its image: the n8n-data volume


class ComposeRuntime(Runtime):
    name = "compose"

    @property
    def services(self) -> tuple[str, ...]:
        return (*BASE_SERVICES, WORKER) if self.stack.prod else BASE_SERVICES

    @cached_property
    def project(self) -> Compose:
        """Its rendered files (base, then the prod override), and the env files its ${VAR}s read."""
        files = [
            self.folder / "compose.yaml",
            *([self.folder / "compose.prod.yaml"] if self.stack.prod else []),
        ]
        env_files = [self.settings.n8nctl_project_dir / ".env", self.runtime_env_file]
        return Compose(files, env_files, host=self.settings.docker_host or None)

    @property
    def runtime_env_file(self) -> Path:
        """Values `up` decides at run time, for ${VAR} in the compose files (no secret among them)."""
        return self.settings.state_dir / "compose.env"

    # -- up ------------------------------------------------------------------------------------------

    def start(self, progress: Progress, *, timeout: float = HEALTH_TIMEOUT) -> Started:
        written = write_stack(
            render_stack(self.settings, runtime="compose", prod=self.stack.prod), self.folder
        )
        self.write_runtime_env()
        report = Started(
            started=not any(s.ready for s in self.states()),
            changes=[f"rendered {self.folder.name}/{name}" for name in written],
            logs="docker compose logs",
        )
        progress(f"docker compose up: {self.folder} (first run: pulls images and builds the bridge)")
        self.project.up(services=DATA_SERVICES)
        self.wait_healthy(DATA_SERVICES, timeout=timeout)
        self.prepare_databases(report)
        self.prepare_store(report)
        self.share_state()  # a SQLite store the migration just created as root goes to the bridge's user
        scale = f" with {self.stack.workers} n8n worker(s)" if self.stack.prod else ""
        progress(f"starting n8n and the bridge{scale}...")
        self.project.up(scales={WORKER: self.stack.workers} if self.stack.prod else None)
        progress(f"waiting for {', '.join(self.services)} to be healthy...")
        self.wait_healthy(self.services, timeout=timeout)
        return report

    def write_runtime_env(self) -> None:
        """compose.env: the user the bridge container runs as (see `share_state`)."""
        uid, gid = self.share_state()
        path = self.runtime_env_file
        text = f"N8NCTL_BRIDGE_USER={uid}:{gid}\n"
        if not path.exists() or path.read_text() != text:
            path.write_text(text)

    def after_bootstrap(self) -> None:
        self.share_state()  # the API key the bootstrap may have just written, as root

    def share_state(self) -> tuple[int, int]:
        """The uid:gid that lets the bridge container and n8nctl on the host share the state folder: its
        owner, or, when root owns it, the image's unprivileged user, given the folder and the files the
        bridge opens (SQLite gives the journal files it creates as root the database file's owner)."""
        state = self.settings.state_dir
        state.mkdir(mode=0o700, parents=True, exist_ok=True)  # before docker would create it, root-owned
        owner = state.stat()
        if owner.st_uid not in (0, BRIDGE_UID):
            return owner.st_uid, owner.st_gid
        if os.geteuid() == 0:
            shared = [state, *(state / name for name in BRIDGE_FILES)]
            for path in (p for p in shared if p.exists()):
                os.chown(path, BRIDGE_UID, BRIDGE_UID)
        return BRIDGE_UID, BRIDGE_UID

    def prepare_databases(self, report: Started) -> None:
        """The .env password opens the PostgreSQL volume; the prod bridge has its role and database."""
        from n8nctl.adapters import postgres

        admin = self.postgres_url("n8n", self.settings.postgres_password.get_secret_value(), "n8n")
        volume = f"{self.project_name}_postgres-data"
        postgres.check_login(
            admin,
            wrong_password=ConfigError(
                f"the PostgreSQL volume {volume} was created with another POSTGRES_PASSWORD",
                why="the password in .env does not open it (a new .env from n8nctl init, or an edited one)",
                fix=f"Put back the .env that created it, or start from empty data: n8nctl down, then "
                f"docker volume rm {volume}.",
            ),
        )
        if self.stack.prod and not self.settings.bridge_database_url.get_secret_value():
            password = self.settings.bridge_postgres_password.get_secret_value()
            if not password:
                raise ConfigError(
                    "BRIDGE_POSTGRES_PASSWORD is not set",
                    why="the prod bridge keeps its jobs in its own PostgreSQL database",
                    fix="Add it to .env (n8nctl init generates one).",
                )
            if postgres.ensure_database(admin, role=BRIDGE_ROLE, password=password):
                report.changes.append(f"created the bridge's PostgreSQL role and database {BRIDGE_ROLE!r}")

    @property
    def project_name(self) -> str:
        return f"n8nctl-{self.stack.name}"

    def postgres_url(self, user: str, password: str, database: str) -> str:
        """The stack's PostgreSQL as the host reaches it: its port published on 127.0.0.1."""
        return f"postgresql+psycopg://{user}:{password}@127.0.0.1:{self.settings.postgres_port}/{database}"

    def store_url(self) -> str:
        if not self.stack.prod or self.settings.bridge_database_url.get_secret_value():
            return self.settings.database_url
        password = self.settings.bridge_postgres_password.get_secret_value()
        return self.postgres_url(BRIDGE_ROLE, password, BRIDGE_ROLE)

    def wait_healthy(
        self,
        expected: Sequence[str],
        *,
        timeout: float = HEALTH_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
        pause: Callable[[float], None] = time.sleep,
    ) -> None:
        """Until every container of `expected` is running and healthy. A container that exited or turned
        unhealthy fails at once; one still starting fails at the deadline. Both name it, with its logs."""
        deadline = clock() + timeout
        while True:
            states = [s for s in self.states() if s.service in expected]
            failed = [s for s in states if s.failed]
            if failed:
                raise N8nctlError(
                    f"{failed[0].service} did not come up ({failed[0].state})",
                    why="its last log lines:\n" + self.logs([failed[0].service], tail=15),
                    fix=f"n8nctl logs {failed[0].service}; fix the cause, then n8nctl up.",
                )
            waiting = [name for name in expected if not _ready(name, states)]
            if not waiting:  # and from the host, as the bootstrap and FlowBiz reach them
                probes = probe_services(self.settings) if "n8n" in expected else {}
                waiting = [name for name, probe in probes.items() if not probe.healthy]
            if not waiting:
                return
            if clock() > deadline:
                raise N8nctlError(
                    f"{', '.join(waiting)} not healthy after {timeout:.0f} s",
                    why="last log lines:\n" + self.logs(waiting, tail=15),
                    fix=f"n8nctl logs {waiting[0]}; n8nctl down, then n8nctl up.",
                )
            pause(1.0)

    # -- the rest of the interface ---------------------------------------------------------------------

    def down(self) -> bool:
        was_running = any(s.ready for s in self.states())
        self.project.down()
        return was_running

    def states(self) -> list[ServiceState]:
        return [_service_state(container) for container in self.project.states()]

    def logs(self, services: Sequence[str], *, tail: int) -> str:
        self.check_services(services)
        return self.project.logs(list(services or self.services), tail=tail)

    def follow(self, services: Sequence[str], *, tail: int) -> Iterator[str]:
        self.check_services(services)
        return self.project.follow(list(services or self.services), tail=tail)

    def _with_workers(self, service: str) -> list[str]:
        """n8n on the prod stack is its main process and its queue-mode workers: they run executions."""
        self.check_services([service])
        return [service, WORKER] if service == "n8n" and self.stack.prod else [service]

    def stop_service(self, service: str) -> None:
        self.project.stop(self._with_workers(service))

    def start_service(self, service: str) -> None:
        self.project.start(self._with_workers(service))

    def prune_images(self, *, dry_run: bool) -> int:
        from n8nctl.adapters.docker import dangling_images

        return len(dangling_images(self.settings.docker_host or None, remove=not dry_run))

    # -- backup and restore --------------------------------------------------------------------------------

    @property
    def n8n_database(self) -> Literal["sqlite", "postgres"]:
        return "postgres"

    def dump_n8n(self, dest: Path) -> N8nDump:
        """pg_dump -Fc inside the postgres container (its own client, local socket), and a tar of the
        n8n-data volume made inside the n8n container; both copied out through a file in /tmp."""
        scratch = f"/tmp/n8nctl-backup-{uuid.uuid4().hex}"  # noqa: S108 (inside the container, random name)
        database, user_folder = dest / "database.pgdump", dest / "user-folder.tar"
        self.project.execute(
            "postgres",
            ["pg_dump", "-U", "n8n", "-d", "n8n", "-Fc", "-f", scratch],
            what="pg_dump of n8n's database failed",
        )
        try:
            self.project.copy_out("postgres", scratch, database)
        finally:
            self.project.execute("postgres", ["rm", "-f", scratch], what="cleaning up the dump failed")
        exclude = [f"--exclude={name}*" for name in LEAVE_OUT]
        self.project.execute(
            "n8n",
            ["tar", "-cf", scratch, *exclude, "-C", N8N_HOME, "."],
            what="packing n8n's user folder failed",
        )
        try:
            self.project.copy_out("n8n", scratch, user_folder)
        finally:
            self.project.execute("n8n", ["rm", "-f", scratch], what="cleaning up the tar failed")
        for path in (database, user_folder):
            path.chmod(0o600)
        return N8nDump(database, user_folder, self._migration())

    def _migration(self) -> str:
        query = "SELECT name FROM migrations ORDER BY timestamp DESC LIMIT 1"
        output = self.project.execute(
            "postgres",
            ["psql", "-U", "n8n", "-d", "n8n", "-Atc", query],
            what="reading n8n's migrations failed",
        )
        return output.strip().splitlines()[-1] if output.strip() else "none"

    def stop_for_restore(self) -> None:
        """PostgreSQL up (n8n's database is restored in it, the prod bridge's store lives there too),
        everything that writes to it stopped."""
        self.project.up(services=DATA_SERVICES)
        self.wait_healthy(DATA_SERVICES)
        self.prepare_databases(Started(started=False))
        self.project.stop([s for s in self.services if s not in DATA_SERVICES])

    def restore_n8n(self, dump: N8nDump) -> None:
        scratch = f"/tmp/n8nctl-restore-{uuid.uuid4().hex}.pgdump"  # noqa: S108 (inside the container)
        self.project.copy_in(dump.database, "postgres", scratch)
        try:
            self.project.execute(
                "postgres",
                [
                    "psql",
                    "-U",
                    "n8n",
                    "-d",
                    "postgres",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-c",
                    "DROP DATABASE IF EXISTS n8n WITH (FORCE)",
                    "-c",
                    "CREATE DATABASE n8n OWNER n8n",
                ],
                what="recreating n8n's database failed",
            )
            self.project.execute(
                "postgres",
                ["pg_restore", "-U", "n8n", "-d", "n8n", "--no-owner", "--exit-on-error", scratch],
                what="pg_restore of n8n's database failed",
            )
        finally:
            self.project.execute("postgres", ["rm", "-f", scratch], what="cleaning up the dump failed")
        # the n8n-data volume, through a one-off container of the (stopped) n8n service: emptied, the
        # backup's tar extracted, given back to the image's node user
        script = (
            f"find {N8N_HOME} -mindepth 1 -delete && tar -xf /restore/{dump.user_folder.name} -C {N8N_HOME}"
            f" && chown -R node:node {N8N_HOME}"
        )
        self.project.run(
            "n8n",
            ["-c", script],
            entrypoint="sh",
            user="root",
            volumes=[(dump.user_folder.parent, "/restore", "ro")],
            what="restoring n8n's user folder failed",
        )

    def encryption_key(self) -> str:
        return self.settings.n8n_encryption_key.get_secret_value()

    def n8n_cli(self, *args: str, what: str) -> str:
        """In a one-off container of the n8n service: its image, volume and environment (key, database)."""
        return self.project.run("n8n", list(args), what=what)

    @contextmanager
    def drill_copy(self, work: Path) -> Iterator[Runtime]:
        """A compose project of its own (n8nctl-drill-<random>), on free ports, its volumes removed on
        exit; rendered from the same templates, so the same images and the same n8n version."""
        name = f"drill-{uuid.uuid4().hex[:8]}"
        settings = self.settings.model_copy(
            update={
                "n8nctl_state_dir": work,
                "n8nctl_stack": name,
                "n8n_port": free_port(),
                "bridge_port": free_port(),
                "postgres_port": free_port(),
            }
        )
        copy = ComposeRuntime(settings, ActiveStack("compose", name))
        write_stack(render_stack(settings, runtime="compose", prod=False), copy.folder)
        copy.write_runtime_env()
        try:
            yield copy
        finally:
            try:
                copy.project.down(volumes=True)
            finally:
                shutil.rmtree(copy.folder, ignore_errors=True)

    def serve_n8n(self) -> float:
        self.project.up(services=["n8n"])
        return wait_ready(self.settings)


def _ready(service: str, states: Sequence[ServiceState]) -> bool:
    mine = [s for s in states if s.service == service]
    return bool(mine) and all(s.ready for s in mine)


def _service_state(container: ContainerState) -> ServiceState:
    state = container.status if container.health is None else f"{container.status} ({container.health})"
    return ServiceState(
        container.service, container.name, state, ready=container.ready, failed=container.failed
    )
