from __future__ import annotations

import json

import pytest

from n8nctl.errors import ConfigError
from n8nctl.registry import load_registry
from tests.conftest import PROJECT


def test_project_registry_has_the_pilot_workflows(registry):
    assert {"tiktok_live_helper", "content_pipeline"} <= set(registry.workflows)
    for entry in registry.workflows.values():
        assert entry.retention_days in (90, 365)
        assert entry.inputs_schema is not None, "pilot workflows validate their inputs"


def test_inputs_are_checked_against_the_schema(registry):
    entry = registry.workflows["tiktok_live_helper"]
    assert entry.input_errors({"stream_id": "s", "comments": []}) == []
    problems = entry.input_errors({"comments": [{"user": "a", "text": 3}]})
    assert "inputs: 'stream_id' is a required property" in problems
    assert "inputs['comments'][0]['text']: 3 is not of type 'string'" in problems


def test_allowed_clients(registry):
    entry = registry.workflows["tiktok_live_helper"]
    assert entry.allows("flowbiz") and not entry.allows("other")
    assert entry.model_copy(update={"allowed_clients": ("*",)}).allows("other")


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"max_timeout_seconds": 0}, "max_timeout_seconds"),
        ({"inputs_schema": {"type": "nonsense"}}, "not a valid JSON Schema"),
        ({"retention": "forever"}, "retention"),
        ({"webhook_path": "/leading-slash"}, "webhook_path"),
        ({"surprise": True}, "surprise"),
        ({"allowed_clients": []}, "allowed_clients"),
    ],
)
def test_invalid_registry_is_a_config_error_naming_the_field(tmp_path, change, why):
    data = json.loads((PROJECT / "workflows" / "registry.json").read_text())
    data["workflows"]["tiktok_live_helper"].update(change)
    path = tmp_path / "registry.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError) as error:
        load_registry(path)
    assert why in error.value.line() and "tiktok_live_helper" in error.value.line()


def test_missing_registry_says_what_to_do(tmp_path):
    with pytest.raises(ConfigError, match="BRIDGE_REGISTRY_PATH"):
        load_registry(tmp_path / "nope.json")
