"""n8n queue mode on the native runtime (docs/adr/0041): n8n main plus `n8n worker` programs, on a
PostgreSQL and a Redis that are configured (N8N_DATABASE_URL, N8N_REDIS_URL) or that the stack runs
itself from Debian's packages, as supervisord programs beside n8n.

What lands in the rendered supervisord.conf is never a secret: the passwords and the encryption key
reach n8n through the environment `up` starts supervisord with (`secret_env`), and the stack's own
Redis reads an ACL file holding only the SHA-256 of its password.
"""

from __future__ import annotations

import glob
import hashlib
import os
import pwd
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from n8nctl.adapters.process import background, run
from n8nctl.envfile import write_private
from n8nctl.errors import ConfigError, N8nctlError, UnreachableError
from n8nctl.runtimes import Progress
from n8nctl.settings import Settings
from n8nctl.wait import until

ROLE = "n8n"  # role and database of n8n on the stack's own PostgreSQL (as in the compose stacks)
POSTGRES_GLOB = "/usr/lib/postgresql/*/bin/postgres"
REDIS_SERVER = "redis-server"
# Values written into supervisord.conf: no quotes, commas, '%' or spaces
_RENDERABLE = re.compile(r"^[A-Za-z0-9._-]+$")
CHECK_TIMEOUT = 60.0


@dataclass(frozen=True)
class Endpoint:
    """Where n8n reaches PostgreSQL or Redis. `password` never reaches a rendered file."""

    host: str
    port: int
    user: str
    password: str
    database: str  # Redis: the database number
    tls: bool = False


@dataclass(frozen=True)
class Worker:
    """One `n8n worker` program: its own health and task-broker ports (they share one host) and its
    own user folder (as each container has its own)."""

    name: str
    health_port: int
    broker_port: int
    folder: Path

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.health_port}/healthz/readiness"


def workers(settings: Settings, count: int) -> list[Worker]:
    base = settings.n8nctl_worker_base_port
    return [
        Worker(
            f"n8n-worker-{i}",
            base + 2 * i - 2,
            base + 2 * i - 1,
            settings.state_dir.resolve() / f"n8n-worker-{i}",
        )
        for i in range(1, count + 1)
    ]


def _renderable(name: str, **parts: str) -> None:
    for part, value in parts.items():
        if value and not _RENDERABLE.match(value):
            raise ConfigError(
                f"{name} is not usable", why=f"its {part} has characters n8nctl does not render"
            )


def _postgres_url(settings: Settings) -> Endpoint:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(settings.n8n_database_url.get_secret_value())
    except ArgumentError:
        url = None
    if url is None or not url.drivername.startswith("postgres") or not (url.host and url.database):
        raise ConfigError(
            "N8N_DATABASE_URL is not a PostgreSQL URL",
            why="n8n's queue mode needs PostgreSQL",
            fix="Write it as postgresql://user:password@host:5432/database.",
        )
    _renderable("N8N_DATABASE_URL", host=url.host, user=url.username or "", database=url.database)
    return Endpoint(url.host, url.port or 5432, url.username or ROLE, url.password or "", url.database)


def _redis_url(settings: Settings) -> Endpoint:
    url = urlsplit(settings.n8n_redis_url.get_secret_value())
    try:
        port = url.port or 6379
    except ValueError:
        port = 0
    database = url.path.strip("/") or "0"
    if url.scheme not in ("redis", "rediss") or not url.hostname or not port or not database.isdigit():
        raise ConfigError(
            "N8N_REDIS_URL is not a Redis URL", fix="Write it as redis://[user:password@]host:6379[/0]."
        )
    user = unquote(url.username or "")
    _renderable("N8N_REDIS_URL", host=url.hostname, user=user)
    return Endpoint(url.hostname, port, user, unquote(url.password or ""), database, url.scheme == "rediss")


