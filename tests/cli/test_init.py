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


def test_init_writes_the_editor_htpasswd_that_matches_env(project, runner):
    import subprocess

    result = runner.invoke(cli, ["init"])
    assert result.exit_code == 0, result.output
    settings = Settings(_env_file=project / ".env")  # type: ignore[call-arg]
    htpasswd = project / ".n8nctl" / "editor.htpasswd"
    assert settings.htpasswd_file == htpasswd and str(htpasswd) in result.output
    assert stat.S_IMODE(htpasswd.stat().st_mode) == 0o600
    user, _, hashed = htpasswd.read_text().strip().partition(":")
    assert user == "operator" and hashed.startswith("$6$")
    password = settings.nginx_editor_password.get_secret_value()
    assert password and password not in result.output and password not in htpasswd.read_text()
    salt = hashed.split("$")[2]
    # the same hash the openssl CLI computes (nginx's crypt(3) reads this scheme)
    reference = subprocess.run(
        ["openssl", "passwd", "-6", "-salt", salt, "-stdin"], input=password, capture_output=True, text=True
    )
    assert reference.stdout.strip() == hashed


def test_init_htpasswd_only_keeps_env_and_needs_a_password(project, runner):
    assert runner.invoke(cli, ["init"]).exit_code == 0
    env = (project / ".env").read_text()
    htpasswd = project / ".n8nctl" / "editor.htpasswd"
    first = htpasswd.read_text()
    again = runner.invoke(cli, ["init", "--htpasswd"])
    assert again.exit_code == 0, again.output
    assert (project / ".env").read_text() == env
    assert htpasswd.read_text() != first, "a fresh salt each time"
    (project / ".env").write_text(
        "\n".join(x for x in env.splitlines() if not x.startswith("NGINX_EDITOR_PASSWORD="))
    )
    refused = runner.invoke(cli, ["init", "--htpasswd"])
    assert refused.exit_code == 2 and "NGINX_EDITOR_PASSWORD is empty" in refused.output
