"""Redis as the host reaches it: is n8n's queue there, and does it take n8n's password? Messages carry
the address, never the password."""

from __future__ import annotations

import logging

from n8nctl.errors import N8nctlError, UnreachableError

log = logging.getLogger(__name__)


def ping(
    host: str,
    port: int,
    *,
    user: str,
    password: str,
    database: int,
    tls: bool,
    wrong_password: N8nctlError,
) -> None:
    """PING once; `wrong_password` is raised when Redis refuses the credentials."""
    import redis

    log.debug("redis ping %s:%s/%s", host, port, database)
    client = redis.Redis(
        host=host,
        port=port,
        username=user or None,
        password=password or None,
        db=database,
        ssl=tls,
        socket_connect_timeout=5,
        socket_timeout=5,
    )
    try:
        client.ping()
    except redis.AuthenticationError:
        raise wrong_password from None
    except redis.RedisError as exc:
        raise UnreachableError(
            f"Redis at {host}:{port} did not answer",
            why=type(exc).__name__,
            fix="Check that it runs there (the stack's own: n8nctl logs redis), then retry.",
        ) from None
    finally:
        client.close()
