from __future__ import annotations

import click

from n8nctl.cli.context import settings_from_env


@click.group()
def bridge() -> None:
    """The job bridge between FlowBiz and n8n."""


@bridge.command()
@click.option("--host", help="Address to listen on [default: BRIDGE_HOST, 127.0.0.1].")
@click.option("--port", type=click.IntRange(1, 65535), help="Port to listen on [default: BRIDGE_PORT, 8000].")
@click.option(
    "--log-level", default="info", show_default=True, type=click.Choice(["debug", "info", "warning", "error"])
)
def serve(host: str | None, port: int | None, log_level: str) -> None:
    """Run the bridge in the foreground (JSON logs on stderr). Ctrl-C stops it.

    \b
    Example:
      n8nctl bridge serve --port 8000
    """
    import uvicorn

    from n8nctl import logs
    from n8nctl.bridge.app import create_app
    from n8nctl.registry import load_registry

    settings = settings_from_env()
    logs.configure(log_level.upper())
    app = create_app(settings, load_registry(settings.registry_path))
    uvicorn.run(
        app,
        host=host or settings.bridge_host,
        port=port or settings.bridge_port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,
    )
