from __future__ import annotations

import getpass
import json
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from n8nctl.cli.context import open_store, settings_from_env
from n8nctl.cli.output import emit, json_option
from n8nctl.errors import ConfigError, NotFoundError

if TYPE_CHECKING:
    from n8nctl.settings import Settings


SUMMARY = ["job_id", "workflow_key", "status", "accepted_at", "execution_id", "error_code"]


def _client(settings: Settings) -> Any:
    from n8nctl.adapters.bridge_client import BridgeClient

    client_id = settings.n8nctl_client_id
    keyring = settings.client_secrets.get(client_id)
    secret = settings.n8nctl_client_secret.get_secret_value() or next(
        iter(keyring.live() if keyring else ()), ""
    )
    if not secret:
        raise ConfigError(
            f"no signing secret for client {client_id!r}",
            fix="Set N8NCTL_CLIENT_SECRET, or BRIDGE_CLIENT_SECRETS with an entry for N8NCTL_CLIENT_ID.",
        )
    return BridgeClient(settings.bridge_url, client_id, secret)


def _json_arg(value: str, name: str) -> Any:
    """A JSON object given inline or as @path."""
    text = Path(value[1:]).read_text() if value.startswith("@") else value
    try:
        parsed = json.loads(text)
    except ValueError as exc:
        raise click.BadParameter(f"not valid JSON ({exc})", param_hint=name) from None
    if not isinstance(parsed, dict):
        raise click.BadParameter("must be a JSON object", param_hint=name)
    return parsed


@click.group()
def jobs() -> None:
    """Submit, inspect, cancel and redeliver bridge jobs."""


@jobs.command()
@click.argument("workflow_key")
@click.option("--inputs", default="{}", show_default=True, help="JSON object, or @file.json.")
@click.option("--callback-url", required=True, help="Where the bridge delivers the signed result.")
@click.option("--job-id", help="Idempotency key (default: a new UUID).")
@click.option(
    "--priority", type=click.IntRange(1, 10), default=5, show_default=True, help="10 = most urgent."
)
@click.option(
    "--timeout",
    "timeout_seconds",
    type=click.IntRange(min=1),
    default=300,
    show_default=True,
    help="Seconds until the job fails with TIMEOUT.",
)
@click.option("--metadata", default="{}", show_default=True, help="JSON object, or @file.json.")
@json_option
def submit(
    workflow_key: str,
    inputs: str,
    callback_url: str,
    job_id: str | None,
    priority: int,
    timeout_seconds: int,
    metadata: str,
    as_json: bool,
) -> None:
    """Submit a job to the bridge, signed as N8NCTL_CLIENT_ID.

    \b
    Example:
      n8nctl jobs submit tiktok_live_helper \\
        --inputs '{"stream_id": "s1", "comments": [{"user": "a", "text": "hi"}]}' \\
        --callback-url https://flowbiz.example/callbacks/n8n
    """
    settings = settings_from_env()
    job = {
        "job_id": job_id or str(uuid.uuid4()),
        "client_id": settings.n8nctl_client_id,
        "workflow_key": workflow_key,
        "inputs": _json_arg(inputs, "--inputs"),
        "callback_url": callback_url,
        "priority": priority,
        "timeout_seconds": timeout_seconds,
        "metadata": _json_arg(metadata, "--metadata"),
    }
    emit(_client(settings).submit(job), as_json=as_json)


@jobs.command()
@click.argument("job_id")
@json_option
def status(job_id: str, as_json: bool) -> None:
    """Show one job's state as its client sees it (signed GET).

    \b
    Example:
      n8nctl jobs status 3f0c...
    """
    emit(_client(settings_from_env()).status(job_id), as_json=as_json)


@jobs.command()
@click.argument("job_id")
@click.option("--reason", help="Recorded in the audit trail.")
@json_option
def cancel(job_id: str, reason: str | None, as_json: bool) -> None:
    """Cancel a pending or running job.

    \b
    Example:
      n8nctl jobs cancel 3f0c... --reason "customer withdrew the request"
    """
    emit(_client(settings_from_env()).cancel(job_id, reason), as_json=as_json)


@jobs.command(name="list")
@click.option("--status", type=click.Choice(["pending", "running", "success", "failed", "cancelled"]))
@click.option("--workflow", "workflow_key", help="Only this workflow_key.")
@click.option("--client", "client_id", help="Only this client.")
@click.option("--limit", type=click.IntRange(1, 10000), default=50, show_default=True)
@json_option
def list_jobs(
    status: str | None, workflow_key: str | None, client_id: str | None, limit: int, as_json: bool
) -> None:
    """List recent jobs from the bridge's store (operators, on the bridge host).

    \b
    Example:
      n8nctl jobs list --status failed --limit 20
    """
    store = open_store(settings_from_env())
    rows = store.list_jobs(status=status, workflow_key=workflow_key, client_id=client_id, limit=limit)
    emit(
        [{k: row[k] for k in (*SUMMARY, "client_id", "completed_at")} for row in rows]
        if not as_json
        else [{k: v for k, v in row.items() if k != "request_hash"} for row in rows],
        as_json=as_json,
        columns=SUMMARY,
    )


@jobs.command()
@click.argument("job_id", required=False)
@click.option("--dead", "all_dead", is_flag=True, help="Every dead-lettered callback.")
@click.option("--actor", default=getpass.getuser, help="Who asks (recorded in the audit trail).")
@json_option
def redeliver(job_id: str | None, all_dead: bool, actor: str, as_json: bool) -> None:
    """Queue a job's callback again, with the same webhook-id; the running bridge sends it.

    \b
    Example:
      n8nctl jobs redeliver 3f0c...
      n8nctl jobs redeliver --dead
    """
    if bool(job_id) == all_dead:
        raise click.UsageError("name one JOB_ID or pass --dead")
    queued = open_store(settings_from_env()).redeliver(job_id=job_id, all_dead=all_dead, actor=actor)
    if job_id and not queued:
        raise NotFoundError(
            f"job {job_id} has no callback to redeliver",
            fix="It may still be running: check n8nctl jobs list.",
        )
    emit({"queued": queued}, as_json=as_json) if as_json else click.echo(f"queued {len(queued)} callback(s)")
