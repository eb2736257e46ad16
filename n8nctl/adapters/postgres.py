"""The compose stack's PostgreSQL as the host reaches it (its port published on 127.0.0.1): check that
a password opens it, and give the bridge its own role and database there. Passwords travel only in
the connection and as SQL literals psycopg quotes; messages never carry them."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from n8nctl.errors import N8nctlError, UnreachableError

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)


def _connect(
    url: str, *, wrong_password: N8nctlError | None = None
) -> psycopg.Connection[tuple[object, ...]]:
    import psycopg
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    log.debug("postgres connect %s@%s:%s/%s", parsed.username, parsed.host, parsed.port, parsed.database)
    try:
        return psycopg.connect(
            host=parsed.host,
            port=parsed.port,
            user=parsed.username,
            password=parsed.password,
            dbname=parsed.database,
            connect_timeout=10,
            autocommit=True,
        )
    except psycopg.OperationalError as exc:
        if wrong_password is not None and "password authentication failed" in str(exc):
            raise wrong_password from None
        raise UnreachableError(
            f"PostgreSQL at {parsed.host}:{parsed.port} did not answer",
            why=type(exc).__name__,
            fix="n8nctl logs postgres; n8nctl status.",
        ) from None


def url(user: str, password: str, host: str, port: int, database: str) -> str:
    """A SQLAlchemy URL (psycopg) with its parts escaped."""
    from sqlalchemy.engine import URL

    parts = URL.create("postgresql+psycopg", user, password, host, port, database)
    return parts.render_as_string(hide_password=False)


def check_login(url: str, *, wrong_password: N8nctlError) -> None:
    """Connect once; `wrong_password` is raised when the server refuses the password."""
    _connect(url, wrong_password=wrong_password).close()


def ensure_database(admin_url: str, *, role: str, password: str) -> bool:
    """Create login `role` with `password` and a database of the same name it owns; True when created.
    An existing role gets `password` again, so .env stays the truth."""
    from psycopg import sql

    with _connect(admin_url) as connection:
        exists = connection.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
        verb = "ALTER" if exists else "CREATE"
        connection.execute(
            sql.SQL(verb + " ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(password))
        )
        if connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (role,)).fetchone():
            return False
        connection.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(role), sql.Identifier(role))
        )
        return True
