"""The two runtimes behind one interface: compose (n8nctl/runtimes/compose.py) and native
(n8nctl/runtimes/native.py).

`choose` picks one for `up` (compose when a Docker engine answers, else native) and `up` remembers
the stack it started in <state dir>/stack.json; `current` returns that stack's runtime, so `down`,
`status`, `logs` and the kill-switch act on what actually runs and never ask which runtime it is.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

from n8nctl.errors import ConfigError, N8nctlError, UnreachableError
from n8nctl.settings import Settings

RuntimeName = Literal["compose", "native"]
Progress = Callable[[str], None]
HEALTH_TIMEOUT = 180.0


@dataclass(frozen=True)
class ActiveStack:
    """What `up` started: the runtime, the stack's name, and for compose whether it is the prod stack."""

    runtime: RuntimeName
    name: str = "dev"
    prod: bool = False
    workers: int = 1
    queue: bool = False  # native: n8n in queue mode (N8NCTL_QUEUE_MODE when `up` ran)


@dataclass(frozen=True)
class ServiceState:
    """One service instance as its runtime sees it (a container, or a supervisord program)."""

    service: str
    instance: str
    state: str  # in the runtime's words: "running (healthy)", "RUNNING", "exited"
    ready: bool  # running, and healthy where the runtime checks health
    failed: bool = False  # waiting will not bring it up: exited, fatal, unhealthy
    url: str | None = None  # where its health is probed, when the runtime probes it


@dataclass
class Started:
    """The runtime's part of `up`."""

    started: bool  # nothing of the stack was running before
    changes: list[str] = field(default_factory=list)
    logs: str = ""  # where the logs are, for the operator


@dataclass(frozen=True)
class N8nDump:
    """n8n's half of a backup, as its runtime wrote it: a consistent dump of its database and its user
    folder (the `config` with the encryption key, binary data) as a tar file."""

    database: Path  # SQLite: database.sqlite (online backup API); PostgreSQL: database.pgdump (pg_dump -Fc)
    user_folder: Path
    migration: str  # the newest migration in that database


class Runtime(ABC):
    name: ClassVar[RuntimeName]

    def __init__(self, settings: Settings, stack: ActiveStack) -> None:
        self.settings, self.stack = settings, stack

    @property
    def folder(self) -> Path:
        """stacks/<name>/: the files `up` renders for this stack."""
        return self.settings.stack_dir(self.stack.name)

    @property
    @abstractmethod
    def services(self) -> tuple[str, ...]:
        """The services this stack runs, by the names `logs`, `stop_service` and `start_service` take."""

    @abstractmethod
    def start(self, progress: Progress) -> Started:
        """Render, start what is not running, apply what changed; return once every service is healthy."""

    @abstractmethod
    def down(self) -> bool:
        """Stop the stack (data stays); False when it was not running."""

    @abstractmethod
    def states(self) -> list[ServiceState]:
        """Every service instance, stopped ones included; [] when the stack is down."""

    @abstractmethod
    def logs(self, services: Sequence[str], *, tail: int) -> str: ...

    @abstractmethod
    def follow(self, services: Sequence[str], *, tail: int) -> Iterator[str]: ...

    @abstractmethod
    def stop_service(self, service: str) -> None:
        """Stop one service; the others keep running (the kill-switch stops n8n this way)."""

    @abstractmethod
    def start_service(self, service: str) -> None: ...

    # -- backup and restore (n8nctl/backup/) --------------------------------------------------------------

    @property
    @abstractmethod
    def n8n_database(self) -> Literal["sqlite", "postgres"]:
        """What n8n keeps its data in on this stack (a backup holds that kind of dump)."""

    @abstractmethod
    def dump_n8n(self, dest: Path) -> N8nDump:
        """Write n8n's database and user folder into the folder `dest`, consistent while n8n runs."""

    @abstractmethod
    def restore_n8n(self, dump: N8nDump) -> None:
        """Replace n8n's database and user folder with `dump`; after `stop_for_restore`."""

    @abstractmethod
    def encryption_key(self) -> str:
        """The key n8n encrypts its credentials with ('' when n8n never ran here)."""

    @abstractmethod
    def n8n_cli(self, *args: str, what: str) -> str:
        """n8n's own CLI on this stack's database and user folder (its server running or not); stdout."""

    def decrypted_credentials(self) -> int:
        """How many credentials n8n's own CLI decrypts with the key it has; an N8nctlError when they do
        not. The decrypted output is parsed in memory and dropped: no secret reaches a file or a log."""
        from n8nctl.runtimes.n8n_npm import count_decrypted

        try:
            output = self.n8n_cli(
                "export:credentials",
                "--all",
                "--decrypted",
                "--output=/dev/stdout",
                what="n8n's credentials do not decrypt",
            )
        except N8nctlError as exc:
            if "No credentials found" in exc.why:
                return 0
            raise N8nctlError(  # n8n's own words without any line of its output
                exc.what,
                why=exc.why.split(":", 1)[0],
                fix="The encryption key in the user folder is not the one its database was written with: "
                "use another backup, or the user folder that belongs to this database.",
            ) from None
        return count_decrypted(output)

    @abstractmethod
    def drill_copy(self, work: Path) -> AbstractContextManager[Runtime]:
        """A throwaway stack of this runtime on free ports, sharing nothing with this one, for the
        restore drill (`stop_for_restore`, `restore_n8n`, `n8n_cli`, `serve_n8n`); removed on exit."""

    @abstractmethod
    def serve_n8n(self) -> float:
        """Start n8n alone (in a drill copy), wait until it is ready; the seconds that took."""

    @abstractmethod
    def stop_for_restore(self) -> None:
        """Stop whatever writes n8n's database, its user folder or the bridge's store."""

    def prune_images(self, *, dry_run: bool) -> int:
        """Remove what the runtime leaves behind on disk (compose: dangling images); how many."""
        return 0

    def after_bootstrap(self) -> None:  # noqa: B027 (a hook: most runtimes need nothing here)
        """The bootstrap wrote state files on the host (the n8n API key): give them to the services."""

    def store_url(self) -> str:
        """Where commands on the host open the bridge's job store."""
        return self.settings.database_url

    def migrate_store(self) -> tuple[str | None, str]:
        """The bridge's job store upgraded to this code's schema (revisions before and after): `up` runs
        it before the bridge starts, since a bridge refuses a schema behind its code (ADR 40)."""
        from n8nctl.store import Store
        from n8nctl.store.core import answering

        store = Store(self.store_url())
        try:
            with answering():
                return store.migrate()
        finally:
            store.close()

    def prepare_store(self, report: Started) -> None:
        """`up`'s migration, from the host, before the bridge starts."""
        before, after = self.migrate_store()
        if before != after:
            report.changes.append(f"migrated the bridge's job store to schema {after}")

    def check_services(self, services: Sequence[str]) -> None:
        unknown = [s for s in services if s not in self.services]
        if unknown:
            raise ConfigError(
                f"the {self.name} runtime has no service {unknown[0]}",
                fix=f"Name one of: {', '.join(self.services)}.",
            )


