"""The native stack's supervisord.conf, read back by supervisor's own parser: regular mode, queue mode on
the stack's own PostgreSQL and Redis, and queue mode on configured ones. No secret in any of them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from supervisor.options import ServerOptions

from n8nctl.render import render_stack
from n8nctl.settings import Settings

SECRETS = {
    "n8n_encryption_key": "enc-key-7f3a9c",
    "postgres_password": "pg-pass-51d0e2",
    "redis_password": "redis-pass-a77b41",
}


def programs(settings: Settings, tmp_path: Path) -> tuple[str, dict[str, Any]]:
    """The rendered text, and each program as supervisord reads it (the project folder must exist)."""
    text = render_stack(
        settings.model_copy(update={"n8nctl_project_dir": tmp_path}), runtime="native", prod=False
    )["supervisord.conf"]
    conf = tmp_path / "supervisord.conf"
    conf.write_text(text)
    for folder in ("logs", "run"):  # as `up` makes them before supervisord starts
        (tmp_path / ".n8nctl" / folder).mkdir(parents=True)
    options = ServerOptions()
    options.realize(args=["-c", str(conf)])
    return text, {p.name: p for group in options.process_group_configs for p in group.process_configs}


def test_regular_mode_runs_n8n_and_the_bridge_only(
    settings_of: Callable[..., Settings], tmp_path: Path
) -> None:
    _, found = programs(settings_of(**SECRETS), tmp_path)
    assert set(found) == {"n8n", "bridge"}
    assert "EXECUTIONS_MODE" not in found["n8n"].environment
    assert found["n8n"].command.endswith(" start")


def test_queue_mode_runs_postgres_redis_main_and_a_program_per_worker(
    settings_of: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = settings_of(n8nctl_queue_mode=True, n8nctl_workers=3, n8nctl_worker_concurrency=7, **SECRETS)
    text, found = programs(settings, tmp_path)
    workers = [f"n8n-worker-{i}" for i in (1, 2, 3)]
    assert set(found) == {"postgres", "redis", "n8n", "bridge", *workers}

    main, *each = (found[name] for name in ["n8n", *workers])
    shared = {
        k: v for k, v in main.environment.items() if k.startswith(("DB_", "QUEUE_BULL_", "EXECUTIONS_"))
    }
    assert shared["EXECUTIONS_MODE"] == "queue" and shared["DB_TYPE"] == "postgresdb"
    assert shared["DB_POSTGRESDB_PORT"] == str(settings.postgres_port)
    assert shared["QUEUE_BULL_REDIS_PORT"] == str(settings.redis_port)
    for worker in each:
        assert worker.command.endswith(" worker --concurrency=7")
        assert {k: worker.environment[k] for k in shared} == shared, (
            "main and workers share one database and queue"
        )
        assert worker.environment["N8N_WORKER_SERVER_ADDRESS"] == "127.0.0.1"
        assert worker.environment["QUEUE_HEALTH_CHECK_ACTIVE"] == "true"
    # one host: every process its own ports and user folder
    ports = [main.environment["N8N_PORT"], main.environment["N8N_RUNNERS_BROKER_PORT"]]
    for worker in each:
        ports += [
            worker.environment["QUEUE_HEALTH_CHECK_PORT"],
            worker.environment["N8N_RUNNERS_BROKER_PORT"],
        ]
    assert len(set(ports)) == len(ports) == 8
    folders = {p.environment["N8N_USER_FOLDER"] for p in [main, *each]}
    assert len(folders) == 4

    postgres, redis = found["postgres"], found["redis"]
    assert postgres.priority < main.priority and redis.priority < main.priority, "data services start first"
    assert "-c listen_addresses=127.0.0.1" in postgres.command
    assert f"-p {settings.postgres_port}" in postgres.command
    assert "--bind 127.0.0.1" in redis.command and f"--port {settings.redis_port}" in redis.command
    assert "--aclfile" in redis.command and "requirepass" not in redis.command
    assert [value for value in SECRETS.values() if value in text] == []


def test_queue_mode_on_configured_postgres_and_redis_runs_neither(
    settings_of: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = settings_of(
        n8nctl_queue_mode=True,
        n8n_database_url="postgresql://app:db-pass-91c3@db.internal:6543/n8n_prod",
        n8n_redis_url="rediss://queue:redis-url-pass-44e0@cache.internal:6390/2",
        **SECRETS,
    )
    text, found = programs(settings, tmp_path)
    assert set(found) == {"n8n", "n8n-worker-1", "bridge"}
    env = found["n8n-worker-1"].environment
    assert (env["DB_POSTGRESDB_HOST"], env["DB_POSTGRESDB_PORT"], env["DB_POSTGRESDB_DATABASE"]) == (
        "db.internal",
        "6543",
        "n8n_prod",
    )
    assert env["DB_POSTGRESDB_USER"] == "app"
    assert (env["QUEUE_BULL_REDIS_HOST"], env["QUEUE_BULL_REDIS_PORT"], env["QUEUE_BULL_REDIS_DB"]) == (
        "cache.internal",
        "6390",
        "2",
    )
    assert env["QUEUE_BULL_REDIS_USERNAME"] == "queue" and env["QUEUE_BULL_REDIS_TLS"] == "true"
    assert "db-pass-91c3" not in text and "redis-url-pass-44e0" not in text
