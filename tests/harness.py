"""Real processes and servers for the process tier: polling with a deadline, free ports, a service
subprocess with its log, and FlowBiz's callback receiver."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import uvicorn
from pydantic import SecretStr
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from n8nctl.bootstrap import hmac_text
from n8nctl.settings import Settings

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float, what: str) -> T:
    """Poll `predicate` until it returns something truthy, and return that; fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def stays(predicate: Callable[[], bool], duration: float, what: str) -> None:
    """Check that `predicate` holds for the whole of `duration` seconds (absence of further events)."""
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline:
        assert predicate(), f"{what} stopped holding"
        time.sleep(0.05)


def system_tool(name: str, *, also: tuple[str, ...] = (), installed_by: str) -> str:
    """The path of a system tool scripts/test installs (`installed_by` says how). Missing, its tests
    skip, except under CI, where they fail."""
    found = shutil.which(name) or next((p for p in also if Path(p).exists()), None)
    if found:
        return found
    message = f"{name} is not installed ({installed_by})"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_ports(count: int) -> int:
    """The first of `count` consecutive ports free on 127.0.0.1 (n8n workers take theirs from a base)."""
    while True:
        first = free_port()
        if first + count > 65535:
            continue
        sockets = []
        try:
            for port in range(first, first + count):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()


def clean_env() -> dict[str, str]:
    """This process's environment without any n8nctl setting, so a developer's shell cannot leak in."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("N8NCTL_", "BRIDGE_", "N8N_"))}


def secret_values(settings: Settings) -> dict[str, str]:
    """Every secret of a stack by name, in each form it could leak in: the value, the key inside a
    whsec_ secret (base64 and raw bytes), n8n's hmacSecret text and the n8n API key."""
    values = {
        name: field.get_secret_value()
        for name, field in settings
        if isinstance(field, SecretStr) and field.get_secret_value()
    }
    for name, value in list(values.items()):
        if value.startswith(("whsec_", "flowbiz:whsec_")):
            encoded = value.rsplit("whsec_", 1)[1]
            values[f"{name} (key)"] = encoded
            values[f"{name} (bytes)"] = base64.b64decode(encoded).hex()
    values["n8n hmacSecret"] = hmac_text(settings)
    values["n8n API key"] = settings.n8n_api_key_value()
    return values


def n8nctl(*args: str, env: dict[str, str], cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    """The n8nctl CLI of this checkout as a subprocess (as an operator runs it), output captured."""
    return subprocess.run(
        [str(Path(sys.executable).parent / "n8nctl"), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def http_status(url: str) -> int | None:
    try:
        return httpx.get(url, timeout=1.0).status_code
    except httpx.HTTPError:
        return None


class Service:
    """A subprocess that serves HTTP on 127.0.0.1; output goes to one log file shown on failure."""

    def __init__(self, name: str, args: list[str], *, env: dict[str, str], cwd: Path, health: str) -> None:
        self.name, self.args, self.env, self.cwd, self.health = name, args, env, cwd, health
        self.log = cwd / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                self.args, env=self.env, cwd=self.cwd, stdout=log, stderr=subprocess.STDOUT
            )

        def healthy() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.proc.returncode}:\n{self.output()}")
            return http_status(self.health) == 200

        try:
            wait_until(healthy, timeout, f"{self.name} at {self.health}")
        except AssertionError as exc:
            self.stop()
            raise AssertionError(f"{exc}\n--- {self.name} log ---\n{self.output()}") from None

    def kill(self) -> None:
        """SIGKILL: no shutdown handlers run, like a crash or an OOM kill."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


class BridgeService(Service):
    def start(self, timeout: float = 20.0) -> None:
        """`n8nctl bridge migrate` first, as `n8nctl up` does: the bridge refuses a store behind its code."""
        migrate = [str(Path(sys.executable).parent / "n8nctl"), "bridge", "migrate"]
        done = subprocess.run(
            migrate, env=self.env, cwd=self.cwd, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stderr
        super().start(timeout)


def bridge_service(env: dict[str, str], cwd: Path, port: int) -> Service:
    """`n8nctl bridge serve` on 127.0.0.1:`port` as a real process (not started yet)."""
    return BridgeService(
        "bridge",
        [str(Path(sys.executable).parent / "n8nctl"), "bridge", "serve", "--port", str(port)],
        env=env,
        cwd=cwd,
        health=f"http://127.0.0.1:{port}/healthz",
    )


class ServerThread:
    """An ASGI app served by uvicorn on `host`:`port` in a thread (lifespan on when asked); stops and
    starts again on the same port. `host` is 127.0.0.1 unless containers must reach it."""

    def __init__(self, app: Any, port: int, *, lifespan: str = "off", host: str = "127.0.0.1") -> None:
        self.app, self.port, self.lifespan, self.host = app, port, lifespan, host
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        config = uvicorn.Config(
            self.app, host=self.host, port=self.port, log_level="warning", lifespan=self.lifespan
        )
        server = self._server = uvicorn.Server(config)
        thread = self._thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        wait_until(lambda: server.started or not thread.is_alive(), 10, f"a server on port {self.port}")
        assert server.started, f"could not listen on port {self.port}"

    def stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout=10)
        assert not self._thread.is_alive(), f"the server on port {self.port} did not stop"
        self._server = None


class Receiver(ServerThread):
    """FlowBiz's callback endpoint in a server thread. Verifies every callback with the official
    `standardwebhooks` package and records (webhook-id, body); stops and restarts on the same port."""

    def __init__(self, port: int, secret: str, *, host: str = "127.0.0.1") -> None:
        super().__init__(Starlette(routes=[Route("/cb", self._receive, methods=["POST"])]), port, host=host)
        self.url = f"http://{host}:{port}/cb"
        self.webhook = Webhook(secret)
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.rejected: list[str] = []

    async def _receive(self, request: Request) -> JSONResponse:
        body = await request.body()
        try:
            self.webhook.verify(body, dict(request.headers))
        except WebhookVerificationError as exc:
            self.rejected.append(str(exc))
            return JSONResponse({"error": str(exc)}, status_code=401)
        self.calls.append((request.headers["webhook-id"], json.loads(body)))
        return JSONResponse({"ok": True})
