"""The secret scanner scripts/scan-secrets runs (detect-secrets, docs/adr/0021): it finds the kinds of
secret `n8nctl init` generates when one is written into a rendered stack, and a clean render of
settings full of real secrets gives it nothing to find."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from n8nctl.envfile import GENERATED
from n8nctl.render import render_stack
from n8nctl.settings import Settings
from tests.conftest import PROJECT

SCANNER = Path(sys.executable).parent / "detect-secrets"


def _findings(folder: Path) -> list[tuple[str, int]]:
    scan = subprocess.run(
        [str(SCANNER), "scan", "--all-files", "."], cwd=folder, capture_output=True, text=True, check=True
    )
    results = json.loads(scan.stdout)["results"]
    return sorted((name, s["line_number"]) for name, found in results.items() for s in found)


def _rendered(tmp_path: Path, *, prod: bool) -> tuple[Path, dict[str, str]]:
    values = {name: make() for name, make in GENERATED.items()}
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, n8nctl_project_dir=PROJECT, **{name.lower(): value for name, value in values.items()}
    )
    files = render_stack(settings, runtime="compose", prod=prod)
    for relative, text in files.items():
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path, values


def test_a_clean_render_holds_nothing_the_scanner_finds(tmp_path):
    folder, _ = _rendered(tmp_path, prod=True)
    assert _findings(folder) == []


def test_the_scanner_finds_each_generated_kind_of_secret_written_into_a_render(tmp_path):
    folder, values = _rendered(tmp_path, prod=False)
    compose = folder / "compose.yaml"
    clean = compose.read_text()
    for name in ("BRIDGE_CALLBACK_SIGNING_SECRET", "BRIDGE_N8N_WEBHOOK_TOKEN", "POSTGRES_PASSWORD"):
        leaked = clean.replace(f'{name}: "${{{name}:-}}"', f'{name}: "{values[name]}"')
        leaked = leaked.replace(f'{name}: "${{{name}:?', f'{name}: "{values[name]}" # ?')
        assert leaked != clean, f"{name} is not in the rendered compose file"
        compose.write_text(leaked)
        assert _findings(folder), f"the scanner did not see {name} written into compose.yaml"
    compose.write_text(clean)
