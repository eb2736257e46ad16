"""Stand-ins for the official images, built on the test engine because no registry is reachable here
(docs/adr/0013). Named n8nctl-test/* so they are never mistaken for what a user runs; the stacks
select them through the image settings (`STAND_IN_SETTINGS`), the defaults stay the official ones.

Each image carries the hash of what it was built from (a label); a build is skipped when an image
with that tag and hash is in the engine already (the engine's data root is cached between runs).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tests.docker_engine import Engine

HERE = Path(__file__).parent
LABEL = "org.n8nctl.test.source"
BASE = "n8nctl-test/debian:bookworm"
PYTHON = "n8nctl-test/python:3.11-bookworm"
POSTGRES = "n8nctl-test/postgres:15-bookworm"
REDIS = "n8nctl-test/redis:7-bookworm"
N8N = "n8nctl-test/n8n"  # tagged with the n8n version, as the official image is


def stand_in_settings() -> dict[str, str]:
    """The .env lines that make a stack run the stand-ins."""
    return {
        "N8N_IMAGE": N8N,
        "POSTGRES_IMAGE": POSTGRES,
        "REDIS_IMAGE": REDIS,
        "BRIDGE_BASE_IMAGE": PYTHON,
    }


def ca_bundle() -> Path:
    """The CA bundle this machine's registries (PyPI, npm) are trusted with."""
    return Path(
        os.environ.get("PIP_CERT") or os.environ.get("SSL_CERT_FILE") or "/etc/ssl/certs/ca-certificates.crt"
    )


def _digest(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()[:16]


def _folder_digest(folder: Path) -> bytes:
    return b"".join(p.name.encode() + p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file())


def _built(engine: Engine, tag: str, source: str) -> bool:
    found = engine.docker("image", "inspect", tag, "--format", "{{json .Config.Labels}}", check=False)
    try:
        return (json.loads(found) or {}).get(LABEL) == source
    except ValueError:
        return False


def _debian_mirror() -> str:
    """The Debian mirror apt uses on this host (debootstrap fetches from it)."""
    for sources in [Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list")]:
        if not sources.exists():
            continue
        for line in sources.read_text().splitlines():
            words = line.split()
            listed = words[:1] == ["URIs:"] or (words[:1] == ["deb"] and len(words) > 2)
            if listed and "security" not in words[1]:
                return words[1]
    return "http://deb.debian.org/debian"


def build_base(engine: Engine, log: Callable[[str], None]) -> None:
    mirror = _debian_mirror()
    source = _digest(b"debootstrap minbase bookworm", mirror.encode())
    if _built(engine, BASE, source):
        return
    log(f"building {BASE} with debootstrap from {mirror} (~30 s)")
    with tempfile.TemporaryDirectory(prefix="n8nctl-rootfs-") as rootfs:
        subprocess.run(
            ["debootstrap", "--variant=minbase", "bookworm", rootfs, mirror],
            capture_output=True,
            check=True,
            timeout=900,
        )
        tar = subprocess.Popen(["tar", "-C", rootfs, "-c", "."], stdout=subprocess.PIPE)
        assert tar.stdout is not None
        engine_env = {**os.environ, **engine.env}
        subprocess.run(
            ["docker", "import", "--change", f"LABEL {LABEL}={source}", "-", BASE],
            stdin=tar.stdout,
            env=engine_env,
            capture_output=True,
            check=True,
            timeout=600,
        )
        tar.wait(timeout=60)


def _build(engine: Engine, name: str, tag: str, extra: dict[str, Path], log: Callable[[str], None]) -> None:
    """docker build tests/stand_ins/<name>/ plus `extra` files (hard-linked when they are folders)."""
    base_id = engine.docker("image", "inspect", BASE, "--format", "{{.Id}}").strip()
    source = _digest(
        _folder_digest(HERE / name),
        base_id.encode(),
        *(f"{k}={v.resolve()}:{v.stat().st_mtime_ns}".encode() for k, v in sorted(extra.items())),
    )
    if _built(engine, tag, source):
        return
    started = time.monotonic()
    log(f"building {tag}")
    with tempfile.TemporaryDirectory(prefix=f"n8nctl-{name}-", dir=Path.home() / ".cache") as context:
        shutil.copytree(HERE / name, context, dirs_exist_ok=True)
        for target, path in extra.items():
            if path.is_dir():  # hard links: the n8n install is ~2.7 GB, copying it would double that
                subprocess.run(["cp", "-al", str(path), str(Path(context) / target)], check=True)
            else:
                shutil.copy(path, Path(context) / target)
        # built by compose, with BuildKit: the classic builder takes minutes more for n8n's 250,000 files
        (Path(context) / "compose.yaml").write_text(
            json.dumps(
                {"services": {name: {"image": tag, "build": {"context": ".", "labels": {LABEL: source}}}}}
            )
        )
        engine.docker(
            "compose", "-f", f"{context}/compose.yaml", "-p", "n8nctl-stand-ins", "build", timeout=1800
        )
        engine.docker("builder", "prune", "-af")  # its cache would hold a second copy of the context
    log(f"built {tag} in {time.monotonic() - started:.0f} s")


def build_all(
    engine: Engine, *, n8n_home: Path, node: Path, n8n_version: str, log: Callable[[str], None]
) -> None:
    """Every stand-in: the Debian base, then Python, PostgreSQL, Redis and n8n on it."""
    build_base(engine, log)
    _build(engine, "python", PYTHON, {"ca-bundle.crt": ca_bundle()}, log)
    _build(engine, "postgres", POSTGRES, {}, log)
    _build(engine, "redis", REDIS, {}, log)
    _build(engine, "n8n", f"{N8N}:{n8n_version}", {"n8n": n8n_home, "node": node}, log)
