from __future__ import annotations

import click

from n8nctl.cli.context import settings_from_env


@click.group()
def bridge() -> None:
    """The job bridge between FlowBiz and n8n."""


@bridge.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", default=8000, show_default=True, type=click.IntRange(1, 65535), help="Port to listen on."
)
@click.option(
    "--log-level", default="info", show_default=True, type=click.Choice(["debug", "info", "warning", "error"])
)
def serve(host: str, port: int, log_level: str) -> None:
    """Run the bridge in the foreground (JSON logs on stderr). Ctrl-C stops it.

    \b
    Example:
      n8nctl bridge serve --port 8000
    """
    serve_bridge(host, port, log_level)


def serve_bridge(host: str, port: int, log_level: str) -> None:
    import uvicorn

    from n8nctl import logs
    from n8nctl.bridge.app import create_app
    from n8nctl.registry import load_registry

    settings = settings_from_env()
    logs.configure(log_level.upper())
    app = create_app(settings, load_registry(settings.registry_path))
    uvicorn.run(app, host=host, port=port, log_config=None, access_log=False, timeout_graceful_shutdown=5)
