"""The command line as a whole: documented reference, exit codes, one-line errors, --help speed path."""

from __future__ import annotations

import subprocess
import sys

import pytest

from n8nctl.cli import reference
from tests.conftest import PROJECT


def run(*args: str, env: dict[str, str] | None = None, cwd=None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "n8nctl", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=60
    )


def test_cli_reference_is_current():
    assert (PROJECT / "docs" / "cli.md").read_text() == reference.render(), (
        "docs/cli.md is stale: python -m n8nctl.cli.reference > docs/cli.md"
    )


def test_every_command_has_an_example():
    text = reference.render()
    leaves = [block for block in text.split("\n## `")[1:] if "Commands:" not in block]
    assert leaves
    for block in leaves:
        assert "Example:" in block, f"no Example in {block.splitlines()[0]}"


def test_help_does_not_import_heavy_modules():
    code = (
        "import sys; from n8nctl.cli.main import cli; from click.testing import CliRunner; "
        "CliRunner().invoke(cli, ['--help']); "
        "print(sorted(m for m in ('sqlalchemy','boto3','python_on_whales','fastapi','pydantic_settings') "
        "if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("imported", "forbidden"),
    [
        # kill: from the command to the switch's commit (docs/PERFORMANCE.md: under 1 s with both
        # cores busy); HTTP and n8n's side come after the switch is set
        (
            "n8nctl.cli.killswitch n8nctl.killswitch n8nctl.runtimes.native",
            "httpx jinja2 jsonschema fastapi boto3 python_on_whales supervisor alembic",
        ),
        # status: store, HTTP probes and supervisord's socket, nothing that renders or starts a stack
        (
            "n8nctl.cli.stack n8nctl.stack n8nctl.monitoring n8nctl.runtimes.native "
            "n8nctl.adapters.supervisor",
            "jinja2 jsonschema fastapi boto3 python_on_whales supervisor alembic",
        ),
    ],
    ids=["kill", "status"],
)
def test_incident_commands_import_only_what_they_use(imported: str, forbidden: str) -> None:
    """One pattern keeps them fast: a module imports a heavy library at its top only when every use of
    the module needs it; otherwise the function that needs it imports it (ADR 60). The registry is
    loaded too: both commands read it."""
    code = (
        f"import sys, importlib; [importlib.import_module(m) for m in {imported.split()!r}]; "
        "from n8nctl.registry import load_registry; "
        f"load_registry(__import__('pathlib').Path({str(PROJECT / 'workflows' / 'registry.json')!r})); "
        f"print(sorted(m for m in {forbidden.split()!r} if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_usage_error_exits_2(tmp_path):
    result = run("jobs", "submit", cwd=tmp_path)
    assert result.returncode == 2
    assert "Missing argument" in result.stderr


def test_bad_setting_is_one_line_exit_2(tmp_path):
    import os

    result = run("jobs", "list", env={**os.environ, "BRIDGE_RATE_LIMIT": "lots"}, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("n8nctl: error: setting BRIDGE_RATE_LIMIT is invalid")


def test_missing_database_is_not_found_exit_4(tmp_path):
    result = run("jobs", "list", cwd=tmp_path)
    assert result.returncode == 4
    assert "no bridge database" in result.stderr and "n8nctl up" in result.stderr


def test_bridge_unreachable_exits_5_without_leaking_the_secret(tmp_path):
    import os

    from n8nctl.signing import generate_secret

    secret = generate_secret()
    env = {**os.environ, "N8NCTL_BRIDGE_URL": "http://127.0.0.1:9", "N8NCTL_CLIENT_SECRET": secret}
    result = run("jobs", "status", "some-job", env=env, cwd=tmp_path)
    assert result.returncode == 5
    assert "did not answer" in result.stderr
    assert secret not in result.stderr + result.stdout
