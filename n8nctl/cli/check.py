from __future__ import annotations

import click

from n8nctl.cli.context import settings_from_env
from n8nctl.cli.output import emit, json_option
from n8nctl.errors import N8nctlError


@click.command()
@click.option(
    "--alert-url",
    metavar="URL",
    help="Slack-compatible incoming webhook to post alerts and recoveries to [default: N8NCTL_ALERT_URL].",
)
@json_option
def check(alert_url: str | None, as_json: bool) -> None:
    """Check the stack for cron: exits 1 when anything is wrong, and posts what changed.

    Looks at: the bridge and n8n health; the bridge's last hour against the N8NCTL_ALERT_*
    thresholds (job and callback failure rates, p95 latency, queue depth, dead letters); and every
    enabled workflow's production webhook route in n8n (a published workflow whose webhook is not
    registered answers 404). With an alert URL, posts an alert when a problem starts and a recovery
    when it clears, never the same one twice in a row (state in <state dir>/check-state.json).

    \b
    Example:
      n8nctl check
      */5 * * * * cd /srv/n8nctl && .venv/bin/n8nctl -q check --alert-url "$SLACK_WEBHOOK_URL"
    """
    from functools import partial

    from n8nctl.adapters.alerts import post_alert
    from n8nctl.check import check as run
    from n8nctl.cli.context import open_store
    from n8nctl.registry import load_registry

    settings = settings_from_env()
    url = alert_url or settings.n8nctl_alert_url.get_secret_value()
    report = run(
        settings,
        load_registry(settings.registry_path),
        lambda: open_store(settings),
        post=partial(post_alert, url) if url else None,
    )
    data = {
        "problems": [vars(p) for p in report.problems],
        "bridge_last_hour": report.figures.model_dump() if report.figures else None,
        "alerted": report.alerted,
        "recovered": report.recovered,
    }
    if as_json:
        emit(data, as_json=True)
    else:
        for problem in report.problems:
            click.echo(f"PROBLEM {problem.key}: {problem.message}")
        if report.alerted or report.recovered:
            click.echo(f"posted {len(report.alerted)} alert(s), {len(report.recovered)} recovery(ies)")
        if not report.problems:
            click.echo("ok: no problem found")
    if report.problems:
        raise N8nctlError(
            f"{len(report.problems)} problem(s): {', '.join(p.key for p in report.problems)}",
            fix="See docs/RUNBOOK.md section 9 for each.",
        )
