"""The stack: `up` (install, render, start, wait, bootstrap, import), `status`, `down`, for the native
runtime; the compose runtime is n8nctl/compose.py. `down`, `stop_service` and `start_service` act on
whichever runtime `up` started (n8nctl/runtime.py)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from n8nctl.adapters import probe
from n8nctl.adapters.n8n_api import N8nApi
from n8nctl.bootstrap import bootstrap
from n8nctl.errors import N8nctlError
from n8nctl.native.install import ensure_n8n, node_bin_dir
from n8nctl.native.supervisor import NativeStack
from n8nctl.registry import Registry, load_registry
from n8nctl.render import native_context, render_native, write_stack
from n8nctl.runtime import active
from n8nctl.settings import Settings
from n8nctl.workflows import Outcome, WorkflowSync

Progress = Callable[[str], None]
HEALTH_TIMEOUT = 180.0


@dataclass
class UpReport:
    runtime: str
    started: bool
    changes: list[str] = field(default_factory=list)
    workflows: list[Outcome] = field(default_factory=list)
    urls: dict[str, str] = field(default_factory=dict)
    logs: str = ""


def health(settings: Settings) -> dict[str, dict[str, Any]]:
    """Per service: healthy, and the version it reports."""
    checks = {
        "n8n": (f"{settings.n8n_url}/healthz/readiness", None),
        "bridge": (f"{settings.bridge_url}/healthz", f"{settings.bridge_url}/v1/meta"),
    }
    result: dict[str, dict[str, Any]] = {}
    for service, (url, version_url) in checks.items():
        healthy = probe.status(url) == 200
        version = settings.n8n_version if service == "n8n" else None
        if healthy and version_url:
            meta = probe.json_body(version_url)
            version = meta.get("version") if isinstance(meta, dict) else None
        result[service] = {"healthy": healthy, "version": version, "url": url.rsplit("/", 1)[0]}
    return result


def wait_healthy(settings: Settings, stack: NativeStack, timeout: float = HEALTH_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while True:
        states = stack.states()
        for program, state in states.items():
            if state in ("FATAL", "BACKOFF", "EXITED"):
                raise N8nctlError(
                    f"{program} did not start ({state})",
                    why="its last log lines:\n" + stack.log_tail(program),
                    fix=f"See {stack.log_dir / (program + '.log')}.",
                )
        services = health(settings)
        if all(s["healthy"] for s in services.values()):
            return
        if time.monotonic() > deadline:
            waiting = [name for name, s in services.items() if not s["healthy"]]
            raise N8nctlError(
                f"{', '.join(waiting)} not healthy after {timeout:.0f} s",
                why="last log lines:\n" + "\n".join(stack.log_tail(name) for name in waiting),
                fix=f"See {stack.log_dir}; n8nctl down, then n8nctl up.",
            )
        time.sleep(0.5)


def up(settings: Settings, progress: Progress) -> UpReport:
    registry = load_registry(settings.registry_path)
    home = ensure_n8n(settings, progress)
    stack = NativeStack(settings)
    text = render_native(native_context(settings, n8n_home=home, node_dir=node_bin_dir()))
    changed = bool(write_stack({stack.conf.name: text}, stack.conf.parent))
    report = UpReport(runtime="native", started=stack.pid() is None, logs=str(stack.log_dir))
    env = dict(os.environ)
    if key := settings.n8n_encryption_key.get_secret_value():
        env["N8N_ENCRYPTION_KEY"] = key
    if report.started:
        progress(f"starting n8n {settings.n8n_version} and the bridge (native runtime, {stack.conf})")
        stack.start(env)
    elif changed:
        progress("the rendered config changed: applying it")
        stack.ctl("update")
        report.changes.append(f"applied the changed {stack.conf.name}")
    if not report.started:
        for program, state in stack.states().items():
            if state in ("STOPPED", "EXITED", "FATAL"):
                stack.ctl("start", program)
                report.changes.append(f"started {program} (was {state})")
    progress("waiting for n8n and the bridge to be healthy...")
    wait_healthy(settings, stack)
    return bootstrap_and_import(settings, registry, report)


def bootstrap_and_import(settings: Settings, registry: Registry, report: UpReport) -> UpReport:
    """The last steps of `up` on either runtime, once n8n answers on settings.n8n_url."""
    api = N8nApi(settings.n8n_url, api_key=settings.n8n_api_key_value())
    try:
        booted = bootstrap(settings, api)
        report.changes += booted.changes
        report.workflows = WorkflowSync(settings, registry, api).import_all(booted.credential_ids)
    finally:
        api.close()
    report.urls = {"n8n editor": settings.n8n_url + "/", "bridge": settings.bridge_url + "/"}
    return report


def down(settings: Settings) -> bool:
    """Stop the running stack; False when it was not running. Data stays."""
    if active(settings).runtime == "compose":
        from n8nctl import compose

        return compose.down(settings)
    return NativeStack(settings).stop()


def stop_service(settings: Settings, service: str) -> None:
    """Stop one service of the stack (the kill-switch stops n8n this way); the others keep running.
    On the prod compose stack, stopping n8n stops its queue-mode workers too: they run executions."""
    if active(settings).runtime == "compose":
        from n8nctl import compose

        compose.stop_service(settings, service)
        return
    NativeStack(settings).ctl("stop", service)


def start_service(settings: Settings, service: str) -> None:
    if active(settings).runtime == "compose":
        from n8nctl import compose

        compose.start_service(settings, service)
        return
    NativeStack(settings).ctl("start", service)