class QueueMode:
    """The database and queue of one native queue-mode stack, resolved from settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.own_postgres = not settings.n8n_database_url.get_secret_value()
        self.own_redis = not settings.n8n_redis_url.get_secret_value()
        state = settings.state_dir.resolve()
        self.postgres_dir, self.redis_dir = state / "postgres", state / "redis"

    @property
    def postgres(self) -> Endpoint:
        if not self.own_postgres:
            return _postgres_url(self.settings)
        password = self.settings.postgres_password.get_secret_value()
        return Endpoint("127.0.0.1", self.settings.postgres_port, ROLE, password, ROLE)

    @property
    def redis(self) -> Endpoint:
        if not self.own_redis:
            return _redis_url(self.settings)
        return Endpoint(
            "127.0.0.1", self.settings.redis_port, "", self.settings.redis_password.get_secret_value(), "0"
        )

    @property
    def programs(self) -> tuple[str, ...]:
        """The stack's own data services, as supervisord programs (and `n8nctl logs` services)."""
        return (*(["postgres"] if self.own_postgres else []), *(["redis"] if self.own_redis else []))

    def database(self) -> str:
        """n8n's database as `guard_database` records it (no password, no path: a project may move)."""
        if self.own_postgres:
            return "this stack's own PostgreSQL"
        db = self.postgres
        return f"PostgreSQL {db.user}@{db.host}:{db.port}/{db.database}"

    # -- what supervisord.conf gets ------------------------------------------------------------------

    def n8n_env(self) -> dict[str, str]:
        """n8n's queue-mode environment, main and workers alike, without a secret."""
        db, redis = self.postgres, self.redis
        env = {
            "DB_TYPE": "postgresdb",
            "DB_POSTGRESDB_HOST": db.host,
            "DB_POSTGRESDB_PORT": str(db.port),
            "DB_POSTGRESDB_DATABASE": db.database,
            "DB_POSTGRESDB_USER": db.user,
            "EXECUTIONS_MODE": "queue",
            "QUEUE_BULL_REDIS_HOST": redis.host,
            "QUEUE_BULL_REDIS_PORT": str(redis.port),
            "QUEUE_BULL_REDIS_DB": redis.database,
            "QUEUE_HEALTH_CHECK_ACTIVE": "true",
        }
        if redis.user:
            env["QUEUE_BULL_REDIS_USERNAME"] = redis.user
        if redis.tls:
            env["QUEUE_BULL_REDIS_TLS"] = "true"
        return env

    def secret_env(self) -> dict[str, str]:
        """What n8n reads from supervisord's environment: the encryption key every process shares, and
        the passwords. Checked here, so a stack never starts half-configured."""
        key = self.settings.n8n_encryption_key.get_secret_value()
        if not key:
            raise ConfigError(
                "N8N_ENCRYPTION_KEY is not set",
                why="n8n's main process and its workers must decrypt credentials with one key",
                fix="Add it to .env (n8nctl init generates one).",
            )
        for own, name, value in (
            (self.own_postgres, "POSTGRES_PASSWORD", self.postgres.password),
            (self.own_redis, "REDIS_PASSWORD", self.redis.password),
        ):
            if own and not value:
                raise ConfigError(
                    f"{name} is not set",
                    why="the native queue stack runs its own server with a password",
                    fix=f"Add {name}=<a long random value> to .env (n8nctl init generates one).",
                )
        env = {"N8N_ENCRYPTION_KEY": key, "DB_POSTGRESDB_PASSWORD": self.postgres.password}
        if self.redis.password:
            env["QUEUE_BULL_REDIS_PASSWORD"] = self.redis.password
        return env

    def context(self) -> dict[str, object]:
        """The data services' programs for templates/native/supervisord.conf.j2."""
        context: dict[str, object] = {"n8n_env": self.n8n_env(), "postgres": None, "redis": None}
        if self.own_postgres:
            context["postgres"] = {
                "bin": postgres_bin(self.postgres_dir),
                "data": self.postgres_dir,
                "port": self.settings.postgres_port,
                "user": postgres_os_user(),
            }
        if self.own_redis:
            server = shutil.which(REDIS_SERVER) or "/usr/bin/redis-server"
            context["redis"] = {"bin": server, "dir": self.redis_dir, "port": self.settings.redis_port}
        return context

    def libpq_env(self) -> dict[str, str]:
        """pg_dump's, pg_restore's and psql's environment for n8n's database: the password reaches them
        here, never on a command line."""
        db = self.postgres
        return {
            **os.environ,
            "PGHOST": db.host,
            "PGPORT": str(db.port),
            "PGUSER": db.user,
            "PGPASSWORD": db.password,
            "PGDATABASE": db.database,
            "PGSSLMODE": "require" if db.tls else "prefer",
        }

    def tool(self, name: str) -> str:
        """A PostgreSQL client program (pg_dump, pg_restore, psql) of the server's major version."""
        return str(Path(postgres_bin(self.postgres_dir)).with_name(name))

    @contextmanager
    def serving_postgres(self, progress: Progress) -> Iterator[None]:
        """The stack's own PostgreSQL alone on its data while the block runs, initialised when there is
        none (a restore on a new host, a drill copy); for when supervisord, which runs it with the
        stack, does not. A configured server (N8N_DATABASE_URL) is used as it is."""
        if not self.own_postgres:
            self.check_postgres()
            yield
            return
        self._init_postgres(progress)
        command: list[str | Path] = [
            postgres_bin(self.postgres_dir), "-D", self.postgres_dir, "-p", str(self.settings.postgres_port),
            "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=",
        ]  # fmt: skip
        log_dir = self.settings.state_dir / "logs"
        log_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        with background(command, log_file=log_dir / "postgres.log", env=os.environ, user=postgres_os_user()):
            self.check_postgres()
            yield

    # -- before supervisord starts them --------------------------------------------------------------

    def prepare(self, progress: Progress) -> list[str]:
        """The stack's own PostgreSQL initialised (once), its Redis's ACL file written; what changed."""
        changes = []
        if self.own_postgres and self._init_postgres(progress):
            changes.append(f"initialised PostgreSQL in {self.postgres_dir} (role and database {ROLE!r})")
        if self.own_redis:
            self.redis_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            digest = hashlib.sha256(self.redis.password.encode()).hexdigest()
            acl = self.redis_dir / "users.acl"
            text = f"user default on #{digest} ~* &* +@all\n"
            if not acl.exists() or acl.read_text() != text:
                write_private(acl, text)
        return changes

    def _init_postgres(self, progress: Progress) -> bool:
        data, user = self.postgres_dir, postgres_os_user()
        data.mkdir(mode=0o700, parents=True, exist_ok=True)
        if user:
            _open_state_to(self.settings.state_dir, data, user)
        if (data / "PG_VERSION").exists():
            return False
        progress(f"initialising the stack's PostgreSQL in {data} (once)")
        bin_dir = Path(postgres_bin(data)).parent
        scratch = Path(tempfile.mkdtemp(prefix="n8nctl-pg-"))
        try:
            pwfile = scratch / "pw"
            write_private(pwfile, self.postgres.password)
            if user:
                shutil.chown(scratch, user, user)
                shutil.chown(pwfile, user, user)
            fix = f"Fix what it names, delete {data}, then n8nctl up again."
            as_user = ["runuser", "-u", user, "--"] if user else []
            run(
                [*as_user, bin_dir / "initdb", "-D", data, "-U", ROLE, f"--pwfile={pwfile}",
                 "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C"],
                what="initdb failed", fix=fix, cwd=scratch, timeout=120,
            )  # fmt: skip
            run(
                [*as_user, bin_dir / "postgres", "--single", "-D", data, "postgres"],
                what=f"creating the database {ROLE!r} failed", fix=fix, cwd=scratch, timeout=60,
                stdin=f"CREATE DATABASE {ROLE};\n",
            )  # fmt: skip
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return True

    # -- once supervisord runs them ------------------------------------------------------------------

    def check(self, timeout: float = CHECK_TIMEOUT) -> None:
        """PostgreSQL takes n8n's login and Redis its password, within `timeout` (the stack's own servers
        may still be starting). A refused password fails at once, naming the setting to fix."""
        self.check_postgres(timeout)
        self.check_redis(timeout)

    def check_postgres(self, timeout: float = CHECK_TIMEOUT) -> None:
        from n8nctl.adapters import postgres

        db = self.postgres
        url = postgres.url(db.user, db.password, db.host, db.port, db.database)
        if self.own_postgres:
            wrong = ConfigError(
                f"the stack's PostgreSQL ({self.postgres_dir}) refuses n8n's password",
                why="POSTGRES_PASSWORD changed since the server was initialised",
                fix="Put back the POSTGRES_PASSWORD that created it.",
            )
        else:
            wrong = ConfigError("N8N_DATABASE_URL refuses n8n's password", fix="Fix its password in .env.")
        _within(timeout, lambda: postgres.check_login(url, wrong_password=wrong))

    def check_redis(self, timeout: float = CHECK_TIMEOUT) -> None:
        from n8nctl.adapters import redis

        queue, setting = self.redis, "REDIS_PASSWORD" if self.own_redis else "N8N_REDIS_URL"
        wrong = ConfigError(
            "Redis refuses n8n's password", why=f"{setting} does not open it", fix="Fix it in .env."
        )

        def ping() -> None:
            redis.ping(
                queue.host,
                queue.port,
                user=queue.user,
                password=queue.password,
                database=int(queue.database),
                tls=queue.tls,
                wrong_password=wrong,
            )

        _within(timeout, ping)


