"""HTTP health of the stack's own services, as the host sees them: n8n's readiness and the bridge's
liveness plus its version (GET /v1/meta), and the bridge's adaptive dispatch limits (GET /metrics).
Probes never raise: a service that does not answer is unhealthy."""

from __future__ import annotations

from dataclasses import dataclass

from n8nctl.adapters import probe
from n8nctl.settings import Settings


@dataclass(frozen=True)
class Probe:
    healthy: bool
    version: str | None
    url: str


def probe_services(settings: Settings) -> dict[str, Probe]:
    n8n_ready = probe.status(f"{settings.n8n_url}/healthz/readiness") == 200
    bridge_up = probe.status(f"{settings.bridge_url}/healthz") == 200
    meta = probe.json_body(f"{settings.bridge_url}/v1/meta") if bridge_up else None
    return {
        "n8n": Probe(n8n_ready, settings.n8n_version, settings.n8n_url),
        "bridge": Probe(
            bridge_up, meta.get("version") if isinstance(meta, dict) else None, settings.bridge_url
        ),
    }


LIMIT_SERIES = "bridge_dispatch_concurrency_limit{"


def dispatch_limits(settings: Settings) -> dict[str, int]:
    """Each workflow's dispatch limit as the bridge at BRIDGE_URL holds it now (ADR 61); empty when
    it does not answer. With several replicas, the one the URL reaches."""
    text = probe.text(f"{settings.bridge_url}/metrics") or ""
    limits = {}
    for line in text.splitlines():
        if line.startswith(LIMIT_SERIES) and 'workflow_key="' in line:
            key = line.split('workflow_key="', 1)[1].split('"', 1)[0]
            limits[key] = round(float(line.rsplit(" ", 1)[1]))
    return limits
