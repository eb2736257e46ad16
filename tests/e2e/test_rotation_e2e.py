"""`n8nctl secrets rotate` on the real stack: the two secrets n8n holds move in n8n's credential store
too, and jobs run end to end through the rotation (sorts before test_secrets_e2e, which then checks
that nothing leaked)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from n8nctl.settings import Settings
from n8nctl.store import Store
from tests.e2e.conftest import Stack
from tests.e2e.test_n8n_e2e import callback_of, submit
from tests.harness import Receiver, http_status, wait_until

pytestmark = pytest.mark.n8n


def _restart_bridge(stack: Stack) -> None:
    stack.supervisorctl("restart", "bridge")
    wait_until(lambda: http_status(f"{stack.settings.bridge_url}/healthz") == 200, 30, "the bridge back")


def _env(stack: Stack) -> Settings:
    return Settings(_env_file=stack.project / ".env")  # type: ignore[call-arg]


def _job_runs(stack: Stack, receiver: Receiver) -> None:
    job_id = submit(
        stack,
        receiver,
        "tiktok_live_helper",
        {"stream_id": "rot", "comments": [{"user": "ana", "text": "how much is it?"}]},
    )
    assert callback_of(receiver, job_id)["status"] == "success"


def test_rotating_the_secrets_n8n_holds(stack: Stack, receiver: Receiver) -> None:
    token = stack.cli("secrets", "rotate", "BRIDGE_N8N_WEBHOOK_TOKEN", "--actor", "e2e")
    assert token.returncode == 0, token.stderr
    assert "credential 'n8nctl bridge token' updated" in token.stdout
    new_token = _env(stack).bridge_n8n_webhook_token.get_secret_value()
    assert new_token != stack.settings.bridge_n8n_webhook_token.get_secret_value()
    assert new_token not in token.stdout + token.stderr
    _restart_bridge(stack)
    _job_runs(stack, receiver)  # n8n's webhook accepts the bridge's new token

    secret = stack.cli("secrets", "rotate", "BRIDGE_N8N_CALLBACK_SECRET", "--actor", "e2e")
    assert secret.returncode == 0, secret.stderr
    assert "not moved yet" in secret.stdout, "the running bridge does not know the new secret yet"
    _job_runs(stack, receiver)  # n8n still signs with the old secret, which the bridge accepts
    _restart_bridge(stack)
    moved = stack.cli("secrets", "rotate", "BRIDGE_N8N_CALLBACK_SECRET", "--n8n-only")
    assert moved.returncode == 0, moved.stderr
    assert "credential 'n8nctl callback signing' updated" in moved.stdout
    _job_runs(stack, receiver)  # n8n signs with the new secret; the bridge accepts it

    store = Store(stack.settings.database_url)
    try:
        events = [
            e for e in store.audit_since(datetime(2000, 1, 1, tzinfo=UTC)) if e["action"] == "secret_rotated"
        ]
    finally:
        store.close()
    assert [(e["actor"], e["details"]["name"]) for e in events] == [
        ("e2e", "BRIDGE_N8N_WEBHOOK_TOKEN"),
        ("e2e", "BRIDGE_N8N_CALLBACK_SECRET"),
    ]
