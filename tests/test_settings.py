from __future__ import annotations

import re

import pytest

from n8nctl.errors import ConfigError
from n8nctl.settings import Settings, load_settings
from n8nctl.signing import generate_secret
from tests.conftest import PROJECT


def test_client_secrets_parse_with_rotation():
    x, y, z = (generate_secret() for _ in range(3))
    settings = Settings(_env_file=None, bridge_client_secrets=f"a:{x}|{y}, b:{z}")  # type: ignore[call-arg]
    assert {client: keys.live() for client, keys in settings.client_secrets.items()} == {
        "a": (x, y),
        "b": (z,),
    }


def test_malformed_client_secrets_do_not_echo_the_secret():
    settings = Settings(_env_file=None, bridge_client_secrets="whsec_leakme")  # type: ignore[call-arg]
    with pytest.raises(ConfigError) as error:
        _ = settings.client_secrets
    assert "leakme" not in error.value.line()


def test_invalid_values_become_one_line_config_errors(monkeypatch):
    monkeypatch.setenv("BRIDGE_CALLBACK_RETRY_SCHEDULE", "0,-5")
    with pytest.raises(ConfigError, match="BRIDGE_CALLBACK_RETRY_SCHEDULE"):
        load_settings(_env_file=None)


def test_defaults_put_state_under_the_project(tmp_path):
    settings = Settings(_env_file=None, n8nctl_project_dir=tmp_path)  # type: ignore[call-arg]
    assert settings.database_url == f"sqlite:///{tmp_path / '.n8nctl' / 'bridge.db'}"
    assert settings.registry_path == tmp_path / "workflows" / "registry.json"
    assert settings.retry_schedule == (0, 5, 300, 1800, 7200, 18000, 36000, 36000)


def test_env_example_documents_exactly_the_settings():
    documented = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", (PROJECT / ".env.example").read_text(), re.M))
    assert documented == {name.upper() for name in Settings.model_fields}


def test_env_example_holds_no_secret_values():
    for line in (PROJECT / ".env.example").read_text().splitlines():
        if re.match(r"^[A-Z_]*(SECRET|TOKEN|KEY)[A-Z_]*=", line):
            assert line.endswith("=") or line.endswith("X-Bridge-Token"), line
