"""The stack, whichever runtime runs it: `up` (the runtime starts its services, then n8n is
bootstrapped and the registry's workflows imported), `down`, and `status` as typed rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from n8nctl.health import dispatch_limits, probe_services
from n8nctl.runtimes import ActiveStack, Progress, create, current, forget, remember
from n8nctl.settings import Settings

if TYPE_CHECKING:
    from n8nctl.monitoring import BridgeFigures
    from n8nctl.store import Store
    from n8nctl.workflows import Outcome


@dataclass
class UpReport:
    runtime: str
    stack: str
    started: bool
    changes: list[str] = field(default_factory=list)
    workflows: list[Outcome] = field(default_factory=list)
    urls: dict[str, str] = field(default_factory=dict)
    logs: str = ""

    @property
    def unchanged(self) -> bool:
        return (
            not self.started
            and not self.changes
            and all(o.result == "unchanged" and o.activation == "unchanged" for o in self.workflows)
        )


@dataclass(frozen=True)
class StatusRow:
    service: str
    instance: str
    state: str
    healthy: bool
    version: str | None
    url: str | None


def up(settings: Settings, stack: ActiveStack, progress: Progress) -> UpReport:
    # here, not at the top: `status` and `down` need none of it (a cold `status` stays under 1 s)
    from n8nctl.adapters.n8n_api import N8nApi
    from n8nctl.bootstrap import bootstrap
    from n8nctl.registry import load_registry
    from n8nctl.workflows import WorkflowSync

    registry = load_registry(settings.registry_path)
    runtime = create(settings, stack)
    remember(settings, stack)  # first: `down` then finds a stack that failed to come up
    started = runtime.start(progress)
    report = UpReport(stack.runtime, stack.name, started.started, started.changes, logs=started.logs)
    api = N8nApi(settings.n8n_url, api_key=settings.n8n_api_key_value())
    try:
        booted = bootstrap(settings, api)
        report.changes += booted.changes
        report.workflows = WorkflowSync(settings, registry, api).import_all(booted.credential_ids)
    finally:
        api.close()
    runtime.after_bootstrap()
    report.urls = {"n8n editor": settings.n8n_url + "/", "bridge": settings.bridge_url + "/"}
    return report


def down(settings: Settings) -> bool:
    """Stop the running stack; False when it was not running. Data stays."""
    runtime = current(settings)
    stopped = runtime.down()
    forget(settings)
    return stopped


@dataclass
class StackStatus:
    services: list[StatusRow]
    kill_switch: dict[str, dict[str, Any]]
    """Workflow key ('*': all) -> when, who and why, for every kill-switch that is on."""
    bridge_last_hour: BridgeFigures | None
    """None when the bridge never ran here (no job store yet)."""
    dispatch_limits: dict[str, int] = field(default_factory=dict)
    """Workflow key -> the bridge's adaptive dispatch limit now; empty when the bridge is down."""

    @property
    def problems(self) -> list[str]:
        """Unhealthy services, then the bridge's figures over their thresholds."""
        down = dict.fromkeys(row.service for row in self.services if not row.healthy)  # once per service
        unhealthy = [f"unhealthy: {service}" for service in down]
        breaches = self.bridge_last_hour.breaches if self.bridge_last_hour else []
        return unhealthy + [breach.message for breach in breaches]


def status(settings: Settings, store: Store | None) -> StackStatus:
    """Services, kill-switches and the bridge's last hour; `store` is None before the bridge ran."""
    from n8nctl.monitoring import last_hour

    switches = (
        {}
        if store is None
        else {
            key: {"changed_at": row["changed_at"], "actor": row["actor"], "reason": row["reason"]}
            for key, row in store.switch_states().items()
            if row["killed"]
        }
    )
    figures = None if store is None else last_hour(settings, store)
    return StackStatus(services(settings), switches, figures, dispatch_limits(settings))


def services(settings: Settings) -> list[StatusRow]:
    """One row per service instance the runtime reports; n8n and the bridge must also answer their
    HTTP probes to count as healthy, and appear as DOWN when the runtime has no instance of them."""
    probes = probe_services(settings)
    rows = []
    for state in current(settings).states():
        probe = probes.get(state.service)
        rows.append(
            StatusRow(
                service=state.service,
                instance=state.instance,
                state=state.state,
                healthy=state.ready and (probe is None or probe.healthy),
                version=probe.version if probe else None,
                url=probe.url if probe else state.url,
            )
        )
    seen = {row.service for row in rows}
    rows += [
        StatusRow(name, "-", "DOWN", probe.healthy, probe.version, probe.url)
        for name, probe in probes.items()
        if name not in seen
    ]
    return rows
