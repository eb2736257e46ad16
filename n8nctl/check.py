"""`n8nctl check`, for cron: what is wrong now (services, thresholds, webhook routes), and the alerts
and recoveries to post, each once: the problems that fire are kept in <state dir>/check-state.json
between runs, so an alert is posted when it starts and a recovery when it clears, never twice in a
row."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from dataclasses import dataclass, field

from n8nctl.adapters import probe
from n8nctl.adapters.n8n_api import N8nApi
from n8nctl.envfile import write_private
from n8nctl.errors import N8nctlError, NotFoundError, UnreachableError
from n8nctl.monitoring import BridgeFigures, last_hour
from n8nctl.registry import Registry
from n8nctl.settings import Settings
from n8nctl.store import Store


@dataclass(frozen=True)
class Problem:
    key: str
    """Stable between runs: what makes an alert 'the same alert'."""
    message: str


@dataclass
class CheckReport:
    problems: list[Problem]
    figures: BridgeFigures | None
    alerted: list[str] = field(default_factory=list)
    recovered: list[str] = field(default_factory=list)


def find_problems(
    settings: Settings, registry: Registry, open_store: Callable[[], Store]
) -> tuple[list[Problem], BridgeFigures | None]:
    problems: list[Problem] = []
    if probe.status(f"{settings.bridge_url}/healthz") != 200:
        problems.append(
            Problem("bridge_down", f"the bridge at {settings.bridge_url} does not answer /healthz")
        )
    n8n_up = probe.status(f"{settings.n8n_url}/healthz/readiness") == 200
    if not n8n_up:
        problems.append(Problem("n8n_down", f"n8n at {settings.n8n_url} is not ready (/healthz/readiness)"))
    figures = None
    killed: set[str] = set()
    try:
        store = open_store()
    except (NotFoundError, UnreachableError) as exc:
        problems.append(Problem("store", f"the job store cannot be read: {exc.line()}"))
    else:
        try:
            figures = last_hour(settings, store)
            killed = {key for key, row in store.switch_states().items() if row["killed"]}
        finally:
            store.close()
        problems += [Problem(f"threshold:{b.figure}", f"bridge: {b.message}") for b in figures.breaches]
    if n8n_up and "*" not in killed:
        problems += _unrouted(settings, registry, killed)
    return problems, figures


def _unrouted(settings: Settings, registry: Registry, killed: set[str]) -> list[Problem]:
    """n8n can report a workflow published whose webhook is not registered: probe every route the
    bridge dispatches to (enabled in the registry, not killed)."""
    api = N8nApi(settings.n8n_url)
    try:
        return [
            Problem(
                f"webhook:{key}",
                f"n8n does not route the webhook of {key} (POST /webhook/{entry.webhook_path} answers 404): "
                "its jobs cannot run",
            )
            for key, entry in registry.workflows.items()
            if entry.enabled and key not in killed and not api.webhook_registered(entry.webhook_path)
        ]
    finally:
        api.close()


def check(
    settings: Settings,
    registry: Registry,
    open_store: Callable[[], Store],
    *,
    post: Callable[[str], None] | None,
) -> CheckReport:
    """Find the problems; with `post`, send an alert for each new one and a recovery for each one
    that cleared since the last run. A failed post leaves that change for the next run, then raises."""
    problems, figures = find_problems(settings, registry, open_store)
    report = CheckReport(problems, figures)
    if post is None:
        return report
    state_file = settings.state_dir / "check-state.json"
    firing: dict[str, str] = json.loads(state_file.read_text())["firing"] if state_file.exists() else {}
    now = {p.key: p.message for p in problems}
    where = settings.n8nctl_stack or socket.gethostname()  # which stack, or which host, in the chat
    changes = [
        (key, f"n8nctl {where}: ALERT: {message}") for key, message in now.items() if key not in firing
    ]
    changes += [(key, f"n8nctl {where}: RECOVERED: {firing[key]}") for key in firing if key not in now]
    failure: N8nctlError | None = None
    for key, text in changes:
        try:
            post(text)
        except N8nctlError as exc:
            failure = failure or exc
            continue
        if key in now:
            firing[key] = now[key]
            report.alerted.append(key)
        else:
            del firing[key]
            report.recovered.append(key)
    write_private(state_file, json.dumps({"firing": firing}, indent=2) + "\n")
    if failure is not None:
        raise failure
    return report
