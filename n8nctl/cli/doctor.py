from __future__ import annotations

import contextlib

import click

from n8nctl.cli.context import settings_from_env
from n8nctl.cli.output import emit, json_option


@click.command()
@json_option
def doctor(as_json: bool) -> None:
    """Check this host's configuration: secrets, .env, ports, the n8n API key, the encryption key,
    one n8n version across the runtimes and the running n8n.

    Each class of problem has its own exit code (see the table at the top of docs/cli.md); with
    several, the exit code is the first class's in that table. Never prints a secret.

    \b
    Example:
      n8nctl doctor
      n8nctl doctor --json
    """
    from n8nctl.adapters.n8n_api import N8nApi
    from n8nctl.doctor import DoctorError, diagnose
    from n8nctl.errors import RemoteError, UnreachableError

    settings = settings_from_env()
    works: bool | None = None
    running: str | None = None
    api = N8nApi(settings.n8n_url, api_key=settings.n8n_api_key_value())
    try:
        with contextlib.suppress(UnreachableError, RemoteError):
            running = api.version()
        with contextlib.suppress(UnreachableError, RemoteError):
            works = api.api_key_works() if api.api_key else None
    finally:
        api.close()
    diagnosis = diagnose(settings, api_key_works=works, running_version=running)
    if as_json:
        emit(
            {"findings": [vars(f) for f in diagnosis.findings], "not_checked": diagnosis.not_checked},
            as_json=True,
        )
    else:
        for finding in diagnosis.findings:
            click.echo(f"PROBLEM {finding.check}: {finding.message}")
        for note in diagnosis.not_checked:
            click.echo(f"not checked: {note}")
        if not diagnosis.findings:
            click.echo("ok: no problem found")
    if diagnosis.findings:
        raise DoctorError(diagnosis)
