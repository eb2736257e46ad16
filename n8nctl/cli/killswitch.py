from __future__ import annotations

import getpass
from typing import TYPE_CHECKING

import click

from n8nctl.cli.context import open_store, settings_from_env, state_dir_hint
from n8nctl.cli.output import emit, json_option
from n8nctl.errors import N8nctlError

if TYPE_CHECKING:
    from n8nctl.killswitch import KillSwitch, Step


def _target(workflow_key: str | None, everything: bool) -> None:
    if bool(workflow_key) == everything:
        raise click.UsageError("name one WORKFLOW_KEY, or pass --all")


def _switch(actor: str, as_json: bool) -> KillSwitch:
    from n8nctl.killswitch import KillSwitch
    from n8nctl.registry import load_registry

    settings = settings_from_env()

    def report(step: Step) -> None:
        if not as_json:
            mark = "ok  " if step.ok else "FAIL"
            click.echo(f"[{mark}] {step.name}: {step.detail}" + (f" -> {step.fix}" if step.fix else ""))

    registry = load_registry(settings.registry_path)
    return KillSwitch(settings, registry, lambda: open_store(settings), actor=actor, report=report)


def _finish(what: str, steps: list[Step], as_json: bool) -> None:
    failed = [step for step in steps if not step.ok]
    if as_json:
        emit({"target": what, "ok": not failed, "steps": [vars(s) for s in steps]}, as_json=True)
    if failed:
        raise N8nctlError(
            f"{what}: {len(failed)} of {len(steps)} steps failed ({', '.join(s.name for s in failed)})",
            fix="Fix what the failed steps say, then run the same command again (it is safe to repeat).",
        )


_actor = click.option("--actor", default=getpass.getuser, help="Who acts (audit trail; default: OS user).")
_all = click.option("--all", "everything", is_flag=True, help="Every workflow: stop n8n itself.")


@click.command()
@click.argument("workflow_key", required=False)
@_all
@click.option("--reason", required=True, help="Why (recorded in the audit trail).")
@_actor
@json_option
def kill(workflow_key: str | None, everything: bool, reason: str, actor: str, as_json: bool) -> None:
    """Stop one workflow, or all of n8n, now; prints each step and exits 1 if any failed.

    WORKFLOW_KEY: the bridge rejects its new jobs (423 WORKFLOW_KILLED, on every replica, across
    restarts), n8n deactivates it (its webhook stops routing), its queued and running jobs fail with
    WORKFLOW_KILLED (callbacks delivered), and its executions in n8n are stopped.

    --all: the bridge rejects every new job (503 N8N_KILLED, Retry-After) and the n8n service is
    stopped; running jobs fail with N8N_KILLED, queued ones wait for `revive --all`. The bridge stays up.

    \b
    Example:
      n8nctl kill tiktok_live_helper --reason "INC-42: posting duplicates"
      n8nctl kill --all --reason "INC-43: n8n leaking memory"
    """
    from n8nctl.bridge.operator import ask_kill, socket_path

    _target(workflow_key, everything)
    # first, before this command loads anything else: the running bridge stores the switch (ADR 62)
    stored = ask_kill(socket_path(state_dir_hint()), workflow_key, reason=reason, actor=actor)
    switch = _switch(actor, as_json)
    if everything:
        _finish("kill --all", switch.kill_all(reason, stored=stored), as_json)
    else:
        assert workflow_key is not None
        _finish(f"kill {workflow_key}", switch.kill(workflow_key, reason, stored=stored), as_json)


@click.command()
@click.argument("workflow_key", required=False)
@_all
@_actor
@json_option
def revive(workflow_key: str | None, everything: bool, actor: str, as_json: bool) -> None:
    """Undo a kill: n8n first (workflow active, or service healthy), then the bridge accepts jobs again.

    Returns only once verified; exits 1 if any step failed.

    \b
    Example:
      n8nctl revive tiktok_live_helper
      n8nctl revive --all
    """
    _target(workflow_key, everything)
    switch = _switch(actor, as_json)
    if everything:
        _finish("revive --all", switch.revive_all(), as_json)
    else:
        assert workflow_key is not None
        _finish(f"revive {workflow_key}", switch.revive(workflow_key), as_json)
