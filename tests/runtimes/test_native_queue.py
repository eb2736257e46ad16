"""Native queue mode's pieces without n8n: the guard against moving n8n's data by a setting, the URLs of
a configured PostgreSQL and Redis, the secrets a stack refuses to start without, and the checks `up`
makes against a real redis-server (with the ACL file `up` writes) and a real PostgreSQL."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from n8nctl.errors import ConfigError, UnreachableError
from n8nctl.runtimes import choose
from n8nctl.runtimes.native_queue import SQLITE, QueueMode, guard_database, record_database
from n8nctl.settings import Settings
from tests.harness import free_port
from tests.pg import PostgresServer

KEY = "an-encryption-key-3e1"


@pytest.fixture
def settings_of(tmp_path: Path) -> Callable[..., Settings]:
    def make(**values: Any) -> Settings:
        defaults = {"n8nctl_project_dir": tmp_path, "n8nctl_queue_mode": True, "n8n_encryption_key": KEY}
        return Settings(_env_file=None, **(defaults | values))  # type: ignore[call-arg]

    return make


# -- the guard -----------------------------------------------------------------------------------------


def test_guard_records_the_first_database_and_refuses_another(tmp_path: Path) -> None:
    folder = tmp_path / "n8n"
    folder.mkdir()
    guard_database(folder, SQLITE)  # nothing recorded: any database
    guard_database(folder, "this stack's own PostgreSQL")
    record_database(folder, "this stack's own PostgreSQL")  # n8n came up healthy on it
    guard_database(folder, "this stack's own PostgreSQL")  # the same again: fine
    with pytest.raises(
        ConfigError, match="data is in this stack's own PostgreSQL, and the settings now ask for SQLite"
    ):
        guard_database(folder, SQLITE)


def test_guard_takes_an_existing_sqlite_database_as_the_record(tmp_path: Path) -> None:
    """A stack from before the record: its SQLite file says where n8n's data is."""
    folder = tmp_path / "n8n"
    (folder / ".n8n").mkdir(parents=True)
    (folder / ".n8n" / "database.sqlite").write_bytes(b"")
    with pytest.raises(ConfigError, match=f"move {folder} aside") as refused:
        guard_database(folder, "this stack's own PostgreSQL")
    assert refused.value.exit_code == 2
    shutil.move(folder, tmp_path / "n8n.sqlite-backup")  # the deliberate switch the message names
    guard_database(folder, "this stack's own PostgreSQL")
    folder.mkdir()
    record_database(folder, "this stack's own PostgreSQL")
    assert (folder / "n8nctl-database").read_text() == "this stack's own PostgreSQL\n"


def test_a_configured_database_is_recorded_without_its_password(settings_of: Callable[..., Settings]) -> None:
    queue = QueueMode(settings_of(n8n_database_url="postgresql://app:hunter2-pass@db.internal:6543/n8n"))
    assert queue.database() == "PostgreSQL app@db.internal:6543/n8n"


