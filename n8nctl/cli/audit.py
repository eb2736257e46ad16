from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import TextIO

import click

from n8nctl.cli.context import open_store, settings_from_env
from n8nctl.cli.output import dumps, emit, json_option
from n8nctl.contract import iso
from n8nctl.errors import NotFoundError

COLUMNS = ["at", "source", "action", "status", "node_name", "actor", "duration_ms", "details"]


@click.group()
def audit() -> None:
    """The bridge's audit trail: every job's who, when, what and outcome."""


@audit.command()
@click.argument("job_id")
@json_option
def show(job_id: str, as_json: bool) -> None:
    """Every audit event of one job, oldest first (job_id <-> n8n execution_id included).

    \b
    Example:
      n8nctl audit show 3f0c...
    """
    store = open_store(settings_from_env())
    job = store.get_job(job_id)
    if job is None:
        raise NotFoundError(f"no job {job_id}", fix="Check the id with n8nctl jobs list.")
    events = store.audit_for(job_id)
    if as_json:
        emit(
            {
                "job_id": job_id,
                "client_id": job["client_id"],
                "user_id": job["user_id"],
                "workflow_key": job["workflow_key"],
                "status": job["status"],
                "execution_id": job["execution_id"],
                "events": events,
            },
            as_json=True,
        )
        return
    click.echo(
        f"job {job_id}  workflow {job['workflow_key']}  client {job['client_id']}  "
        f"user {job['user_id'] or '-'}  status {job['status']}  execution {job['execution_id'] or '-'}"
    )
    emit(events, as_json=False, columns=COLUMNS)


@audit.command()
@click.option(
    "--since",
    type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]),
    required=True,
    help="UTC date or time to start from.",
)
@click.option("--output", "-o", type=click.File("w"), default="-", help="File to write (default stdout).")
def export(since: datetime, output: TextIO) -> None:
    """Export audit events as JSON lines (one event per line) for a central log service.

    \b
    Example:
      n8nctl audit export --since 2026-11-01 -o audit.jsonl
    """
    store = open_store(settings_from_env())
    count = 0
    for event in store.audit_since(since.replace(tzinfo=UTC)):
        output.write(dumps({**event, "at": iso(event["at"])}) + "\n")
        count += 1
    click.echo(f"exported {count} event(s)", err=True)
    if output is sys.stdout:
        sys.stdout.flush()