def _within(timeout: float, probe: Callable[[], None]) -> None:
    """`probe` until it stops raising UnreachableError; the last one after `timeout` s."""
    errors: list[UnreachableError] = []

    def answers() -> bool:
        try:
            probe()
        except UnreachableError as exc:
            errors.append(exc)
            return False
        return True

    if not until(answers, timeout, interval=0.3):
        raise errors[-1]


def postgres_os_user() -> str | None:
    """PostgreSQL refuses to run as root: as root it runs as Debian's `postgres` user."""
    return "postgres" if os.geteuid() == 0 else None


def postgres_bin(data: Path) -> str:
    """The server binary: of the major version that initialised `data`, else the newest installed."""
    found = {Path(path).parts[-3]: path for path in glob.glob(POSTGRES_GLOB)}
    version_file = data / "PG_VERSION"
    wanted = version_file.read_text().strip() if version_file.exists() else None
    if wanted:
        if wanted not in found:
            raise ConfigError(
                f"PostgreSQL {wanted}'s server is not installed",
                why=f"{data} was initialised by PostgreSQL {wanted}",
                fix=f"apt-get install postgresql-{wanted} (or set N8N_DATABASE_URL).",
            )
        return found[wanted]
    if not found:
        raise ConfigError(
            "PostgreSQL's server is not installed",
            why="n8n's queue mode needs PostgreSQL, and N8N_DATABASE_URL names none",
            fix="apt-get install postgresql-15, or set N8N_DATABASE_URL.",
        )
    return found[max(found, key=int)]


