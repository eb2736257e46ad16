from __future__ import annotations

import click

from n8nctl.cli.context import settings_from_env


@click.command()
@click.option("--force", is_flag=True, help="Replace an existing .env (kept as .env.bak-<time>).")
def init(force: bool) -> None:
    """Create .env from .env.example with freshly generated secrets (mode 0600).

    Prints the names of the generated variables, never their values.

    \b
    Example:
      n8nctl init
      n8nctl init --force
    """
    from n8nctl.envfile import write_env

    project_dir = settings_from_env().n8nctl_project_dir
    generated, backup = write_env(project_dir, force=force)
    if backup:
        click.echo(f"kept the previous file as {backup.name}", err=True)
    click.echo(f"wrote {project_dir / '.env'} (mode 0600) with new values for: {', '.join(generated)}")
