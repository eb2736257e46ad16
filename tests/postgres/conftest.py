"""The in-process bridge (tests/bridge) on a real PostgreSQL: every test here gets a fresh database."""

from __future__ import annotations

import pytest

from tests.bridge.conftest import start_bridge

__all__ = ["start_bridge"]


@pytest.fixture
def bridge_database_url(postgres_url: str) -> str:
    return postgres_url
