"""supervisord's program states read over its XML-RPC socket, against a real supervisord: the same names
and states `supervisorctl status` prints, and one explained error when supervisord is gone."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from n8nctl.adapters.supervisor import program_states
from n8nctl.errors import N8nctlError

pytestmark = pytest.mark.process

BIN = Path(sys.executable).parent
CONF = """\
[unix_http_server]
file={run}/supervisor.sock
chmod=0700

[supervisord]
logfile={run}/supervisord.log
pidfile={run}/supervisord.pid
nodaemon=false

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{run}/supervisor.sock

[program:bridge]
command=sleep 600

[program:n8n]
command=sleep 600
autostart=false

[program:broken]
command=false
startsecs=1
startretries=0
autorestart=false

[group:pool]
programs=n8n-worker-1

[program:n8n-worker-1]
command=sleep 600
"""


@pytest.fixture
def supervisord(tmp_path: Path) -> Iterator[Path]:
    conf = tmp_path / "supervisord.conf"
    conf.write_text(CONF.format(run=tmp_path))
    subprocess.run([BIN / "supervisord", "-c", conf], check=True, timeout=30)
    try:
        yield conf
    finally:
        pid = int((tmp_path / "supervisord.pid").read_text())
        subprocess.run(["kill", str(pid)], check=False)
        deadline = time.monotonic() + 30
        while (tmp_path / "supervisord.pid").exists() and time.monotonic() < deadline:
            time.sleep(0.1)


def _supervisorctl_status(conf: Path) -> dict[str, str]:
    output = subprocess.run(
        [BIN / "supervisorctl", "-c", conf, "status"], capture_output=True, text=True, timeout=30, check=False
    ).stdout
    return {line.split()[0]: line.split()[1] for line in output.splitlines() if line.strip()}


def test_states_match_what_supervisorctl_shows(supervisord: Path) -> None:
    socket = supervisord.parent / "supervisor.sock"
    deadline = time.monotonic() + 30
    while program_states(socket, fix="-").get("broken") not in ("FATAL", "EXITED", "BACKOFF"):
        assert time.monotonic() < deadline, program_states(socket, fix="-")
        time.sleep(0.2)
    states = program_states(socket, fix="-")
    assert states == _supervisorctl_status(supervisord)
    assert states["bridge"] in ("STARTING", "RUNNING")
    assert states["n8n"] == "STOPPED"
    assert states["pool:n8n-worker-1"] in ("STARTING", "RUNNING")


def test_no_supervisord_is_one_explained_error(tmp_path: Path) -> None:
    with pytest.raises(N8nctlError) as error:
        program_states(tmp_path / "supervisor.sock", fix="See supervisord.log.")
    assert "supervisord did not report its programs" in error.value.line()
    assert "See supervisord.log." in error.value.line()
