from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING

import click

from n8nctl.cli.context import settings_from_env
from n8nctl.cli.output import emit, json_option
from n8nctl.errors import ConfigError, N8nctlError, NotFoundError

if TYPE_CHECKING:
    from n8nctl.monitoring import BridgeFigures


def _progress(message: str) -> None:
    click.echo(message, err=True)


@click.command()
@click.option("--prod", is_flag=True, help="The hardened compose stack (stacks/prod/), n8n in queue mode.")
@click.option(
    "--workers",
    type=click.IntRange(1, 32),
    help="n8n queue-mode workers (the prod stack, or N8NCTL_QUEUE_MODE=true) [default: N8NCTL_WORKERS, 1].",
)
@click.option(
    "--runtime",
    type=click.Choice(["compose", "native"]),
    help="Force a runtime [default: N8NCTL_RUNTIME=auto: compose when a Docker engine answers].",
)
@json_option
def up(prod: bool, workers: int | None, runtime: str | None, as_json: bool) -> None:
    """Bring the stack up on its embedded defaults, or bring it back to its configured state.

    Chooses the runtime and says which: compose when a Docker engine answers (renders
    stacks/<stack>/compose.yaml, runs it with docker compose), else native (installs the pinned n8n
    once, cached, and runs n8n and the bridge under supervisord; with N8NCTL_QUEUE_MODE=true, n8n's
    main process and N8NCTL_WORKERS workers on PostgreSQL and Redis). Migrates the bridge's job
    store before the bridge starts. Waits until every service is
    healthy (or names the one that is not, with its last log lines), bootstraps n8n (owner, API key,
    credentials from .env) and imports the registry's workflows. Creates .env with fresh secrets
    first when there is none. Running it again changes only what differs, and says so.

    \b
    Example:
      n8nctl up
      n8nctl up --prod --workers 3
      n8nctl up --runtime native
      n8nctl up --workers 3      # with N8NCTL_QUEUE_MODE=true in .env: three native workers
      N8NCTL_STACK=second N8N_PORT=5700 N8N_RUNNERS_BROKER_PORT=5701 BRIDGE_PORT=8100 n8nctl up
    """
    from n8nctl import stack
    from n8nctl.adapters.docker import engine_answers
    from n8nctl.envfile import write_editor_htpasswd, write_env
    from n8nctl.runtimes import ActiveStack, choose

    project_dir = settings_from_env().n8nctl_project_dir
    if not (project_dir / ".env").exists():
        generated, _ = write_env(project_dir)
        _progress(f"created .env (mode 0600) with new values for: {', '.join(generated)}")
        write_editor_htpasswd(project_dir)
    settings = settings_from_env()
    if workers and not (prod or settings.n8nctl_queue_mode):
        raise ConfigError(
            "--workers needs --prod or N8NCTL_QUEUE_MODE=true",
            why="only n8n in queue mode has workers",
        )
    chosen, why = choose(
        settings, runtime, prod=prod, engine_answers=lambda: engine_answers(host=settings.docker_host or None)
    )
    _progress(f"runtime: {chosen} ({why})")
    wanted = ActiveStack(
        chosen,
        settings.stack_name(prod=prod),
        prod=prod,
        workers=workers or settings.n8nctl_workers,
        queue=chosen == "native" and settings.n8nctl_queue_mode,
    )
    report = stack.up(settings, wanted, _progress)
    for change in report.changes:
        _progress(f"  {change}")
    for outcome in report.workflows:
        note = "" if outcome.activation == "unchanged" else f", {outcome.activation}"
        _progress(f"  workflow {outcome.workflow_key}: {outcome.result}{note} (n8n id {outcome.workflow_id})")
    if as_json:
        emit(asdict(report) | {"unchanged": report.unchanged}, as_json=True)
        return
    if report.unchanged:
        click.echo("already up; nothing changed")
    for name, url in report.urls.items():
        click.echo(f"{name}: {url}")
    click.echo(f"logs: {report.logs} (n8nctl logs [SERVICE] -f)")


