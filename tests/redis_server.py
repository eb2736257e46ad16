"""A throwaway redis-server for the tests (Debian's, installed by scripts/test): its own port on
127.0.0.1, a password, nothing saved to disk. `pause()` freezes it (SIGSTOP: a Redis that accepts
connections and never answers), `stop()` ends it, `start()` brings it back on the same port."""

from __future__ import annotations

import secrets
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import redis

from tests.harness import free_port, wait_until


@dataclass
class RedisServer:
    binary: str
    folder: Path
    port: int = field(default_factory=free_port)
    password: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--requirepass", self.password]
        args += ["--save", "", "--appendonly", "no", "--dir", str(self.folder)]
        args += ["--maxmemory-policy", "noeviction"]  # what the RUNBOOK asks of production
        with (self.folder / "redis.log").open("ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        wait_until(self.answers, 10, f"redis-server on port {self.port}")

    def answers(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"redis-server exited: {(self.folder / 'redis.log').read_text()[-2000:]}")
        client = redis.Redis(port=self.port, password=self.password, socket_timeout=1)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, password=self.password, socket_timeout=5)

    def pause(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGCONT)  # a paused server cannot act on SIGTERM
        self.proc.terminate()
        self.proc.wait(timeout=10)
