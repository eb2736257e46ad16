"""The operator socket: `n8nctl kill` turns a kill-switch on through the running bridge (ADR 62).

The kill command's first effect must not wait for its own imports: on a saturated host SQLAlchemy,
pydantic and the registry cost the command seconds before it could write the switch itself. The
bridge has them loaded, so the command sends one JSON line to a Unix socket in the state folder (the
folder's permissions are the authentication: 0700, the socket 0600) and the bridge stores the switch
as the command would, then refreshes its own view at once. Other replicas read the stored switch
within their cache time. When no bridge answers, the command writes the switch itself, as before.

This module imports only the standard library, and asyncio (a fifth of the command's imports) only
on the bridge's side: the client side runs before anything else is loaded.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncio

    from n8nctl.bridge.service import Bridge

log = logging.getLogger("n8nctl.bridge")

SOCKET_NAME = "bridge.sock"
MAX_PATH = 107  # bytes of a Unix socket's path (sun_path holds 108 with the terminating NUL)
MAX_REQUEST = 4096
ANSWER_TIMEOUT = 3.0  # the command then writes the switch itself


def socket_path(state_dir: Path) -> Path:
    return state_dir / SOCKET_NAME


def ask_kill(path: Path, workflow_key: str | None, *, reason: str, actor: str) -> bool:
    """Ask the bridge listening at `path` to turn on the switch of `workflow_key` (None: all).
    True once it has stored it; False when no bridge answered or it refused (the caller then
    writes the switch itself, and reports what is wrong)."""
    request = json.dumps({"kill": workflow_key, "reason": reason, "actor": actor}).encode() + b"\n"
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(ANSWER_TIMEOUT)
            conn.connect(os.fspath(path))
            conn.sendall(request)
            answer = conn.makefile("rb").readline(MAX_REQUEST)
        return bool(json.loads(answer).get("ok"))
    except (OSError, ValueError, AttributeError):
        return False


async def listen(bridge: Bridge, path: Path) -> asyncio.Server | None:
    """Serve the operator socket at `path`; None when it cannot be had (logged): the kill command
    then writes the switch itself. A live socket there belongs to another replica on this host."""
    import asyncio

    if len(os.fsencode(path)) > MAX_PATH:
        log.warning("operator socket not opened: its path %s is longer than %d bytes", path, MAX_PATH)
        return None
    if path.is_socket():
        if await _answers(path):
            log.info("operator socket %s is served by another bridge on this host", path)
            return None
        path.unlink()  # left by a bridge that died
    try:
        server = await asyncio.start_unix_server(
            lambda r, w: _serve_one(bridge, r, w), path=os.fspath(path), limit=MAX_REQUEST
        )
    except OSError as exc:
        log.warning("operator socket not opened at %s: %s", path, exc.strerror)
        return None
    path.chmod(0o600)
    return server


async def close(server: asyncio.Server | None, path: Path) -> None:
    if server is None:
        return
    server.close()
    await server.wait_closed()
    path.unlink(missing_ok=True)


async def _answers(path: Path) -> bool:
    import asyncio

    try:
        _, writer = await asyncio.wait_for(asyncio.open_unix_connection(os.fspath(path)), 1.0)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True


async def _serve_one(bridge: Bridge, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    import asyncio

    answer: dict[str, Any]
    try:
        async with asyncio.timeout(ANSWER_TIMEOUT):
            request = json.loads(await reader.readline())
        key, reason, actor = request["kill"], request["reason"], request["actor"]
        if (
            not (key is None or isinstance(key, str))
            or not isinstance(reason, str)
            or not isinstance(actor, str)
        ):
            raise TypeError
    except (ValueError, KeyError, TypeError, TimeoutError):
        answer = {"ok": False, "error": "malformed request"}
    else:
        answer = await bridge.switches.turn_on(key, reason=reason, actor=actor)
    with contextlib.suppress(OSError):
        writer.write(json.dumps(answer).encode() + b"\n")
        await writer.drain()
        writer.close()
