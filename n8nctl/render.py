"""Render stacks from templates/: pure functions from settings (and resolved paths) to text.

`render_stack` returns every file of one stack as {relative path: text}; `write_stack` and `stack_drift`
are the only functions here that touch the disk.
"""

from __future__ import annotations

import difflib
import sys
from pathlib import Path
from typing import Any, Literal

import jinja2

from n8nctl import __version__
from n8nctl.errors import ConfigError
from n8nctl.settings import Settings

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
Runtime = Literal["compose", "native"]
EXECUTION_MAX_AGE_HOURS = 336  # two weeks of n8n execution data; the bridge's audit keeps the rest
EXECUTION_MAX_COUNT = 50_000
# Bridge settings the compose file sets itself (container paths, service names) or that are not the
# bridge's at runtime; every other BRIDGE_* setting is passed through from .env.
_BRIDGE_SET_BY_COMPOSE = {
    "bridge_host",
    "bridge_port",
    "bridge_public_url",
    "bridge_registry_path",
    "bridge_image",
    "bridge_base_image",
    "bridge_postgres_password",
}


def environment(templates: Path = TEMPLATES) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # noqa: S701 (ini, YAML and nginx files: HTML escaping would corrupt them)
    )


def native_context(settings: Settings, *, n8n_home: Path, node_dir: Path, workers: int) -> dict[str, Any]:
    """`workers`: n8n workers in queue mode (N8NCTL_QUEUE_MODE; `up --workers` may differ from
    N8NCTL_WORKERS)."""
    state = settings.state_dir.resolve()
    queue = None
    if settings.n8nctl_queue_mode:
        from n8nctl.runtimes.native_queue import QueueMode
        from n8nctl.runtimes.native_queue import workers as worker_list

        queue = QueueMode(settings).context() | {
            "workers": worker_list(settings, workers),
            "concurrency": settings.n8nctl_worker_concurrency,
        }
    return {
        "queue": queue,
        "stack": settings.stack_name(prod=False),
        "project_dir": settings.n8nctl_project_dir.resolve(),
        "state_dir": state,
        "run_dir": state / "run",
        "log_dir": state / "logs",
        "n8n_dir": state / "n8n",
        "node": node_dir / "node",
        "node_dir": node_dir,
        "n8n_bin": n8n_home / "node_modules" / "n8n" / "bin" / "n8n",
        "n8n_port": settings.n8n_port,
        "n8n_broker_port": settings.n8n_runners_broker_port,
        "execution_max_age_hours": EXECUTION_MAX_AGE_HOURS,
        # the installed console script: `python -m n8nctl` in the project folder would import a
        # stale checkout's package before the installed one
        "n8nctl": Path(sys.executable).parent / "n8nctl",
        "bridge_host": settings.bridge_host,
        "bridge_port": settings.bridge_port,
    }


def render_native(context: dict[str, Any]) -> str:
    return environment().get_template("native/supervisord.conf.j2").render(**context)


def images(settings: Settings) -> dict[str, str]:
    """Every image the compose stacks run, with its tag: the one place they are decided."""
    return {
        "n8n": f"{settings.n8n_image}:{settings.n8n_version}",
        "bridge": f"{settings.bridge_image}:{__version__}",
        "bridge_base": settings.bridge_base_image,
        "postgres": settings.postgres_image,
        "redis": settings.redis_image,
    }


def compose_context(settings: Settings, *, prod: bool) -> dict[str, Any]:
    return {
        "stack": settings.stack_name(prod=prod),
        "prod": prod,
        "images": images(settings),
        "n8n_port": settings.n8n_port,
        "bridge_port": settings.bridge_port,
        "postgres_port": settings.postgres_port,
        "state_dir": settings.state_dir.absolute(),
        "bridge_env": sorted(
            name.upper()
            for name in Settings.model_fields
            if name.startswith("bridge_") and name not in _BRIDGE_SET_BY_COMPOSE
        ),
        "workers": settings.n8nctl_workers,
        "worker_concurrency": settings.n8nctl_worker_concurrency,
        "execution_max_age_hours": EXECUTION_MAX_AGE_HOURS,
        "execution_max_count": EXECUTION_MAX_COUNT,
        "editor_server_name": settings.nginx_editor_server_name,
    }


def render_compose(context: dict[str, Any]) -> dict[str, str]:
    """compose.yaml, plus compose.prod.yaml (the override) for the prod stack."""
    env = environment()
    files = {"compose.yaml": env.get_template("compose/compose.yaml.j2").render(**context)}
    if context["prod"]:
        files["compose.prod.yaml"] = env.get_template("compose/compose.prod.yaml.j2").render(**context)
    return files


