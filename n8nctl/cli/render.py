from __future__ import annotations

import click

from n8nctl.cli.context import settings_from_env
from n8nctl.cli.output import emit, json_option
from n8nctl.errors import N8nctlError


@click.command()
@click.option("--prod", is_flag=True, help="The hardened stack (stacks/prod/: compose base + prod override).")
@click.option(
    "--runtime",
    type=click.Choice(["compose", "native"]),
    help="Which runtime's files [default: N8NCTL_RUNTIME, compose when that is auto].",
)
@click.option(
    "--check", is_flag=True, help="Write nothing; exit 1 with a diff when the files on disk differ."
)
@json_option
def render(prod: bool, runtime: str | None, check: bool, as_json: bool) -> None:
    """Render a stack from templates/ into stacks/<stack>/ (no secret is written into any file).

    Compose runtime: compose.yaml (plus compose.prod.yaml with --prod); native runtime:
    supervisord.conf; both: nginx/n8nctl.conf, the site config for the system nginx, and
    prometheus/alerts.yml, the alert rules (thresholds: N8NCTL_ALERT_*). --check is drift
    detection: it exits 1 and prints a unified diff when someone edited the rendered files by hand.

    \b
    Example:
      n8nctl render --prod
      n8nctl render --prod --check
      N8NCTL_WORKERS=3 n8nctl render --prod
    """
    from n8nctl.render import render_stack, stack_drift, write_stack

    settings = settings_from_env()
    chosen = runtime or ("compose" if settings.n8nctl_runtime == "auto" else settings.n8nctl_runtime)
    files = render_stack(settings, runtime="native" if chosen == "native" else "compose", prod=prod)
    directory = settings.stack_dir(settings.stack_name(prod=prod))
    if check:
        diff = stack_drift(files, directory)
        if as_json:
            emit({"directory": str(directory), "drift": bool(diff), "diff": diff}, as_json=True)
        elif diff:
            click.echo(diff, nl=False)
        if diff:
            raise N8nctlError(
                f"{directory} differs from a fresh render",
                why="its files were edited by hand, or templates or settings changed since the last render",
                fix=f"Put the change in templates/ or .env, then n8nctl render{' --prod' if prod else ''}.",
            )
        if not as_json:
            click.echo(f"{directory}: up to date ({len(files)} files)")
        return
    changed = write_stack(files, directory)
    if as_json:
        emit({"directory": str(directory), "files": {f: f in changed for f in files}}, as_json=True)
        return
    for relative in files:
        click.echo(f"{directory / relative}: {'written' if relative in changed else 'unchanged'}")