# -- settings ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("n8n_database_url", "mysql://u:p@h/db", "N8N_DATABASE_URL is not a PostgreSQL URL"),
        ("n8n_database_url", "postgresql://u:p@h", "N8N_DATABASE_URL is not a PostgreSQL URL"),
        ("n8n_database_url", "postgresql://u:p@h/db%22name", "N8N_DATABASE_URL is not usable"),
        ("n8n_redis_url", "http://h:6379", "N8N_REDIS_URL is not a Redis URL"),
        ("n8n_redis_url", "redis://h:6379/queue", "N8N_REDIS_URL is not a Redis URL"),
    ],
)
def test_bad_urls_are_one_line_config_errors_without_the_password(
    settings_of: Callable[..., Settings], field: str, value: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as refused:
        QueueMode(settings_of(**{field: value})).n8n_env()
    assert ":p@" not in refused.value.line()


@pytest.mark.parametrize(
    ("values", "missing"),
    [
        ({"n8n_encryption_key": ""}, "N8N_ENCRYPTION_KEY"),
        ({"postgres_password": ""}, "POSTGRES_PASSWORD"),
        ({"redis_password": ""}, "REDIS_PASSWORD"),
    ],
)
def test_a_stack_without_its_secrets_does_not_start(
    settings_of: Callable[..., Settings], values: dict[str, str], missing: str
) -> None:
    settings = settings_of(**({"postgres_password": "p", "redis_password": "r"} | values))
    with pytest.raises(ConfigError, match=f"{missing} is not set"):
        QueueMode(settings).secret_env()


def test_every_n8n_process_gets_the_same_key_and_the_passwords_from_the_environment(
    settings_of: Callable[..., Settings],
) -> None:
    queue = QueueMode(settings_of(postgres_password="pg-1", redis_password="rd-2"))
    assert queue.secret_env() == {
        "N8N_ENCRYPTION_KEY": KEY,
        "DB_POSTGRESDB_PASSWORD": "pg-1",
        "QUEUE_BULL_REDIS_PASSWORD": "rd-2",
    }
    assert not {"pg-1", "rd-2", KEY} & set(queue.n8n_env().values())


def test_queue_mode_never_lands_on_the_compose_dev_stack(settings_of: Callable[..., Settings]) -> None:
    """The compose dev stack would start n8n on its own database: a host with Docker must say native."""
    settings = settings_of()
    with pytest.raises(ConfigError, match="native runtime's queue mode"):
        choose(settings, None, prod=False, engine_answers=lambda: True)
    assert choose(settings, None, prod=False, engine_answers=lambda: False)[0] == "native"
    assert choose(settings, "native", prod=False, engine_answers=lambda: True)[0] == "native"
    assert choose(settings, None, prod=True, engine_answers=lambda: True)[0] == "compose"


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs PostgreSQL as another user")
def test_as_root_the_postgres_user_must_reach_the_state_folder(
    settings_of: Callable[..., Settings], tmp_path: Path
) -> None:
    tmp_path.chmod(0o700)  # a project folder closed to other users, as under /root
    queue = QueueMode(settings_of(postgres_password="p", redis_password="r"))
    with pytest.raises(ConfigError, match=r"PostgreSQL cannot reach .* as the postgres user"):
        queue.prepare(print)
    assert not (queue.postgres_dir / "PG_VERSION").exists()


# -- the checks `up` makes, against real servers ---------------------------------------------------------


@pytest.fixture
def redis_server(settings_of: Callable[..., Settings], tmp_path: Path) -> Iterator[Settings]:
    """The stack's own redis-server as `up` prepares it (users.acl from REDIS_PASSWORD)."""
    server = shutil.which("redis-server")
    if server is None:
        pytest.fail("NO REDIS: redis-server not found (apt-get install redis-server)", pytrace=False)
    settings = settings_of(
        redis_port=free_port(),
        redis_password="the-redis-password",
        n8n_database_url="postgresql://n8n:p@h/n8n",
    )
    queue = QueueMode(settings)
    queue.prepare(print)
    acl = queue.redis_dir / "users.acl"
    assert "the-redis-password" not in acl.read_text() and oct(acl.stat().st_mode)[-3:] == "600"
    command = [server, "--port", str(settings.redis_port), "--bind", "127.0.0.1", "--aclfile", str(acl)]
    process = subprocess.Popen(
        [*command, "--save", "", "--dir", str(queue.redis_dir)], stdout=subprocess.DEVNULL
    )
    yield settings
    process.terminate()
    process.wait(timeout=10)


def test_redis_takes_the_password_whose_hash_up_wrote_and_refuses_another(redis_server: Settings) -> None:
    QueueMode(redis_server).check_redis(timeout=10)  # waits while redis-server comes up
    wrong = redis_server.model_copy(update={"redis_password": SecretStr("not-the-password")})
    with pytest.raises(
        ConfigError, match="Redis refuses n8n's password: because REDIS_PASSWORD does not open it"
    ):
        QueueMode(wrong).check_redis(timeout=30)  # at once, not after the timeout
    anonymous = redis_server.model_copy(update={"redis_password": SecretStr("")})
    with pytest.raises(ConfigError, match="Redis refuses"):
        QueueMode(anonymous).check_redis(timeout=30)


def test_nothing_listening_is_unreachable_after_the_timeout(settings_of: Callable[..., Settings]) -> None:
    settings = settings_of(
        n8n_database_url="postgresql://n8n:p@127.0.0.1:9/n8n", n8n_redis_url="redis://127.0.0.1:9"
    )
    with pytest.raises(UnreachableError, match=r"PostgreSQL at 127\.0\.0\.1:9 did not answer"):
        QueueMode(settings).check_postgres(timeout=1)
    with pytest.raises(UnreachableError, match=r"Redis at 127\.0\.0\.1:9 did not answer"):
        QueueMode(settings).check_redis(timeout=1)


@pytest.mark.postgres
def test_postgres_refusing_the_password_fails_at_once_naming_the_setting(
    postgres_server: PostgresServer, settings_of: Callable[..., Settings]
) -> None:
    good = f"postgresql://postgres:{postgres_server.password}@127.0.0.1:{postgres_server.port}/postgres"
    QueueMode(settings_of(n8n_database_url=good)).check_postgres(timeout=5)
    bad = good.replace(postgres_server.password, "wrong-password")
    with pytest.raises(ConfigError, match="N8N_DATABASE_URL refuses n8n's password") as refused:
        QueueMode(settings_of(n8n_database_url=bad)).check_postgres(timeout=30)
    assert "wrong-password" not in refused.value.line()
