"""Reading rendered compose files as Compose does: YAML, and the override merged over the base."""

from __future__ import annotations

from typing import Any

import yaml


def merged(files: dict[str, str]) -> dict[str, Any]:
    """compose.yaml with compose.prod.yaml applied: maps merge key by key, the override's scalars win,
    sequences (ports, volumes) are appended, as `docker compose -f a -f b` does for these keys."""
    result: dict[str, Any] = yaml.safe_load(files["compose.yaml"])
    if "compose.prod.yaml" in files:
        _merge(result, yaml.safe_load(files["compose.prod.yaml"]))
    return result


def _merge(base: dict[str, Any], override: dict[str, Any]) -> None:
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        elif isinstance(value, list) and isinstance(base.get(key), list) and key != "command":
            base[key] = base[key] + value
        else:
            base[key] = value


def host_ip(port: str | dict[str, Any]) -> str:
    """The host address of a `ports:` entry, short ("127.0.0.1:8000:8000") or long syntax."""
    if isinstance(port, dict):
        return str(port.get("host_ip", "0.0.0.0"))
    parts = str(port).split(":")
    return parts[0] if len(parts) == 3 else "0.0.0.0"


def bind_sources(service: dict[str, Any]) -> list[str]:
    """Host paths a service bind-mounts (named volumes are not host paths)."""
    sources = []
    for volume in service.get("volumes", []):
        source = volume.get("source", "") if isinstance(volume, dict) else volume.split(":")[0]
        if source.startswith((".", "/", "~")):
            sources.append(source)
    return sources