@click.command()
@json_option
def down(as_json: bool) -> None:
    """Stop the stack `up` started (either runtime). Data stays: the state folder, or the compose volumes.

    \b
    Example:
      n8nctl down
    """
    from n8nctl import stack

    stopped = stack.down(settings_from_env())
    if as_json:
        emit({"stopped": stopped}, as_json=True)
    else:
        click.echo("stopped" if stopped else "was not running")


@click.command()
@json_option
def status(as_json: bool) -> None:
    """Health and version of each service, the bridge's last hour (jobs accepted, succeeded, failed
    and timed out, callback failure rate, p50/p95 job latency, queue depth, dead letters), each
    workflow's adaptive dispatch limit and the kill-switches that are on. Exits 1 when a service is
    unhealthy or a figure is over its threshold (N8NCTL_ALERT_*), naming each.

    \b
    Example:
      n8nctl status
      n8nctl status --json
    """
    from n8nctl import stack
    from n8nctl.cli.context import open_store

    settings = settings_from_env()
    try:
        store = open_store(settings)
    except NotFoundError:  # the bridge never ran here: no figures, nothing can be killed
        store = None
    try:
        report = stack.status(settings, store)
    finally:
        if store is not None:
            store.close()
    rows = [asdict(row) for row in report.services]
    figures = report.bridge_last_hour
    if as_json:
        emit(
            {
                "services": rows,
                "bridge_last_hour": figures.model_dump(mode="json") if figures else None,
                "dispatch_limits": report.dispatch_limits,
                "kill_switch": report.kill_switch,
                "problems": report.problems,
            },
            as_json=True,
        )
    else:
        emit(rows, as_json=False, columns=["service", "instance", "state", "healthy", "version", "url"])
        if figures:
            click.echo(_last_hour_line(figures))
        if report.dispatch_limits:
            limits = ", ".join(f"{key} {limit}" for key, limit in report.dispatch_limits.items())
            click.echo(f"bridge, dispatch limits (adaptive): {limits}")
        for key, switch in report.kill_switch.items():
            what = "ALL workflows" if key == "*" else key
            when, who, why = switch["changed_at"], switch["actor"], switch["reason"]
            click.echo(f"kill-switch: {what} killed at {when} by {who}: {why}")
        if not report.kill_switch:
            click.echo("kill-switch: off")
    if report.problems:
        raise N8nctlError(
            "; ".join(report.problems),
            fix="A service: n8nctl logs SERVICE. A figure: docs/RUNBOOK.md, What each alert means.",
        )


def _last_hour_line(figures: BridgeFigures) -> str:
    def rate(value: float | None) -> str:
        return "-" if value is None else f"{value:.0%}"

    def seconds(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f} s"

    return (
        f"bridge, last hour: {figures.jobs_accepted} accepted, {figures.jobs_succeeded} succeeded, "
        f"{figures.jobs_failed} failed ({figures.jobs_timed_out} timed out); callbacks failing "
        f"{rate(figures.callback_failure_rate)}; latency p50 {seconds(figures.latency_p50_seconds)}, "
        f"p95 {seconds(figures.latency_p95_seconds)}; queue {figures.queue_depth}; "
        f"dead letters {figures.dead_letters}"
    )


@click.command()
@click.argument("service", required=False)
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines.")
@click.option("-n", "--lines", default=50, show_default=True, help="Lines to show first.")
def logs(service: str | None, follow: bool, lines: int) -> None:
    """Show a service's log (all services when none is named), on either runtime. Services: n8n and
    bridge everywhere; supervisord on the native runtime; postgres, redis and n8n-worker (every
    worker) on compose and in native queue mode.

    \b
    Example:
      n8nctl logs bridge -f
    """
    from n8nctl.runtimes import current

    runtime = current(settings_from_env())
    chosen = [service] if service else []
    if not follow:
        click.echo(runtime.logs(chosen, tail=lines), nl=False)
        return
    for line in runtime.follow(chosen, tail=lines):
        click.echo(line, nl=False)
