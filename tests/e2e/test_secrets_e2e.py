"""Secrets never leak: after every other end-to-end test has run (this file sorts last), no secret value
of the stack appears in its logs, its rendered config, its state files or what n8nctl printed."""

from __future__ import annotations

import base64

import pytest
from pydantic import SecretStr

from n8nctl.bootstrap import hmac_text
from tests.e2e.conftest import Stack

pytestmark = pytest.mark.n8n


def secret_values(stack: Stack) -> dict[str, str]:
    settings = stack.settings
    values = {
        name: field.get_secret_value()
        for name, field in settings
        if isinstance(field, SecretStr) and field.get_secret_value()
    }
    for name, value in list(values.items()):
        if value.startswith(("whsec_", "flowbiz:whsec_")):  # also the key inside, raw and base64
            encoded = value.rsplit("whsec_", 1)[1]
            values[f"{name} (key)"] = encoded
            values[f"{name} (bytes)"] = base64.b64decode(encoded).hex()
    values["n8n hmacSecret"] = hmac_text(settings)
    values["n8n API key"] = settings.n8n_api_key_value()
    return values


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
        stack.settings.stack_dir("e2e") / "supervisord.conf",
        state / "n8n-bootstrap.json",
        state / "n8n-workflows.json",
        *sorted((stack.project / "workflows").rglob("*.json")),
    ]
    for path in files:
        places[str(path.relative_to(stack.project))] = path.read_text(errors="replace")
    assert len(places) > 8, places.keys()
    secrets = secret_values(stack)
    assert len(secrets) >= 8, secrets.keys()
    leaks = [
        (name, place) for name, value in secrets.items() for place, text in places.items() if value in text
    ]
    assert leaks == []
