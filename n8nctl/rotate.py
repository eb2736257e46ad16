"""`n8nctl secrets rotate NAME`: a new secret, a grace window in which the old one still signs (and
is still accepted), n8n's credential moved where the secret lives there, and an audit event.

The grace window is written into `.env` itself (`whsec_new|whsec_old@<UTC time>`, `signing.Keyring`):
the bridge drops a retired secret at the time it names, without a restart. The bridge reads `.env`
at start, so a rotation takes effect when the bridge restarts; n8n is moved only when that cannot
refuse a message in flight (section 5 of security/SECRETS_POLICY.md).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from n8nctl import bootstrap
from n8nctl.adapters.bridge_client import accepts_n8n_secret
from n8nctl.adapters.n8n_api import N8nApi
from n8nctl.envfile import set_values
from n8nctl.errors import ConfigError, N8nctlError
from n8nctl.settings import Settings, load_settings
from n8nctl.signing import Keyring, generate_secret

# name -> (the secret's new value, the n8n credential that holds it, or None)
ROTATABLE: dict[str, tuple[Callable[[], str], str | None]] = {
    "BRIDGE_CLIENT_SECRETS": (generate_secret, None),
    "BRIDGE_CALLBACK_SIGNING_SECRET": (generate_secret, None),
    # n8n's Crypto node takes its key as text (SECRETS_POLICY 2.1)
    "BRIDGE_N8N_CALLBACK_SECRET": (
        lambda: generate_secret(secrets.token_urlsafe(32).encode()),
        bootstrap.CALLBACK_SIGNING,
    ),
    "BRIDGE_N8N_WEBHOOK_TOKEN": (lambda: secrets.token_urlsafe(32), bootstrap.BRIDGE_TOKEN),
}


@dataclass
class Rotation:
    name: str
    client: str | None
    retires_at: datetime | None
    """When the old secret stops signing and being accepted; None: at once (no grace possible)."""
    n8n: str = "the secret is not held by n8n"
    next_steps: list[str] = field(default_factory=list)


def rotate(
    settings: Settings,
    name: str,
    *,
    client: str | None,
    grace: timedelta,
    actor: str,
    n8n_only: bool = False,
    now: datetime | None = None,
) -> Rotation:
    """Rotate `name` in the project's `.env` (or, with `n8n_only`, only move n8n's credential to
    the newest secret there once the bridge accepts it). Raises ConfigError before changing anything
    when the rotation cannot be done as asked."""
    if name not in ROTATABLE:
        raise ConfigError(f"{name} cannot be rotated here", fix=f"Name one of: {', '.join(ROTATABLE)}.")
    if (name == "BRIDGE_CLIENT_SECRETS") != (client is not None):
        raise ConfigError(
            "--client goes with BRIDGE_CLIENT_SECRETS, and only with it",
            fix="Name the client whose secret to rotate: --client CLIENT_ID.",
        )
    if name in os.environ:
        raise ConfigError(
            f"{name} is set in the environment",
            why="it overrides .env, so a new value written there would not be used",
            fix="Rotate it where the environment sets it, or unset it there.",
        )
    moment = now or datetime.now(UTC)
    retires = None if name == "BRIDGE_N8N_WEBHOOK_TOKEN" else moment + grace
    rotation = Rotation(name, client, retires)
    env_file = settings.n8nctl_project_dir / ".env"
    if not n8n_only:
        set_values(env_file, {name: _new_value(settings, name, client, retires, moment)})
        _audit(settings, rotation, actor)
        rotation.next_steps.append("restart the bridge: it reads .env at start")
    updated = load_settings(_env_file=env_file)
    _move_n8n(updated, rotation)
    if name == "BRIDGE_CALLBACK_SIGNING_SECRET":
        rotation.next_steps.append(
            "give the new secret (first in .env) to every FlowBiz callback receiver before the old retires"
        )
    if name == "BRIDGE_CLIENT_SECRETS":
        rotation.next_steps.append(
            f"give client {client}'s new secret (first in its entry in .env) to that FlowBiz service "
            "before the old one retires"
        )
    return rotation


def _new_value(
    settings: Settings, name: str, client: str | None, retires: datetime | None, now: datetime
) -> str:
    fresh = ROTATABLE[name][0]()
    if name == "BRIDGE_N8N_WEBHOOK_TOKEN":
        return fresh
    if name == "BRIDGE_CLIENT_SECRETS":
        clients = dict(settings.client_secrets)
        if client not in clients:
            raise ConfigError(f"no client {client!r} in BRIDGE_CLIENT_SECRETS", fix="Check --client.")
        clients[client] = _renewed(clients[client], fresh, retires, now)
        return ",".join(f"{cid}:{keyring}" for cid, keyring in clients.items())
    current = settings.callback_signing_keys if "CALLBACK_SIGNING" in name else settings.n8n_callback_keys
    return str(_renewed(current, fresh, retires, now))


def _renewed(current: Keyring, fresh: str, retires: datetime | None, now: datetime) -> Keyring:
    """`fresh` first; the live old secrets kept until `retires` (or their own earlier retirement)."""
    kept = tuple(
        (secret, min(until, retires) if until and retires else until or retires)
        for secret, until in current.entries
        if until is None or until > now
    )
    return Keyring(((fresh, None), *kept))


def _move_n8n(settings: Settings, rotation: Rotation) -> None:
    credential = ROTATABLE[rotation.name][1]
    if credential is None:
        return
    if rotation.name == "BRIDGE_N8N_CALLBACK_SECRET" and not accepts_n8n_secret(
        settings.bridge_url, settings.n8n_callback_keys.live()[0]
    ):
        # n8n keeps signing with the old secret, which the bridge accepts all through the window
        rotation.n8n = "not moved yet: the running bridge does not accept the new secret"
        rotation.next_steps.append(
            f"after the restart, move n8n: n8nctl secrets rotate {rotation.name} --n8n-only"
        )
        return
    api = N8nApi(settings.n8n_url, api_key=settings.n8n_api_key_value())
    try:
        changes: list[str] = []
        bootstrap.sync_credentials(settings, api, changes, only=(credential,))
    except N8nctlError as exc:
        rotation.n8n = f"failed: {exc.line()}"
        rotation.next_steps.append(f"when n8n answers: n8nctl secrets rotate {rotation.name} --n8n-only")
        return
    finally:
        api.close()
    rotation.n8n = f"credential {credential!r} " + ("updated" if changes else "already up to date")
    if rotation.name == "BRIDGE_N8N_WEBHOOK_TOKEN":
        rotation.next_steps[:0] = [
            "until the bridge restarts, n8n answers its dispatches 403: jobs wait and are retried, none lost"
        ]


def _audit(settings: Settings, rotation: Rotation, actor: str) -> None:
    from n8nctl.store import Store

    store = Store(settings.database_url)
    try:
        store.migrate()
        store.record_operator_event(
            "*",
            "secret_rotated",
            actor=actor,
            details={
                "name": rotation.name,
                "client": rotation.client,
                "old_retires_at": rotation.retires_at.isoformat() if rotation.retires_at else None,
            },
        )
    finally:
        store.close()