def create(settings: Settings, stack: ActiveStack) -> Runtime:
    """The one place that maps a runtime's name to its implementation."""
    if stack.runtime == "compose":
        from n8nctl.runtimes.compose import ComposeRuntime

        return ComposeRuntime(settings, stack)
    from n8nctl.runtimes.native import NativeRuntime

    return NativeRuntime(settings, stack)


def current(settings: Settings) -> Runtime:
    """The runtime of the stack `up` started in this project (native when none was recorded)."""
    return create(settings, active(settings))


def active(settings: Settings) -> ActiveStack:
    path = settings.state_dir / "stack.json"
    try:
        data = json.loads(path.read_text())
        return ActiveStack(
            runtime=data["runtime"],
            name=str(data.get("name") or settings.stack_name(prod=bool(data["prod"]))),
            prod=bool(data["prod"]),
            workers=int(data["workers"]),
            queue=bool(data.get("queue", False)),
        )
    except FileNotFoundError:
        return ActiveStack("native", name=settings.stack_name(prod=False))
    except (ValueError, KeyError, TypeError):
        raise ConfigError(
            f"{path} is unreadable", fix="Delete it and run n8nctl up again (it records the runtime)."
        ) from None


def remember(settings: Settings, stack: ActiveStack) -> None:
    settings.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    (settings.state_dir / "stack.json").write_text(json.dumps(asdict(stack)) + "\n")


def forget(settings: Settings) -> None:
    (settings.state_dir / "stack.json").unlink(missing_ok=True)


def choose(
    settings: Settings, requested: str | None, *, prod: bool, engine_answers: Callable[[], bool]
) -> tuple[RuntimeName, str]:
    """The runtime for `up`, and why it was chosen (printed to the operator)."""
    wanted = requested or settings.n8nctl_runtime
    source = "--runtime" if requested else "N8NCTL_RUNTIME"
    if wanted == "native":
        if prod:
            raise ConfigError(
                "--prod needs the compose runtime",
                why=f"{source} is native, and the prod stack (queue mode) runs on compose only",
                fix="Drop --runtime native (or set N8NCTL_RUNTIME=auto) on a host with Docker.",
            )
        return "native", source
    answers = engine_answers()
    if settings.n8nctl_queue_mode and not prod and (wanted == "compose" or (wanted == "auto" and answers)):
        raise ConfigError(
            "N8NCTL_QUEUE_MODE=true is the native runtime's queue mode",
            why="the compose dev stack runs n8n in regular mode (its queue mode is the prod stack), and "
            "n8n's data must not move between stacks by accident",
            fix="Add --runtime native (or N8NCTL_RUNTIME=native to .env), or use --prod.",
        )
    if not answers and (wanted == "compose" or prod):
        raise UnreachableError(
            "no Docker engine answers",
            why=f"{'the prod stack' if prod else source} needs the compose runtime, and `docker version` "
            "reaches no daemon",
            fix="Start Docker (docker info must work) and retry; dev stacks also run with --runtime native.",
        )
    if wanted == "compose":
        return "compose", source
    return ("compose", "a Docker engine answers") if answers else ("native", "no Docker engine answers")


def wait_ready(settings: Settings, timeout: float = HEALTH_TIMEOUT) -> float:
    """Until n8n answers /healthz/readiness (database connected and migrated); the seconds it took."""
    import time

    from n8nctl.adapters.probe import status
    from n8nctl.wait import until

    started = time.monotonic()
    if not until(lambda: status(settings.n8n_url + "/healthz/readiness") == 200, timeout, interval=0.5):
        raise N8nctlError(f"n8n is not ready after {timeout:.0f} s", fix="See its log.")
    return time.monotonic() - started


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
