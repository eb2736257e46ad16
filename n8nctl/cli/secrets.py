from __future__ import annotations

import getpass
import re
from datetime import timedelta

import click

from n8nctl.cli.context import settings_from_env
from n8nctl.cli.output import emit, json_option

_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def _duration(value: str) -> timedelta:
    match = re.fullmatch(r"([0-9]+)([mhd])", value.strip())
    if not match or int(match[1]) == 0:
        raise click.BadParameter(f"{value!r} is not a duration like 30m, 24h or 7d")
    return timedelta(**{_UNITS[match[2]]: int(match[1])})


@click.group()
def secrets() -> None:
    """The bridge's secrets: rotation (security/SECRETS_POLICY.md)."""


@secrets.command()
@click.argument(
    "name",
    type=click.Choice(
        [
            "BRIDGE_CLIENT_SECRETS",
            "BRIDGE_CALLBACK_SIGNING_SECRET",
            "BRIDGE_N8N_CALLBACK_SECRET",
            "BRIDGE_N8N_WEBHOOK_TOKEN",
        ]
    ),
)
@click.option("--client", help="With BRIDGE_CLIENT_SECRETS: the client whose secret to rotate.")
@click.option(
    "--grace", default="24h", show_default=True, help="How long the old secret still works (30m, 24h, 7d)."
)
@click.option("--n8n-only", is_flag=True, help="Only move n8n's credential to the newest secret in .env.")
@click.option("--actor", default=getpass.getuser, help="Who acts (audit trail; default: OS user).")
@json_option
def rotate(name: str, client: str | None, grace: str, n8n_only: bool, actor: str, as_json: bool) -> None:
    """Replace a secret in .env with a new one; the old one keeps working for --grace.

    During the grace window the bridge sends both signatures (BRIDGE_CALLBACK_SIGNING_SECRET) or
    accepts both (client and n8n secrets); at its end the old secret retires by itself. Where the
    secret lives in n8n, its credential is moved too: the webhook token at once (n8n's header auth
    holds one value: dispatches wait until the bridge restarts), the n8n callback secret once the
    running bridge accepts the new one. Audited as `secret_rotated`. Never prints a secret.

    \b
    Example:
      n8nctl secrets rotate BRIDGE_CALLBACK_SIGNING_SECRET --grace 7d
      n8nctl secrets rotate BRIDGE_CLIENT_SECRETS --client flowbiz
      n8nctl secrets rotate BRIDGE_N8N_CALLBACK_SECRET --n8n-only
    """
    from n8nctl.rotate import rotate as run

    done = run(
        settings_from_env(), name, client=client, grace=_duration(grace), actor=actor, n8n_only=n8n_only
    )
    report = {
        "name": done.name,
        "client": done.client,
        "old_secret_retires_at": done.retires_at,
        "n8n": done.n8n,
        "next_steps": done.next_steps,
    }
    if as_json:
        emit(report, as_json=True)
        return
    retires = done.retires_at.strftime("%Y-%m-%d %H:%M:%S UTC") if done.retires_at else "now (no grace)"
    click.echo(f"{name}{f' ({client})' if client else ''}: rotated in .env; the old one retires {retires}")
    click.echo(f"n8n: {done.n8n}")
    for step in done.next_steps:
        click.echo(f"next: {step}")