def _open_state_to(state: Path, data: Path, user: str) -> None:
    """Let `user` (PostgreSQL's) reach `data` inside the state folder: the folder goes to its group
    with traverse-only access (0710: no listing; every file in it stays private to its owner)."""
    account = pwd.getpwnam(user)
    shutil.chown(data, user, user)
    os.chown(state, -1, account.pw_gid)
    state.chmod(0o710)
    reach = ["runuser", "-u", user, "--", "test", "-w", str(data)]
    try:
        run(reach, what="", fix="", timeout=30)
    except N8nctlError:
        raise ConfigError(
            f"PostgreSQL cannot reach {data} as the {user} user",
            why="it refuses to run as root, and a folder above the state folder is closed to other users",
            fix="Open those folders to others (chmod o+x), or set N8NCTL_STATE_DIR under one they can reach.",
        ) from None


MARKER = "n8nctl-database"  # in n8n's user folder, beside the data it describes
SQLITE = "SQLite"


def guard_database(folder: Path, wanted: str) -> None:
    """Refuse to start n8n on another database than the one holding its data: moving a stack from
    SQLite to PostgreSQL (or back, or to another server) must never happen by a changed setting alone.
    The record lives in n8n's user folder, so moving that folder aside is the deliberate switch."""
    marker = folder / MARKER
    if marker.exists():
        recorded: str | None = marker.read_text().strip()
    else:  # stacks from before the record: a SQLite file says where n8n's data is
        recorded = SQLITE if (folder / ".n8n" / "database.sqlite").exists() else None
    if recorded is not None and recorded != wanted:
        raise ConfigError(
            f"n8n's data is in {recorded}, and the settings now ask for {wanted}",
            why="n8n would start empty there, its workflows, credentials and executions left behind",
            fix="Put back the settings that had it (N8NCTL_QUEUE_MODE, N8N_DATABASE_URL), or, to start on "
            f"the new database on purpose, n8nctl down and move {folder} aside (RUNBOOK: native queue mode).",
        )


def record_database(folder: Path, wanted: str) -> None:
    """Once n8n runs healthy on its database: the record `guard_database` reads."""
    marker = folder / MARKER
    if not marker.exists():
        marker.write_text(wanted + "\n")
