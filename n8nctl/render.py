"""Render stacks from templates/: pure functions from settings (and resolved paths) to text."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import jinja2

from n8nctl.settings import Settings

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


def environment(templates: Path = TEMPLATES) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # noqa: S701 (ini, YAML and nginx files: HTML escaping would corrupt them)
    )


def native_context(settings: Settings, *, n8n_home: Path, node_dir: Path) -> dict[str, Any]:
    state = settings.state_dir.resolve()
    return {
        "stack": settings.n8nctl_stack,
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
        "execution_max_age_hours": 336,
        "python": Path(sys.executable),
        "bridge_host": settings.bridge_host,
        "bridge_port": settings.bridge_port,
    }


def render_native(context: dict[str, Any]) -> str:
    return environment().get_template("native/supervisord.conf.j2").render(**context)
