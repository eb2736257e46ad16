"""Docs are part of the change: these fail when the code grows something undocumented."""

from __future__ import annotations

from n8nctl.bridge.errors import ERROR_STATUS
from tests.conftest import PROJECT


def test_every_error_code_is_in_contracts():
    contracts = (PROJECT / "docs" / "CONTRACTS.md").read_text()
    missing = [code for code in ERROR_STATUS if f"`{code}`" not in contracts]
    assert missing == [], f"docs/CONTRACTS.md does not list {missing}"


def test_every_job_error_code_the_bridge_sets_is_in_section_7_2():
    from n8nctl.contract import JOB_ERROR_CODES

    contracts = (PROJECT / "docs" / "CONTRACTS.md").read_text()
    section = contracts.split("### 7.2 Job error codes", 1)[1].split("\n## ", 1)[0]
    missing = [code for code in JOB_ERROR_CODES if f"| `{code}` |" not in section]
    assert missing == [], f"docs/CONTRACTS.md section 7.2 does not list {missing}"


def test_every_route_is_in_contracts():
    from n8nctl.bridge.app import create_app
    from n8nctl.registry import load_registry
    from n8nctl.settings import Settings

    app = create_app(Settings(_env_file=None), load_registry(PROJECT / "workflows" / "registry.json"))  # type: ignore[call-arg]
    contracts = (PROJECT / "docs" / "CONTRACTS.md").read_text()
    paths = {
        route.path for route in app.routes if route.path not in ("/docs", "/docs/oauth2-redirect", "/redoc")
    }
    missing = sorted(p for p in paths if p not in contracts)
    assert missing == []


def test_readme_quickstart_matches_ci():
    readme = (PROJECT / "README.md").read_text()
    ci = (PROJECT / ".ci" / "run").read_text()
    test_command = [
        line for line in ci.splitlines() if line and not line.startswith("#") and "set " not in line
    ]
    assert test_command and test_command[-1].strip() in readme