def nginx_context(settings: Settings, *, prod: bool) -> dict[str, Any]:
    certificate, certificate_key = settings.tls_files
    return {
        "stack": settings.stack_name(prod=prod),
        "snippets": settings.n8nctl_project_dir.absolute() / "nginx",
        "server_name": settings.nginx_server_name,
        "editor_server_name": settings.nginx_editor_server_name,
        "listen": settings.nginx_listen,
        "http_listen": settings.nginx_http_listen,
        "certificate": certificate,
        "certificate_key": certificate_key,
        "rate": settings.nginx_rate_limit,
        "burst": settings.nginx_rate_burst,
        "max_body_bytes": settings.bridge_max_body_bytes,
        "editor_allow": settings.editor_allow,
        "htpasswd_file": settings.htpasswd_file.absolute(),
        "bridge_port": settings.bridge_port,
        "n8n_port": settings.n8n_port,
    }


def render_nginx(context: dict[str, Any]) -> str:
    return environment().get_template("nginx/n8nctl.conf.j2").render(**context)


def alerts_context(settings: Settings, *, prod: bool) -> dict[str, Any]:
    thresholds = {
        "job_failure_rate": settings.n8nctl_alert_job_failure_rate,
        "callback_failure_rate": settings.n8nctl_alert_callback_failure_rate,
        "latency_p95_seconds": settings.n8nctl_alert_latency_p95_seconds,
        "queue_depth": settings.n8nctl_alert_queue_depth,
        "dead_letters": settings.n8nctl_alert_dead_letters,
        "min_sample": settings.n8nctl_alert_min_sample,
    }
    for rate in ("job_failure_rate", "callback_failure_rate"):
        thresholds[f"{rate}_percent"] = round(thresholds[rate] * 100, 1)
    return {"stack": settings.stack_name(prod=prod), "thresholds": thresholds}


def render_alerts(context: dict[str, Any]) -> str:
    return environment().get_template("monitoring/alerts.yml.j2").render(**context)


def render_monitoring(settings: Settings, *, prod: bool) -> dict[str, str]:
    """The stack's Prometheus alert rules, {path relative to its stack folder: text}."""
    return {"prometheus/alerts.yml": render_alerts(alerts_context(settings, prod=prod))}


def render_stack(settings: Settings, *, runtime: Runtime, prod: bool) -> dict[str, str]:
    """Every file of one stack, {path relative to its stack folder: text}: the runtime's files, the
    nginx site config and the Prometheus alert rules. `up` and `render` write the same set, so
    `render --check` finds no drift in a stack `up` started."""
    if runtime == "native":
        if prod:
            raise ConfigError(
                "the prod stack runs on the compose runtime only",
                why="its hardening (limits, restarts, log rotation) is compose's; the native runtime's queue "
                "mode is N8NCTL_QUEUE_MODE=true",
                fix="Use --runtime compose (or no --runtime) with --prod.",
            )
        from n8nctl.runtimes.n8n_npm import n8n_home, node_bin_dir

        context = native_context(
            settings, n8n_home=n8n_home(settings), node_dir=node_bin_dir(), workers=settings.n8nctl_workers
        )
        files = {"supervisord.conf": render_native(context)}
    else:
        files = render_compose(compose_context(settings, prod=prod))
    files["nginx/n8nctl.conf"] = render_nginx(nginx_context(settings, prod=prod))
    return files | render_monitoring(settings, prod=prod)


def write_stack(files: dict[str, str], directory: Path) -> list[str]:
    """Write the files that differ from what is on disk; return their relative paths."""
    changed = []
    for relative, text in files.items():
        path = directory / relative
        if path.exists() and path.read_text() == text:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        changed.append(relative)
    return changed


def stack_drift(files: dict[str, str], directory: Path) -> str:
    """A unified diff from the files on disk to a fresh render; empty when they are the same."""
    diff: list[str] = []
    for relative, text in files.items():
        path = directory / relative
        on_disk = path.read_text() if path.exists() else ""
        diff += difflib.unified_diff(
            on_disk.splitlines(keepends=True),
            text.splitlines(keepends=True),
            fromfile=f"{path}{'' if path.exists() else ' (missing)'}",
            tofile=f"{relative} (fresh render)",
        )
    return "".join(diff)
