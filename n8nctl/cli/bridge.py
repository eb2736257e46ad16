from __future__ import annotations

import click

from n8nctl.cli.context import settings_from_env
from n8nctl.cli.output import emit, json_option


@click.group()
def bridge() -> None:
    """The job bridge between FlowBiz and n8n."""


@bridge.command()
@click.option("--host", help="Address to listen on [default: BRIDGE_HOST, 127.0.0.1].")
@click.option("--port", type=click.IntRange(1, 65535), help="Port to listen on [default: BRIDGE_PORT, 8000].")
@click.option(
    "--log-level", default="info", show_default=True, type=click.Choice(["debug", "info", "warning", "error"])
)
def serve(host: str | None, port: int | None, log_level: str) -> None:
    """Run the bridge in the foreground (JSON logs on stderr). Ctrl-C stops it.

    \b
    Example:
      n8nctl bridge serve --port 8000
    """
    import uvicorn

    from n8nctl import logs
    from n8nctl.bridge.app import create_app
    from n8nctl.bridge.operator import socket_path
    from n8nctl.registry import load_registry
    from n8nctl.store import Store
    from n8nctl.store.core import answering

    settings = settings_from_env()
    store = Store(settings.database_url)
    try:  # here, before uvicorn, so that a refusal is one line and an exit code (Bridge.start checks too)
        with answering():
            store.check_schema()
    finally:
        store.close()
    logs.configure(log_level.upper())
    app = create_app(
        settings, load_registry(settings.registry_path), operator_socket=socket_path(settings.state_dir)
    )
    uvicorn.run(
        app,
        host=host or settings.bridge_host,
        port=port or settings.bridge_port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,
    )


@bridge.command()
@click.option("--sql", "as_sql", is_flag=True, help="Print the SQL instead (offline: connects to nothing).")
@json_option
def migrate(as_sql: bool, as_json: bool) -> None:
    """Upgrade the job store's schema to this n8nctl's head revision (alembic).

    `n8nctl up` runs it before it starts the bridge. Run it yourself before rolling out bridge
    replicas of a new version on a shared database: a bridge refuses to serve a schema behind its
    code (exit 9) instead of migrating at start. Safe to repeat, and to run from two hosts at once.
    With --sql it prints the statements that create the schema on an empty database of the store's
    engine (SQLite or PostgreSQL, from BRIDGE_DATABASE_URL), for a DBA to review or run.

    \b
    Example:
      n8nctl bridge migrate
      n8nctl bridge migrate --sql > bridge-schema.sql
    """
    from sqlalchemy.engine import make_url

    from n8nctl.runtimes import current
    from n8nctl.store import migrations

    runtime = current(settings_from_env())
    if as_sql:
        click.echo(migrations.upgrade_sql(make_url(runtime.store_url()).get_backend_name()), nl=False)
        return
    before, after = runtime.migrate_store()
    if as_json:
        emit({"from": before, "to": after, "migrated": before != after}, as_json=True)
    elif before == after:
        click.echo(f"job store already at schema {after}; nothing to do")
    else:
        click.echo(f"job store migrated from {before or 'empty'} to {after}")
