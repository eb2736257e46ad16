from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from n8nctl.cli.context import settings_from_env
from n8nctl.cli.output import emit, json_option

if TYPE_CHECKING:
    from n8nctl.workflows import WorkflowSync


@contextmanager
def _sync() -> Iterator[WorkflowSync]:
    from n8nctl.adapters.n8n_api import N8nApi
    from n8nctl.errors import ConfigError
    from n8nctl.registry import load_registry
    from n8nctl.workflows import WorkflowSync

    settings = settings_from_env()
    key = settings.n8n_api_key_value()
    if not key:
        raise ConfigError("no n8n API key", fix="Run n8nctl up (it creates one) or set N8N_API_KEY.")
    api = N8nApi(settings.n8n_url, api_key=key)
    try:
        yield WorkflowSync(settings, load_registry(settings.registry_path), api)
    finally:
        api.close()


@click.group()
def workflows() -> None:
    """n8n workflows from workflows/registry.json and workflows/templates/."""


@workflows.command(name="import")
@click.argument("keys", nargs=-1)
@json_option
def import_(keys: tuple[str, ...], as_json: bool) -> None:
    """Create or update each workflow by registry key (n8n ids stay stable) and (de)activate it.

    Credentials are resolved by name; the registry's `enabled` decides activation.

    \b
    Example:
      n8nctl workflows import
      n8nctl workflows import tiktok_live_helper
    """
    from n8nctl.bootstrap import credential_ids

    with _sync() as sync:
        outcomes = sync.import_all(credential_ids(sync.settings), list(keys) or None)
    emit(
        [vars(o) for o in outcomes],
        as_json=as_json,
        columns=["workflow_key", "workflow_id", "result", "active", "activation"],
    )


@workflows.command()
@click.option(
    "--dest",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write to a timestamped folder under DEST instead of workflows/templates/.",
)
def export(dest: Path | None) -> None:
    """Pull every registry workflow from n8n, normalised (an unchanged workflow exports byte-identical).

    \b
    Example:
      n8nctl workflows export
      n8nctl workflows export --dest backups/workflows
    """
    target = dest / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") if dest else None
    with _sync() as sync:
        for path in sync.export_all(target):
            click.echo(str(path))


@workflows.command(name="list")
@json_option
def list_(as_json: bool) -> None:
    """Each registry workflow: n8n id, active, last execution and its status.

    \b
    Example:
      n8nctl workflows list --json
    """
    with _sync() as sync:
        emit(sync.listing(), as_json=as_json)


@workflows.command()
@click.argument("keys", nargs=-1)
def diff(keys: tuple[str, ...]) -> None:
    """Show how n8n's copy differs from the template (unified diff); exits 1 when any differs.

    \b
    Example:
      n8nctl workflows diff
      n8nctl workflows diff content_pipeline
    """
    from n8nctl.errors import N8nctlError

    with _sync() as sync:
        texts = {key: sync.diff(key) for key in keys or sync.registry.workflows}
    for key, text in texts.items():
        click.echo(text or f"{key}: n8n matches the template\n", nl=False)
    differing = [key for key, text in texts.items() if text]
    if differing:
        raise N8nctlError(
            f"{', '.join(differing)} differ from the template",
            fix="n8nctl workflows import, or export to keep n8n's.",
        )


@workflows.command()
@click.argument("key")
def activate(key: str) -> None:
    """Activate (publish) a workflow in n8n.

    \b
    Example:
      n8nctl workflows activate tiktok_live_helper
    """
    with _sync() as sync:
        click.echo(f"activated {key} (n8n id {sync.set_active(key, active=True)})")


@workflows.command()
@click.argument("key")
def deactivate(key: str) -> None:
    """Deactivate (unpublish) a workflow in n8n; its webhook stops answering.

    \b
    Example:
      n8nctl workflows deactivate tiktok_live_helper
    """
    with _sync() as sync:
        click.echo(f"deactivated {key} (n8n id {sync.set_active(key, active=False)})")
