"""Entry point: the root group, lazy subcommands, and the one error handler.

Exit codes (stable; cron and incident scripts depend on them, listed in docs/cli.md):
0 ok, 1 failed, 2 usage or configuration error, 3 unexpected error (a bug), 4 not found,
5 a service did not answer, 6 a service refused the request, 7 a backup is not restorable (checksum,
decryption, drill), 8 busy (another backup, restore or prune runs), 9 the job store is not at this
code's schema revision, 10-16 `n8nctl doctor`'s classes
(n8nctl/doctor.py), 130 interrupted.
"""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Any

import click

from n8nctl import __version__

# name -> "module:attribute", imported only when the command runs (keeps --help fast).
COMMANDS = {
    "init": "n8nctl.cli.init:init",
    "up": "n8nctl.cli.stack:up",
    "down": "n8nctl.cli.stack:down",
    "status": "n8nctl.cli.stack:status",
    "logs": "n8nctl.cli.stack:logs",
    "render": "n8nctl.cli.render:render",
    "workflows": "n8nctl.cli.workflows:workflows",
    "bridge": "n8nctl.cli.bridge:bridge",
    "jobs": "n8nctl.cli.jobs:jobs",
    "audit": "n8nctl.cli.audit:audit",
    "check": "n8nctl.cli.check:check",
    "doctor": "n8nctl.cli.doctor:doctor",
    "kill": "n8nctl.cli.killswitch:kill",
    "revive": "n8nctl.cli.killswitch:revive",
    "backup": "n8nctl.cli.backup:backup",
    "backups": "n8nctl.cli.backup:backups",
    "restore": "n8nctl.cli.backup:restore",
    "prune": "n8nctl.cli.backup:prune",
    "secrets": "n8nctl.cli.secrets:secrets",
}


class LazyGroup(click.Group):
    """Imports a command's module only when it runs, and handles every error in one place."""

    def main(self, args: Any = None, prog_name: str | None = None, **extra: Any) -> Any:  # type: ignore[override]
        from n8nctl.errors import N8nctlError

        try:
            super().main(args=args, prog_name=prog_name, standalone_mode=False, **extra)
        except N8nctlError as exc:
            click.echo(f"n8nctl: error: {exc.line()}", err=True)
            sys.exit(exc.exit_code)
        except (click.exceptions.Abort, KeyboardInterrupt):
            click.echo("n8nctl: interrupted", err=True)
            sys.exit(130)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except Exception as exc:
            if logging.getLogger().isEnabledFor(logging.DEBUG):
                raise
            # The exception text may carry a URL with a password: only its type is printed here.
            click.echo(
                f"n8nctl: unexpected error: {type(exc).__name__}. This is a bug; re-run with -vv "
                "for the traceback and report it.",
                err=True,
            )
            sys.exit(3)
        sys.exit(0)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, _, attribute = COMMANDS[cmd_name].partition(":")
        command: click.Command = getattr(importlib.import_module(module), attribute)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="n8nctl")
@click.option("-v", "--verbose", count=True, help="More output on stderr (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors on stderr.")
def cli(verbose: int, quiet: bool) -> None:
    """Run n8n as FlowBiz's integration runtime, and its job bridge.

    \b
    Example:
      n8nctl init
      n8nctl up
      n8nctl jobs submit tiktok_live_helper --inputs @comments.json --callback-url https://flowbiz/cb
    """
    level = logging.ERROR if quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def main() -> None:
    cli.main(prog_name="n8nctl")
