"""No Docker engine: argument level. The compose runtime driven through python-on-whales against the
stand-in `docker` in stand_in_docker.py, first on PATH: tests read the exact command lines."""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from n8nctl.envfile import write_env
from n8nctl.settings import Settings, load_settings
from tests.conftest import PROJECT

HEALTHY_DEV = [
    {"service": name, "status": "running", "health": "healthy"}
    for name in ("postgres", "redis", "n8n", "bridge")
]


@dataclass
class StandInDocker:
    folder: Path
    postgres_calls: list[tuple[str, str]]

    @property
    def executable(self) -> Path:
        return self.folder / "docker"

    def scenario(self, **values: Any) -> None:
        (self.folder / "scenario.json").write_text(json.dumps(values))

    def calls(self) -> list[list[str]]:
        log = self.folder / "calls.jsonl"
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    def compose_calls(self, subcommand: str) -> list[list[str]]:
        """`docker compose ...` calls whose subcommand (first word after the global flags) is `subcommand`."""
        found = []
        for call in self.calls():
            if call[:1] != ["compose"]:
                continue
            rest, index = call[1:], 0
            while index < len(rest) and rest[index].startswith("--"):
                index += 2  # every global compose flag python-on-whales passes takes a value
            if rest[index : index + 1] == [subcommand]:
                found.append(call)
        return found


@pytest.fixture
def docker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> StandInDocker:
    """The stand-in docker first on PATH. The stack's PostgreSQL, n8n and bridge are not there either:
    the postgres adapter records what `up` asks of it instead, and the HTTP probes answer healthy
    (the real ones are exercised by the docker tier)."""
    from n8nctl.adapters import postgres
    from n8nctl.health import Probe
    from n8nctl.runtimes import compose

    healthy = {name: Probe(True, None, "http://stand-in") for name in ("n8n", "bridge")}
    monkeypatch.setattr(compose, "probe_services", lambda settings: healthy)

    asked: list[tuple[str, str]] = []
    monkeypatch.setattr(postgres, "check_login", lambda url, **_: asked.append(("login", url)))
    monkeypatch.setattr(
        postgres, "ensure_database", lambda url, **kw: asked.append(("ensure", kw["role"])) or True
    )
    migrate = compose.ComposeRuntime.migrate_store

    def migrate_store(runtime: compose.ComposeRuntime) -> tuple[str | None, str]:
        """A SQLite store (dev) is migrated for real; the prod stack's PostgreSQL is recorded."""
        if runtime.store_url().startswith("sqlite"):
            return migrate(runtime)
        asked.append(("migrate", runtime.store_url()))
        return None, "head"

    monkeypatch.setattr(compose.ComposeRuntime, "migrate_store", migrate_store)
    folder = tmp_path / "bin"
    folder.mkdir()
    source = Path(__file__).with_name("stand_in_docker.py").read_text()
    stand_in = StandInDocker(folder, asked)
    stand_in.executable.write_text(f"#!{sys.executable}\n{source}")
    stand_in.executable.chmod(0o755)
    stand_in.scenario(containers=HEALTHY_DEV)
    monkeypatch.setenv("STAND_IN_DOCKER_LOG", str(folder / "calls.jsonl"))
    monkeypatch.setenv("STAND_IN_DOCKER_SCENARIO", str(folder / "scenario.json"))
    monkeypatch.setenv("PATH", f"{folder}:{Path(sys.executable).parent}:/usr/bin:/bin")
    return stand_in


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project with a fresh .env (real generated secrets) as the working directory."""
    folder = tmp_path / "project"
    folder.mkdir()
    shutil.copy(PROJECT / ".env.example", folder / ".env.example")
    shutil.copytree(PROJECT / "workflows", folder / "workflows")
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.chdir(folder)
    write_env(folder)
    return folder


@pytest.fixture
def settings(project: Path) -> Settings:
    return load_settings(_env_file=project / ".env", n8nctl_project_dir=project)


def secret_values(settings: Settings) -> list[str]:
    return [
        value.get_secret_value()
        for value in settings.model_dump().values()
        if hasattr(value, "get_secret_value") and value.get_secret_value()
    ]
