"""A throwaway PostgreSQL server for the tests: its own data directory, port and socket directory.

`initdb` and `pg_ctl` refuse to run as root, so as root they run as the `postgres` OS user. The server
listens on 127.0.0.1 only, with password (SCRAM) authentication, and is stopped by `stop()`.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SKIP_ENV = "N8NCTL_TEST_SKIP_POSTGRES"
START_DEADLINE = 30.0


def find_bin_dir() -> Path | None:
    """N8NCTL_TEST_PG_BIN, else Debian's newest /usr/lib/postgresql/<v>/bin, else initdb on PATH."""
    if configured := os.environ.get("N8NCTL_TEST_PG_BIN"):
        return Path(configured)
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PostgresServer:
    bin_dir: Path
    base: Path
    port: int
    password: str
    _databases: int = 0

    @classmethod
    def start(cls, bin_dir: Path, *, durable: bool = False) -> PostgresServer:
        """`durable`: fsync as in production (for measurements); tests skip the disk flush."""
        base = Path(tempfile.mkdtemp(prefix="n8nctl-pg-"))
        server = cls(bin_dir, base, _free_port(), secrets.token_urlsafe(16))
        if os.geteuid() == 0:  # the postgres user must own the data and socket directories
            shutil.chown(base, "postgres", "postgres")
        pwfile = base / "pw"
        pwfile.write_text(server.password)
        if os.geteuid() == 0:
            shutil.chown(pwfile, "postgres", "postgres")
        server._run(
            "initdb", "-D", str(server.data), "-U", "postgres", f"--pwfile={pwfile}",
            "--auth=scram-sha-256", "--no-sync", "--encoding=UTF8", "--locale=C",
        )  # fmt: skip
        options = f"-p {server.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={base} "
        options += "-c max_connections=300"
        if not durable:
            # Speed, not semantics: commits still wait for the WAL write (synchronous_commit stays on),
            # the disk flush is skipped on a throwaway cluster.
            options += " -c fsync=off -c full_page_writes=off"
        server._run("pg_ctl", "-D", str(server.data), "-l", str(server.log), "-o", options, "-W", "start")
        server._wait_ready()
        return server

    @property
    def data(self) -> Path:
        return self.base / "data"

    @property
    def log(self) -> Path:
        return self.base / "server.log"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres:{self.password}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database; returns its SQLAlchemy URL."""
        import psycopg

        self._databases += 1
        name = f"test_{self._databases}"
        with psycopg.connect(self._dsn(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name} TEMPLATE template0")
        return self.url(name)

    def query(self, sql: str) -> Any:
        import psycopg

        with psycopg.connect(self._dsn(), autocommit=True) as conn:
            row = conn.execute(sql).fetchone()
        return row[0] if row else None

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "-t", "30", "stop")
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    def _dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres password={self.password} dbname=postgres"

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_DEADLINE
        while time.monotonic() < deadline:
            ready = subprocess.run(
                [str(self.bin_dir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)], check=False
            )
            if ready.returncode == 0:
                return
            time.sleep(0.05)  # poll interval, not synchronisation
        tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else "(no log)"
        raise RuntimeError(f"PostgreSQL not ready on port {self.port} after {START_DEADLINE} s:\n{tail}")

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.bin_dir / program), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=self.base)
        if done.returncode != 0:
            raise RuntimeError(f"{program} failed ({done.returncode}): {done.stderr.strip() or done.stdout}")
