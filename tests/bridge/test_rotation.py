"""`n8nctl secrets rotate`: the grace window as the bridge lives it. Both signatures are sent, both
secrets accepted, until the old one retires by itself; audited; no secret printed."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta

import standardwebhooks
from click.testing import CliRunner

from n8nctl.cli.main import cli
from n8nctl.settings import Settings
from n8nctl.signing import generate_secret
from n8nctl.store import Store
from tests.conftest import PROJECT, eventually, job_body


def _project(tmp_path, monkeypatch):
    shutil.copy(PROJECT / ".env.example", tmp_path / ".env.example")
    monkeypatch.chdir(tmp_path)
    for name in ("N8NCTL_PROJECT_DIR", "N8NCTL_STATE_DIR", "BRIDGE_DATABASE_URL", "BRIDGE_CLIENT_SECRETS"):
        monkeypatch.delenv(name, raising=False)
    assert CliRunner().invoke(cli, ["init"]).exit_code == 0
    return tmp_path


def _settings(project) -> Settings:
    return Settings(_env_file=project / ".env", n8nctl_project_dir=project)  # type: ignore[call-arg]


async def test_a_rotated_callback_secret_signs_with_both_until_the_old_retires(
    tmp_path, monkeypatch, start_bridge
):
    project = _project(tmp_path, monkeypatch)
    old = _settings(project).bridge_callback_signing_secret.get_secret_value()
    result = CliRunner().invoke(
        cli, ["secrets", "rotate", "BRIDGE_CALLBACK_SIGNING_SECRET", "--grace", "2h", "--actor", "ana"]
    )
    assert result.exit_code == 0, result.output
    rotated = _settings(project)
    new, kept = rotated.callback_signing_keys.live()
    assert kept == old and new != old
    assert new not in result.output and old not in result.output
    retires = rotated.callback_signing_keys.entries[1][1]
    assert timedelta(hours=1, minutes=59) < retires - datetime.now(UTC) <= timedelta(hours=2)

    events = Store(rotated.database_url).audit_since(datetime(2000, 1, 1, tzinfo=UTC))
    rotation = [e for e in events if e["action"] == "secret_rotated"]
    assert [(e["actor"], e["details"]["name"]) for e in rotation] == [
        ("ana", "BRIDGE_CALLBACK_SIGNING_SECRET")
    ]

    value = rotated.bridge_callback_signing_secret.get_secret_value()
    async with start_bridge(bridge_callback_signing_secret=value) as h:
        body = job_body()
        await h.submit(body)
        await eventually(lambda: h.n8n.calls, what="dispatch")
        await h.result(body["job_id"])
        await eventually(lambda: h.receiver.received, what="the callback")
        headers, raw = h.receiver.received[0]
        for secret in (old, new):  # a receiver holding either secret verifies it
            standardwebhooks.Webhook(secret).verify(raw, headers)


async def test_both_client_secrets_are_accepted_until_the_old_retires_without_a_restart(start_bridge):
    old, new = generate_secret(), generate_secret()
    retires = datetime.now(UTC) + timedelta(seconds=1.5)
    async with start_bridge(  # the poll below submits every 10 ms: over the default rate limit
        workers=False,
        bridge_client_secrets=f"flowbiz:{new}|{old}@{retires.isoformat()}",
        bridge_rate_limit="1000000/second",
    ) as h:
        first = await h.submit(job_body(), secret=new)
        assert first.status_code == 202, first.text
        assert (await h.submit(job_body(), secret=old)).status_code == 202

        async def old_refused():
            return (await h.submit(job_body(), secret=old)).status_code == 401

        await eventually(old_refused, timeout=5, what="the old secret to retire")
        assert datetime.now(UTC) >= retires
        assert (await h.submit(job_body(), secret=new)).status_code == 202


def test_rotating_a_client_secret_keeps_the_other_clients(tmp_path, monkeypatch):
    project = _project(tmp_path, monkeypatch)
    other = generate_secret()
    env = project / ".env"
    flowbiz = _settings(project).client_secrets["flowbiz"].live()[0]
    env.write_text(env.read_text().replace(f"flowbiz:{flowbiz}", f"flowbiz:{flowbiz},other:{other}"))
    result = CliRunner().invoke(cli, ["secrets", "rotate", "BRIDGE_CLIENT_SECRETS", "--client", "flowbiz"])
    assert result.exit_code == 0, result.output
    clients = _settings(project).client_secrets
    assert clients["other"].live() == (other,)
    assert clients["flowbiz"].live()[1] == flowbiz and len(clients["flowbiz"].live()) == 2


def test_the_n8n_callback_secret_waits_for_the_bridge_before_n8n_moves(tmp_path, monkeypatch):
    """No bridge accepts the new secret yet (none runs): n8n keeps signing with the old one, which the
    bridge accepts all through the window, and the operator is told how to finish."""
    project = _project(tmp_path, monkeypatch)
    monkeypatch.setenv("N8NCTL_BRIDGE_URL", "http://127.0.0.1:9")
    result = CliRunner().invoke(cli, ["secrets", "rotate", "BRIDGE_N8N_CALLBACK_SECRET"])
    assert result.exit_code == 0, result.output
    assert "not moved yet" in result.output and "--n8n-only" in result.output
    keys = _settings(project).n8n_callback_keys
    assert len(keys.live()) == 2 and keys.hmac_keys()[0].decode("ascii")  # n8n's Crypto node takes text


def test_rotate_refuses_a_secret_the_environment_overrides(tmp_path, monkeypatch):
    project = _project(tmp_path, monkeypatch)
    before = (project / ".env").read_text()
    monkeypatch.setenv("BRIDGE_CALLBACK_SIGNING_SECRET", generate_secret())
    result = CliRunner().invoke(cli, ["secrets", "rotate", "BRIDGE_CALLBACK_SIGNING_SECRET"])
    assert result.exit_code == 2
    assert "set in the environment" in result.output
    assert (project / ".env").read_text() == before


def test_rotate_names_an_unknown_client(tmp_path, monkeypatch):
    _project(tmp_path, monkeypatch)
    result = CliRunner().invoke(cli, ["secrets", "rotate", "BRIDGE_CLIENT_SECRETS", "--client", "nobody"])
    assert (result.exit_code, "no client 'nobody'" in result.output) == (2, True)
