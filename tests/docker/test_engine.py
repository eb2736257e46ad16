"""The test engine itself: a second engine on the same host (another test run, or a user's) gets a
slot of its own, and neither disturbs the other."""

from __future__ import annotations

import os
import subprocess

import pytest

from n8nctl.settings import Settings
from tests.docker_engine import Engine, own
from tests.stand_ins import BASE, build_base

pytestmark = pytest.mark.docker


@pytest.mark.skipif(bool(os.environ.get("DOCKER_HOST")), reason="the tests use the engine DOCKER_HOST names")
def test_a_second_engine_gets_its_own_socket_bridge_addresses_and_nat(docker_engine: Engine) -> None:
    build_base(docker_engine, print)
    second = own(Settings(_env_file=None).n8nctl_cache_dir)  # type: ignore[call-arg]
    try:
        assert second.host != docker_engine.host and second.gateway != docker_engine.gateway
        second.docker("load", input=subprocess.run(
            ["docker", "save", BASE], env={**os.environ, **docker_engine.env}, capture_output=True, check=True
        ).stdout)  # fmt: skip
        for engine in (docker_engine, second):  # each engine's containers reach the registry over its NAT
            engine.docker("run", "--rm", BASE, "bash", "-c", "echo > /dev/tcp/deb.debian.org/80")
    finally:
        second.stop()
    assert docker_engine.answers(), "stopping the second engine left the first one running"
    for command in second.teardown:
        if command[0] == "iptables":
            check = [part if part != "-D" else "-C" for part in command]
            assert subprocess.run(check, capture_output=True).returncode != 0, f"left behind: {command}"
