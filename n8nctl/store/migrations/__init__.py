"""Alembic migrations, run programmatically: `n8nctl bridge migrate` (and `n8nctl up`) upgrade a job
store to head; a bridge starting on a store whose revision is not this code's head refuses to serve
(docs/adr/0040)."""

from __future__ import annotations

import io
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from n8nctl.errors import SchemaError


def alembic_config(connection: Connection | None = None, *, output: io.StringIO | None = None) -> Config:
    config = Config(output_buffer=output)
    config.set_main_option("script_location", str(Path(__file__).parent))
    config.attributes["connection"] = connection
    return config


def upgrade(connection: Connection, revision: str = "head") -> None:
    command.upgrade(alembic_config(connection), revision)


def upgrade_sql(dialect: str) -> str:
    """The statements `upgrade` runs on an empty database of `dialect` (alembic's offline mode)."""
    output = io.StringIO()
    config = alembic_config(output=output)
    config.attributes["dialect"] = dialect
    command.upgrade(config, "head", sql=True)
    return output.getvalue()


def known_revisions() -> set[str]:
    """Every schema revision this code can migrate from (a backup's store restores at its own)."""
    return {script.revision for script in ScriptDirectory.from_config(alembic_config()).walk_revisions()}


def head() -> str:
    revision = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert revision is not None, "the store has migrations"
    return revision


def current(connection: Connection) -> str | None:
    """The revision a database is at; None for an empty one."""
    return MigrationContext.configure(connection).get_current_revision()


def check(connection: Connection) -> None:
    """Raise SchemaError unless the database is at this code's head revision."""
    at, wanted = current(connection), head()
    if at == wanted:
        return
    if at is None or at in known_revisions():
        raise SchemaError(
            f"the bridge's job store is at schema revision {at or 'none'}, behind this bridge's {wanted}",
            why="bridges never migrate as they start",
            fix="Run n8nctl bridge migrate (n8nctl up does), then start the bridge again.",
        )
    raise SchemaError(
        f"the bridge's job store is at schema revision {at}, which this bridge (head {wanted}) does not know",
        why="a newer n8nctl migrated it",
        fix="Run the bridge of the n8nctl version that migrated it, or a newer one.",
    )
