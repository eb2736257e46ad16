"""Headless, idempotent n8n bootstrap: owner account, API key, and the credentials templates use.

Credentials are created from `.env` values and named; workflow templates reference them by name only.
What was done is remembered in <state dir>/n8n-bootstrap.json (ids and SHA-256 fingerprints, no secret),
so a second run changes nothing unless a value in `.env` changed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from n8nctl.adapters.n8n_api import N8nApi
from n8nctl.envfile import write_private
from n8nctl.errors import ConfigError
from n8nctl.settings import Settings

BRIDGE_TOKEN = "n8nctl bridge token"  # noqa: S105 (a credential name)
CALLBACK_SIGNING = "n8nctl callback signing"


def hmac_text(settings: Settings) -> str:
    """The text n8n's Crypto node uses as HMAC key: what BRIDGE_N8N_CALLBACK_SECRET's newest secret
    encodes (during a rotation the bridge still accepts the older ones)."""
    try:
        return settings.n8n_callback_keys.hmac_keys()[0].decode("ascii")
    except (IndexError, UnicodeDecodeError):
        raise ConfigError(
            "BRIDGE_N8N_CALLBACK_SECRET cannot be used by n8n",
            why="its key is not ASCII text, and n8n's Crypto node takes its HMAC key as text",
            fix="Generate it as security/SECRETS_POLICY.md section 2.1 says (n8nctl init does).",
        ) from None


def credential_specs(settings: Settings) -> dict[str, tuple[str, dict[str, Any]]]:
    token = settings.bridge_n8n_webhook_token.get_secret_value()
    if not token or not settings.bridge_n8n_callback_secret.get_secret_value():
        raise ConfigError(
            "BRIDGE_N8N_WEBHOOK_TOKEN and BRIDGE_N8N_CALLBACK_SECRET are required",
            fix="Run n8nctl init (or set them in .env).",
        )
    return {
        BRIDGE_TOKEN: ("httpHeaderAuth", {"name": settings.bridge_n8n_webhook_header, "value": token}),
        CALLBACK_SIGNING: ("crypto", {"hmacSecret": hmac_text(settings)}),
    }


@dataclass
class BootstrapReport:
    changes: list[str] = field(default_factory=list)
    credential_ids: dict[str, str] = field(default_factory=dict)


def _fingerprint(type_: str, data: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps([type_, data], sort_keys=True).encode()).hexdigest()


def _state_file(settings: Settings) -> Path:
    return settings.state_dir / "n8n-bootstrap.json"


def _state(settings: Settings) -> dict[str, Any]:
    path = _state_file(settings)
    return json.loads(path.read_text()) if path.exists() else {"credentials": {}}


def credential_ids(settings: Settings) -> dict[str, str]:
    """The n8n ids of the credentials the last bootstrap created, by name (templates reference names)."""
    if not _state_file(settings).exists():
        raise ConfigError("n8n is not bootstrapped", fix="Run n8nctl up first.")
    return {name: c["id"] for name, c in _state(settings)["credentials"].items()}


def bootstrap(settings: Settings, api: N8nApi) -> BootstrapReport:
    """Make n8n ready for the bridge. Leaves `api` holding a working API key."""
    report = BootstrapReport()
    password = settings.n8n_owner_password.get_secret_value()
    if not password:
        raise ConfigError("N8N_OWNER_PASSWORD is not set", fix="Run n8nctl init (or set it in .env).")
    if api.owner_missing():
        api.setup_owner(settings.n8n_owner_email, password)
        report.changes.append(f"created the n8n owner {settings.n8n_owner_email}")
    if not api.api_key or not api.api_key_works():
        api.login(settings.n8n_owner_email, password)
        api.api_key = api.create_api_key("n8nctl")
        write_private(settings.api_key_file, api.api_key + "\n")
        report.changes.append(f"created an n8n API key (stored in {settings.api_key_file}, mode 0600)")
    report.credential_ids = sync_credentials(settings, api, report.changes)
    return report


def sync_credentials(
    settings: Settings, api: N8nApi, changes: list[str], *, only: tuple[str, ...] | None = None
) -> dict[str, str]:
    """Create or update the credentials the templates use from `.env` (those in `only`, default
    all); returns their ids by name and appends what changed to `changes`."""
    state = _state(settings)
    existing = {c["name"]: c["id"] for c in api.credentials()}
    ids: dict[str, str] = {}
    for name, (type_, data) in credential_specs(settings).items():
        if only is not None and name not in only:
            continue
        fingerprint = _fingerprint(type_, data)
        known = state["credentials"].get(name, {})
        credential_id = existing.get(name)
        if credential_id is None:
            credential_id = api.create_credential(name, type_, data)
            changes.append(f"created the n8n credential {name!r}")
        elif known.get("fingerprint") != fingerprint or known.get("id") != credential_id:
            api.update_credential(credential_id, data)
            changes.append(f"updated the n8n credential {name!r} from .env")
        state["credentials"][name] = {"id": credential_id, "fingerprint": fingerprint}
        ids[name] = credential_id
    write_private(_state_file(settings), json.dumps(state, indent=2) + "\n")
    return ids
