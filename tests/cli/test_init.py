from __future__ import annotations

import stat

from n8nctl.cli.main import cli
from n8nctl.envfile import GENERATED
from n8nctl.settings import Settings


def test_init_writes_env_with_fresh_secrets_mode_0600(project, runner):
    result = runner.invoke(cli, ["init"])
    assert result.exit_code == 0, result.output
    env = project / ".env"
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    values = dict(
        line.split("=", 1) for line in env.read_text().splitlines() if "=" in line and line[0] != "#"
    )
    for name in GENERATED:
        assert values[name], f"{name} was not generated"
        assert values[name] not in result.output, "a secret value was printed"
        assert name in result.output
    settings = Settings(_env_file=env)  # type: ignore[call-arg]
    assert list(settings.client_secrets) == ["flowbiz"]
    assert settings.bridge_callback_signing_secret.get_secret_value().startswith("whsec_")


def test_two_inits_generate_different_secrets(project, runner):
    runner.invoke(cli, ["init"])
    first = (project / ".env").read_text()
    assert runner.invoke(cli, ["init", "--force"]).exit_code == 0
    assert (project / ".env").read_text() != first


def test_init_refuses_to_overwrite_and_force_keeps_a_backup(project, runner):
    assert runner.invoke(cli, ["init"]).exit_code == 0
    original = (project / ".env").read_text()
    refused = runner.invoke(cli, ["init"])
    assert refused.exit_code == 1
    assert "already exists" in refused.output and "--force" in refused.output
    assert (project / ".env").read_text() == original
    assert runner.invoke(cli, ["init", "--force"]).exit_code == 0
    backups = list(project.glob(".env.bak-*"))
    assert len(backups) == 1 and backups[0].read_text() == original
    assert stat.S_IMODE(backups[0].stat().st_mode) == 0o600


def test_init_without_example_is_a_config_error(tmp_path, runner, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(cli, ["init"])
    assert result.exit_code == 2
    assert ".env.example not found" in result.output


def test_n8n_callback_secret_is_text_that_n8n_can_hold(project, runner):
    import base64

    runner.invoke(cli, ["init"])
    line = next(
        x for x in (project / ".env").read_text().splitlines() if x.startswith("BRIDGE_N8N_CALLBACK_SECRET=")
    )
    key = base64.b64decode(line.split("=", 1)[1].removeprefix("whsec_"))
    assert len(key) >= 32 and key.decode("ascii").isprintable()
