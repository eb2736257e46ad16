"""The compose runtime: render stacks/<stack>/, `docker compose up`, wait until every service is
healthy (or name the one that is not, with its last log lines), then bootstrap n8n and import the
workflows as the native runtime does. Docker is reached only through n8nctl/adapters/docker.py."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from n8nctl.adapters.docker import DOCKER, Compose, ContainerState
from n8nctl.errors import N8nctlError
from n8nctl.registry import load_registry
from n8nctl.render import render_stack, stack_dir, write_stack
from n8nctl.runtime import ActiveStack, active, forget, remember
from n8nctl.settings import Settings
from n8nctl.stack import HEALTH_TIMEOUT, Progress, UpReport, bootstrap_and_import

BASE_SERVICES = ("postgres", "redis", "n8n", "bridge")
WORKER = "n8n-worker"
BRIDGE_UID = 10001  # the Dockerfile's `bridge` user
BRIDGE_FILES = ("bridge.db", "bridge.db-wal", "bridge.db-shm", "n8n-api-key")


def services(stack: ActiveStack) -> tuple[str, ...]:
    return (*BASE_SERVICES, WORKER) if stack.prod else BASE_SERVICES


def project(settings: Settings, stack: ActiveStack, client_call: Sequence[str] = DOCKER) -> Compose:
    """The compose project of `stack`: its rendered files, and the env files its ${VAR}s read."""
    folder = stack_dir(settings, prod=stack.prod)
    files = [folder / "compose.yaml", *([folder / "compose.prod.yaml"] if stack.prod else [])]
    env_files = [settings.n8nctl_project_dir / ".env", runtime_env_file(settings)]
    return Compose(files, env_files, client_call)


def runtime_env_file(settings: Settings) -> Path:
    """Values `up` decides at run time, for ${VAR} in the compose files (no secret among them)."""
    return settings.state_dir / "compose.env"


def write_runtime_env(settings: Settings) -> None:
    """compose.env: the user the bridge container runs as (see `share_state`)."""
    uid, gid = share_state(settings)
    path = runtime_env_file(settings)
    text = f"N8NCTL_BRIDGE_USER={uid}:{gid}\n"
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def share_state(settings: Settings) -> tuple[int, int]:
    """The uid:gid that lets the bridge container and n8nctl on the host share the state folder: its
    owner, or, when root owns it, the image's unprivileged user, given the folder and the files the
    bridge opens (SQLite gives the journal files it creates as root the database file's owner)."""
    state = settings.state_dir
    state.mkdir(mode=0o700, parents=True, exist_ok=True)  # before docker would create it, root-owned
    owner = state.stat()
    if owner.st_uid not in (0, BRIDGE_UID):
        return owner.st_uid, owner.st_gid
    if os.geteuid() == 0:
        shared = [state, *(state / name for name in BRIDGE_FILES)]
        for path in (p for p in shared if p.exists()):
            os.chown(path, BRIDGE_UID, BRIDGE_UID)
    return BRIDGE_UID, BRIDGE_UID


def wait_healthy(
    compose: Compose,
    expected: Sequence[str],
    *,
    timeout: float = HEALTH_TIMEOUT,
    clock: Callable[[], float] = time.monotonic,
    pause: Callable[[float], None] = time.sleep,
) -> None:
    """Until every container of `expected` is running and healthy. A container that exited or turned
    unhealthy fails at once; one still starting fails at the deadline. Both name it, with its logs."""
    deadline = clock() + timeout
    while True:
        states = compose.states()
        failed = [s for s in states if s.failed]
        if failed:
            raise N8nctlError(
                f"{failed[0].service} did not come up ({_describe(failed[0])})",
                why="its last log lines:\n" + compose.logs([failed[0].service], tail=15),
                fix=f"n8nctl logs {failed[0].service}; fix the cause, then n8nctl up.",
            )
        waiting = [name for name in expected if not _ready(name, states)]
        if not waiting:
            return
        if clock() > deadline:
            raise N8nctlError(
                f"{', '.join(waiting)} not healthy after {timeout:.0f} s",
                why="last log lines:\n" + compose.logs(waiting, tail=15),
                fix=f"n8nctl logs {waiting[0]}; n8nctl down, then n8nctl up.",
            )
        pause(1.0)


def _ready(service: str, states: Sequence[ContainerState]) -> bool:
    mine = [s for s in states if s.service == service]
    return bool(mine) and all(s.ready for s in mine)


def _describe(state: ContainerState) -> str:
    return state.status if state.health is None else f"{state.status}, {state.health}"


def start(
    settings: Settings,
    progress: Progress,
    *,
    prod: bool,
    workers: int,
    client_call: Sequence[str] = DOCKER,
    timeout: float = HEALTH_TIMEOUT,
) -> tuple[UpReport, Compose]:
    """Render, `docker compose up`, wait until healthy: everything of `up` that is Docker's part."""
    stack = ActiveStack("compose", prod=prod, workers=workers)
    folder = stack_dir(settings, prod=prod)
    written = write_stack(render_stack(settings, runtime="compose", prod=prod), folder)
    write_runtime_env(settings)
    compose = project(settings, stack, client_call)
    report = UpReport(
        runtime="compose",
        started=not any(s.status == "running" for s in compose.states()),
        changes=[f"rendered {folder.name}/{name}" for name in written],
        logs="docker compose logs",
    )
    scale = f", {workers} n8n worker(s)" if prod else ""
    progress(f"docker compose up: {folder}{scale} (first run: pulls images and builds the bridge)")
    compose.up(scales={WORKER: workers} if prod else None)
    remember(settings, stack)
    progress(f"waiting for {', '.join(services(stack))} to be healthy...")
    wait_healthy(compose, services(stack), timeout=timeout)
    return report, compose


def up(settings: Settings, progress: Progress, *, prod: bool, workers: int) -> UpReport:
    registry = load_registry(settings.registry_path)
    report, _ = start(settings, progress, prod=prod, workers=workers)
    bootstrap_and_import(settings, registry, report)
    share_state(settings)  # the API key the bootstrap may have just written, as root
    return report


def down(settings: Settings, client_call: Sequence[str] = DOCKER) -> bool:
    stack = active(settings)
    compose = project(settings, stack, client_call)
    was_running = any(s.status == "running" for s in compose.states())
    compose.down()
    forget(settings)
    return was_running


def status(settings: Settings, client_call: Sequence[str] = DOCKER) -> list[ContainerState]:
    return project(settings, active(settings), client_call).states()


def _n8n_services(settings: Settings, service: str) -> list[str]:
    stack = active(settings)
    return [service, WORKER] if service == "n8n" and stack.prod else [service]


def stop_service(settings: Settings, service: str, client_call: Sequence[str] = DOCKER) -> None:
    project(settings, active(settings), client_call).stop(_n8n_services(settings, service))


def start_service(settings: Settings, service: str, client_call: Sequence[str] = DOCKER) -> None:
    project(settings, active(settings), client_call).start(_n8n_services(settings, service))
