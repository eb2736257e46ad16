from __future__ import annotations

import click

from n8nctl.cli.context import settings_from_env


@click.command()
@click.option("--force", is_flag=True, help="Replace an existing .env (kept as .env.bak-<time>).")
@click.option(
    "--htpasswd",
    "htpasswd_only",
    is_flag=True,
    help="Keep .env; only write the editor's htpasswd file again from it.",
)
def init(force: bool, htpasswd_only: bool) -> None:
    """Create .env from .env.example with freshly generated secrets (mode 0600), and the n8n editor's
    htpasswd file for nginx basic auth (NGINX_EDITOR_USER, NGINX_EDITOR_PASSWORD; mode 0600, at
    NGINX_HTPASSWD_FILE, default .n8nctl/editor.htpasswd; never commit it).

    Prints the names of the generated variables, never their values.

    \b
    Example:
      n8nctl init
      n8nctl init --force
      n8nctl init --htpasswd     # after changing NGINX_EDITOR_PASSWORD in .env
    """
    from n8nctl.envfile import write_editor_htpasswd, write_env

    project_dir = settings_from_env().n8nctl_project_dir
    if not htpasswd_only:
        generated, backup = write_env(project_dir, force=force)
        if backup:
            click.echo(f"kept the previous file as {backup.name}", err=True)
        click.echo(f"wrote {project_dir / '.env'} (mode 0600) with new values for: {', '.join(generated)}")
    path, user = write_editor_htpasswd(project_dir)
    click.echo(f"wrote {path} (mode 0600) for the editor user {user}")
