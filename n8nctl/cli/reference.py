"""Generate docs/cli.md from the commands' own --help. `python -m n8nctl.cli.reference > docs/cli.md`;
a test fails when the file and the code disagree."""

from __future__ import annotations

import click

from n8nctl.cli import main as entry

HEADER = """# n8nctl command reference

Generated from `--help` by `python -m n8nctl.cli.reference > docs/cli.md`; a test keeps it current.

## Exit codes

| code | meaning |
| --- | --- |
| 0 | success |
| 1 | the operation failed (the message says what, why and what to do) |
| 2 | usage or configuration error (bad flag, bad .env value, bad registry) |
| 3 | unexpected error: a bug; re-run with `-vv` for the traceback |
| 4 | not found (job, database, file) |
| 5 | a service did not answer (bridge, n8n, database) |
| 6 | a service refused the request (the message carries its HTTP status and `error_code`) |
| 7 | a backup is not restorable: a checksum, its decryption or the restore drill failed |
| 8 | busy: another backup, restore or prune holds the lock (cron: the next run tries again) |
| 9 | the bridge's job store is not at this code's schema revision (run `n8nctl bridge migrate`) |
{doctor}| 130 | interrupted (Ctrl-C) |

Errors are one line on stderr: `n8nctl: error: <what failed>: because <why>. <what to do>`. Backup,
restore, verify and prune name the step that failed: `backup failed at step "dump bridge store": ...`.
"""


def _sections(command: click.Command, path: list[str]) -> list[str]:
    ctx = click.Context(
        command,
        info_name=" ".join(path),
        terminal_width=100,
        max_content_width=100,
        help_option_names=["-h", "--help"],
    )
    text = command.get_help(ctx)
    out = [f"\n## `{' '.join(path)}`\n", "```text", text, "```"]
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                out += _sections(sub, [*path, name])
    return out


def render() -> str:
    from n8nctl.doctor import CLASSES

    doctor = "".join(f"| {c.code} | `n8nctl doctor`: {c.meaning} (`{c.name}`) |\n" for c in CLASSES)
    return HEADER.format(doctor=doctor) + "\n".join(_sections(entry.cli, ["n8nctl"])) + "\n"


if __name__ == "__main__":
    print(render(), end="")
