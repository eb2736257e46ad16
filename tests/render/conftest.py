from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from n8nctl.settings import Settings

GOLDEN_PROJECT = Path("/srv/n8nctl")  # a fixed project folder, so rendered paths are stable


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No setting from the developer's shell reaches these tests."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)


@pytest.fixture
def settings_of() -> Callable[..., Settings]:
    """Settings from defaults and the given values only (no .env)."""

    def make(**values: Any) -> Settings:
        return Settings(_env_file=None, **{"n8nctl_project_dir": GOLDEN_PROJECT, **values})  # type: ignore[call-arg]

    return make
