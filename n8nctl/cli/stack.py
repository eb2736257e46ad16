from __future__ import annotations

import subprocess
import sys

import click

from n8nctl.cli.context import settings_from_env
from n8nctl.cli.output import emit, json_option
from n8nctl.errors import N8nctlError, NotFoundError


def _progress(message: str) -> None:
    click.echo(message, err=True)


@click.command()
def up() -> None:
    """Bring the stack up on its embedded defaults, or bring it back to its configured state.

    Native runtime (no Docker engine): installs the pinned n8n once (cached), renders
    stacks/<stack>/supervisord.conf, starts n8n and the bridge under supervisord, waits until both are
    healthy, bootstraps n8n (owner, API key, credentials from .env) and imports the registry's
    workflows. Creates .env with fresh secrets first when there is none. Running it again changes
    only what differs, and says so.

    \b
    Example:
      n8nctl up
      N8NCTL_STACK=second N8N_PORT=5700 N8N_RUNNERS_BROKER_PORT=5701 BRIDGE_PORT=8100 n8nctl up
    """
    from n8nctl import stack
    from n8nctl.envfile import write_env

    project_dir = settings_from_env().n8nctl_project_dir
    if not (project_dir / ".env").exists():
        generated, _ = write_env(project_dir)
        _progress(f"created .env (mode 0600) with new values for: {', '.join(generated)}")
    settings = settings_from_env()
    _progress("runtime: native (no Docker engine is used by this version)")
    report = stack.up(settings, _progress)
    for change in report.changes:
        _progress(f"  {change}")
    for outcome in report.workflows:
        note = "" if outcome.activation == "unchanged" else f", {outcome.activation}"
        _progress(f"  workflow {outcome.workflow_key}: {outcome.result}{note} (n8n id {outcome.workflow_id})")
    if (
        not report.started
        and not report.changes
        and all(o.result == "unchanged" and o.activation == "unchanged" for o in report.workflows)
    ):
        click.echo("already up; nothing changed")
    for name, url in report.urls.items():
        click.echo(f"{name}: {url}")
    click.echo(f"logs: {report.logs} (n8nctl logs [n8n|bridge] -f)")


@click.command()
def down() -> None:
    """Stop the native stack (n8n, the bridge and supervisord). Data stays in the state folder.

    \b
    Example:
      n8nctl down
    """
    from n8nctl import stack

    click.echo("stopped" if stack.down(settings_from_env()) else "was not running")


@click.command()
@json_option
def status(as_json: bool) -> None:
    """Health and version of each service; exits 1 when any is unhealthy.

    \b
    Example:
      n8nctl status
      n8nctl status --json
    """
    from n8nctl.native.supervisor import NativeStack
    from n8nctl.stack import health

    settings = settings_from_env()
    states = NativeStack(settings).states()
    services = health(settings)
    rows = [{"service": name, "state": states.get(name, "DOWN"), **info} for name, info in services.items()]
    emit(rows, as_json=as_json, columns=["service", "state", "healthy", "version", "url"])
    unhealthy = [row["service"] for row in rows if not row["healthy"]]
    if unhealthy:
        raise N8nctlError(f"unhealthy: {', '.join(unhealthy)}", fix="n8nctl logs SERVICE; n8nctl up.")


@click.command()
@click.argument("service", required=False, type=click.Choice(["n8n", "bridge", "supervisord"]))
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines.")
@click.option("-n", "--lines", default=50, show_default=True, help="Lines to show first.")
def logs(service: str | None, follow: bool, lines: int) -> None:
    """Show a service's log (all services when none is named).

    \b
    Example:
      n8nctl logs bridge -f
    """
    log_dir = settings_from_env().state_dir / "logs"
    files = [log_dir / f"{name}.log" for name in ([service] if service else ["supervisord", "n8n", "bridge"])]
    present = [str(f) for f in files if f.exists()]
    if not present:
        raise NotFoundError(f"no logs in {log_dir}", fix="Start the stack: n8nctl up.")
    command = ["tail", "-n", str(lines), *(["-F"] if follow else []), *present]
    sys.exit(subprocess.call(command))
