from __future__ import annotations

import click

from n8nctl.cli.context import settings_from_env


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address the bridge listens on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535), help="Bridge port.")
def up(host: str, port: int) -> None:
    """Bring the stack up on its embedded defaults (today: the bridge, SQLite, foreground).

    Creates .env with fresh secrets first when there is none.

    \b
    Example:
      n8nctl up
    """
    from n8nctl.cli.bridge import serve_bridge
    from n8nctl.envfile import write_env

    project_dir = settings_from_env().n8nctl_project_dir
    if not (project_dir / ".env").exists():
        generated, _ = write_env(project_dir)
        click.echo(f"created .env with new values for: {', '.join(generated)}", err=True)
    click.echo(
        f"bridge on http://{host}:{port} (health: /healthz, API: /openapi.json); Ctrl-C stops it", err=True
    )
    serve_bridge(host, port, "info")
