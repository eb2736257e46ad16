"""Secrets never leak: after every other end-to-end test has run (this file sorts last), no secret value
of the stack appears in its logs, its rendered config, its state files or what n8nctl printed."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Stack
from tests.harness import secret_values

pytestmark = pytest.mark.n8n


def test_no_secret_in_logs_rendered_files_state_or_output(stack: Stack) -> None:
    state = stack.settings.state_dir
    status = stack.cli("status")
    listed = stack.cli("workflows", "list", "--json")
    places = {
        "n8nctl up output": stack.up_output,
        "n8nctl status output": status.stdout + status.stderr,
        "n8nctl workflows list output": listed.stdout + listed.stderr,
    }
    files = [
        *sorted((state / "logs").glob("*.log*")),
        stack.settings.stack_dir(stack.settings.stack_name(prod=False)) / "supervisord.conf",
        state / "n8n-bootstrap.json",
        state / "n8n-workflows.json",
        *sorted((stack.project / "workflows").rglob("*.json")),
    ]
    for path in files:
        places[str(path.relative_to(stack.project))] = path.read_text(errors="replace")
    assert len(places) > 8, places.keys()
    secrets = secret_values(stack.settings)
    assert len(secrets) >= 8, secrets.keys()
    leaks = [
        (name, place) for name, value in secrets.items() for place, text in places.items() if value in text
    ]
    assert leaks == []
