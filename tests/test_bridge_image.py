"""The bridge image installs bridge-requirements.txt with --no-deps: every package the bridge imports
must be pinned there, at the version the suite runs. A missing pin only showed in the docker tier
(the container's `bridge serve` died with ModuleNotFoundError); this finds it in a second."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# What `n8nctl bridge serve` loads, including what it imports only on a path (Redis guards with
# BRIDGE_REDIS_URL, the PostgreSQL driver, uvicorn's uvloop and httptools, the migrations at start).
BRIDGE_MODULES = [
    "n8nctl.cli.bridge",
    "n8nctl.bridge.app",
    "n8nctl.bridge.service",
    "n8nctl.registry",
    "n8nctl.store",
    "n8nctl.store.migrations",
    "n8nctl.adapters.redis_guards",
    "n8nctl.adapters.callbacks",
    "n8nctl.adapters.n8n",
    "sqlalchemy.dialects.postgresql.psycopg",
    "psycopg",
    "alembic.command",
    "uvicorn.loops.uvloop",
    "uvicorn.protocols.http.httptools_impl",
    "uvicorn.protocols.websockets.websockets_impl",
    # httpcore imports it on every lock it sets up and goes on without it, a sys.path search each time
    "sniffio",
]

# Imports the bridge's modules in a Python that, like the image, has only the pinned distributions:
# any other one is missing (optional imports, such as httpx's CLI, then fall back as they do there).
PROBE = """
import importlib, json, sys
from importlib import metadata

allowed = set(json.loads(sys.argv[1]))
before = set(sys.modules)  # the interpreter's start (site's .pth hooks), not the bridge
owners = metadata.packages_distributions()
canonical = lambda name: name.lower().replace("_", "-").replace(".", "-")


class OnlyPinned:
    def find_spec(self, name, path=None, target=None):
        dists = {canonical(d) for d in owners.get(name.split(".")[0], [])} - {"n8nctl"}
        if dists and not dists & allowed:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, OnlyPinned())
for module in sys.argv[2:]:
    importlib.import_module(module)
tops = {m.split(".")[0] for m in set(sys.modules) - before}
print(json.dumps(sorted({canonical(d) for t in tops for d in owners.get(t, [])} - {"n8nctl"})))
"""


def pinned() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "bridge-requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            pins[canonical(name)] = version
    return pins


def canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def test_the_bridge_imports_with_only_the_pinned_packages_at_the_suites_versions() -> None:
    pins = pinned()
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(sorted(pins)), *BRIDGE_MODULES],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, f"pin in bridge-requirements.txt what this needs:\n{done.stderr[-600:]}"
    imported = set(json.loads(done.stdout))
    assert {"jsonschema-rs", "redis", "psycopg", "fastapi", "uvloop"} <= imported  # the probe saw the bridge
    drifted = {d: (pins[d], metadata.version(d)) for d in imported if pins[d] != metadata.version(d)}
    assert not drifted, f"bridge-requirements.txt pins differ from the suite's: {drifted}"
