from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.conftest import PROJECT


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the project's operator files in a temporary folder, as the working directory."""
    shutil.copy(PROJECT / ".env.example", tmp_path / ".env.example")
    shutil.copytree(PROJECT / "workflows", tmp_path / "workflows")
    monkeypatch.chdir(tmp_path)
    for name in ("N8NCTL_PROJECT_DIR", "N8NCTL_STATE_DIR", "BRIDGE_DATABASE_URL", "BRIDGE_CLIENT_SECRETS"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()
