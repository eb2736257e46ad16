"""`n8nctl doctor`: each class of problem is found on a real project and exits with its own code."""

from __future__ import annotations

import json
import re
import socket

import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from n8nctl.cli.main import cli
from n8nctl.doctor import CLASSES, listening_sockets
from n8nctl.signing import generate_secret
from tests.harness import ServerThread, free_port


@pytest.fixture
def project(project, runner, monkeypatch):
    """An initialised project on free ports, with n8n nowhere (its API key is not checked)."""
    assert runner.invoke(cli, ["init"]).exit_code == 0
    for name in ("BRIDGE_PORT", "N8N_PORT", "N8N_RUNNERS_BROKER_PORT"):
        monkeypatch.setenv(name, str(free_port()))
    monkeypatch.setenv("N8N_BASE_URL", f"http://127.0.0.1:{free_port()}")
    return project


def _set(project, **values: str) -> None:
    env = project / ".env"
    text = env.read_text()
    for name, value in values.items():
        text = re.sub(rf"^{name}=.*$", f"{name}={value}", text, flags=re.M)
    env.write_text(text)


def _doctor(runner):
    return runner.invoke(cli, ["doctor"])


def _code(name: str) -> int:
    return next(c.code for c in CLASSES if c.name == name)


def test_a_fresh_project_is_healthy(project, runner):
    result = _doctor(runner)
    assert result.exit_code == 0, result.output
    assert "ok: no problem found" in result.output


@pytest.mark.parametrize(
    ("values", "found"),
    [
        ({"BRIDGE_N8N_WEBHOOK_TOKEN": "tok-9x"}, "weak_secret"),
        ({"BRIDGE_CALLBACK_SIGNING_SECRET": "whsec_c2hvcnQ="}, "weak_secret"),
        ({"BRIDGE_CLIENT_SECRETS": "flowbiz:whsec_"}, "weak_secret"),
        ({"POSTGRES_PASSWORD": ""}, "weak_secret"),
        (
            {
                "POSTGRES_PASSWORD": "same-value-for-two-things",
                "NGINX_EDITOR_PASSWORD": "same-value-for-two-things",
            },
            "shared_secret",
        ),
        ({"N8N_ENCRYPTION_KEY": ""}, "encryption_key"),
    ],
    ids=["short-token", "short-key", "malformed", "missing", "shared", "no-encryption-key"],
)
def test_each_class_is_found_with_its_exit_code(project, runner, values, found):
    _set(project, **values)
    result = _doctor(runner)
    assert result.exit_code == _code(found), result.output
    assert f"PROBLEM {found}:" in result.output
    for value in values.values():
        assert not value or value not in result.output, "a secret value was printed"


def test_the_n8n_secret_shared_with_the_callback_secret_is_found(project, runner):
    same = generate_secret()
    _set(project, BRIDGE_N8N_CALLBACK_SECRET=same, BRIDGE_CALLBACK_SIGNING_SECRET=same)
    result = _doctor(runner)
    assert result.exit_code == _code("shared_secret"), result.output
    assert "BRIDGE_CALLBACK_SIGNING_SECRET and BRIDGE_N8N_CALLBACK_SECRET share a secret" in result.output
    assert same not in result.output


def test_an_env_file_others_can_read(project, runner):
    (project / ".env").chmod(0o644)
    result = _doctor(runner)
    assert result.exit_code == _code("env_readable") and "mode 0644" in result.output


def test_a_port_bound_beyond_loopback_is_found(project, runner, monkeypatch):
    with socket.socket() as exposed:
        exposed.bind(("0.0.0.0", 0))  # the point of the test; nothing connects to it
        exposed.listen()
        port = exposed.getsockname()[1]
        assert any(p == port and not a.is_loopback for a, p in listening_sockets())
        monkeypatch.setenv("N8N_PORT", str(port))
        result = _doctor(runner)
    assert result.exit_code == _code("exposed_port"), result.output
    assert f"n8n (N8N_PORT) listens on 0.0.0.0 port {port}" in result.output


def test_a_bridge_host_beyond_loopback_is_found(project, runner, monkeypatch):
    monkeypatch.setenv("BRIDGE_HOST", "0.0.0.0")
    assert _doctor(runner).exit_code == _code("exposed_port")


def test_an_api_key_n8n_refuses(project, runner, monkeypatch):
    n8n = ServerThread(
        Starlette(
            routes=[Route("/api/v1/workflows", lambda r: JSONResponse({"message": "unauthorized"}, 401))]
        ),
        free_port(),
    )
    n8n.start()
    try:
        monkeypatch.setenv("N8N_BASE_URL", f"http://127.0.0.1:{n8n.port}")
        monkeypatch.setenv("N8N_API_KEY", "revoked-key-0123456789")
        result = _doctor(runner)
    finally:
        n8n.stop()
    assert result.exit_code == _code("n8n_api_key"), result.output
    assert "revoked-key" not in result.output


def test_an_encryption_key_that_is_not_the_data_key(project, runner):
    config = project / ".n8nctl" / "n8n" / ".n8n" / "config"
    config.parent.mkdir(parents=True)
    config.write_text(json.dumps({"encryptionKey": "the-key-the-data-was-encrypted-with"}))
    result = _doctor(runner)
    assert result.exit_code == _code("encryption_key"), result.output
    assert "the-key-the-data" not in result.output


def test_versions_that_differ_between_the_runtimes_or_from_the_running_n8n(project, runner, monkeypatch):
    settings = Route("/rest/settings", lambda r: JSONResponse({"data": {"versionCli": "2.39.1"}}))
    n8n = ServerThread(Starlette(routes=[settings]), free_port())
    n8n.start()
    try:
        monkeypatch.setenv("N8N_BASE_URL", f"http://127.0.0.1:{n8n.port}")
        running = _doctor(runner)
        monkeypatch.setenv("N8N_VERSION", "2.41.3")
        configured = _doctor(runner)
    finally:
        n8n.stop()
    assert running.exit_code == _code("version_mismatch"), running.output
    assert "the running n8n is 2.39.1, N8N_VERSION is 2.40.7" in running.output
    assert configured.exit_code == _code("version_mismatch"), configured.output
    assert "N8N_VERSION is 2.41.3 (the compose image tag), but the native runtime installs n8n 2.40.7" in (
        configured.output
    )


def test_several_classes_exit_with_the_first_and_list_them_all(project, runner):
    _set(project, N8N_ENCRYPTION_KEY="", BRIDGE_N8N_WEBHOOK_TOKEN="short")
    (project / ".env").chmod(0o640)
    result = _doctor(runner)
    assert result.exit_code == _code("weak_secret")
    assert {"weak_secret", "env_readable", "encryption_key"} <= set(
        re.findall(r"PROBLEM (\w+):", result.output)
    )
