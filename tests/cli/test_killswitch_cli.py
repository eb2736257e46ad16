"""`n8nctl kill` / `revive` input errors and the bridge-side effect without n8n or a running bridge.
The full behaviour against a real n8n and bridge is in tests/e2e/test_killswitch_e2e.py."""

from __future__ import annotations

import json
import socket
import threading

from n8nctl.cli.main import cli
from n8nctl.store import Store


def test_kill_needs_exactly_one_target(project, runner):
    for args in (["kill", "--reason", "x"], ["kill", "content_pipeline", "--all", "--reason", "x"]):
        result = runner.invoke(cli, args)
        assert result.exit_code == 2, result.output
        assert "name one WORKFLOW_KEY, or pass --all" in result.output
    assert runner.invoke(cli, ["kill", "content_pipeline"]).exit_code == 2, "--reason is required"


def test_kill_of_an_unknown_workflow_changes_nothing(project, runner):
    store = Store(f"sqlite:///{project / '.n8nctl' / 'bridge.db'}")
    store.migrate()
    result = runner.invoke(cli, ["kill", "no_such_flow", "--reason", "x"])
    assert result.exit_code == 4, result.output
    assert "no workflow 'no_such_flow' in the registry" in result.output
    assert store.switch_states() == {}


def test_kill_without_n8n_sets_the_switch_and_reports_the_failed_steps(project, runner, monkeypatch):
    monkeypatch.setenv("N8N_BASE_URL", "http://127.0.0.1:9")  # nothing listens: n8n is unreachable
    monkeypatch.setenv("N8NCTL_BRIDGE_URL", "http://127.0.0.1:9")
    store = Store(f"sqlite:///{project / '.n8nctl' / 'bridge.db'}")
    store.migrate()
    result = runner.invoke(cli, ["kill", "content_pipeline", "--reason", "INC-1", "--actor", "ana", "--json"])
    assert result.exit_code == 1
    report = json.loads(result.output[: result.output.rindex("}") + 1])
    assert [(s["name"], s["ok"]) for s in report["steps"]] == [
        ("bridge rejects new jobs", True),
        ("n8n workflow deactivated", False),
        ("queued jobs failed", True),
        ("running executions stopped", False),
    ]
    assert "not running and applies it when it starts" in report["steps"][0]["detail"]
    switch = store.switch_states()["content_pipeline"]
    assert (switch["killed"], switch["actor"], switch["reason"]) == (True, "ana", "INC-1")
    assert "2 of 4 steps failed" in result.output


def test_kill_with_the_job_store_down_still_runs_the_n8n_steps(project, runner, monkeypatch):
    """The bridge's database does not answer (a password in its URL must not leak): the bridge steps
    fail with the store's error, the n8n steps are still attempted, exit 1."""
    monkeypatch.setenv("BRIDGE_DATABASE_URL", "postgresql+psycopg://bridge:s3cret-pw@127.0.0.1:9/bridge")
    monkeypatch.setenv("N8N_BASE_URL", "http://127.0.0.1:9")
    result = runner.invoke(cli, ["kill", "content_pipeline", "--reason", "INC-2", "--json"])
    assert result.exit_code == 1
    report = json.loads(result.output[: result.output.rindex("}") + 1])
    steps = {s["name"]: s for s in report["steps"]}
    assert list(steps) == [
        "bridge rejects new jobs",
        "n8n workflow deactivated",
        "queued jobs failed",
        "running executions stopped",
    ]
    assert not steps["bridge rejects new jobs"]["ok"]
    assert "job store did not answer" in steps["bridge rejects new jobs"]["detail"]
    assert "n8n at http://127.0.0.1:9 did not answer" in steps["n8n workflow deactivated"]["detail"]
    assert "s3cret-pw" not in result.output


def test_kill_asks_the_running_bridge_first_and_does_not_store_the_switch_again(project, runner, monkeypatch):
    """A bridge on the state folder's operator socket stores the switch (ADR 62; the real bridge's side:
    tests/bridge/test_operator.py): the command sends it the key, reason and actor before anything
    else, and writes neither the switch nor a second `killed` event itself."""
    monkeypatch.setenv("N8N_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("N8NCTL_BRIDGE_URL", "http://127.0.0.1:9")
    store = Store(f"sqlite:///{project / '.n8nctl' / 'bridge.db'}")
    store.migrate()
    received: list[dict[str, object]] = []
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(project / ".n8nctl" / "bridge.sock"))
        listener.listen()

        def bridge() -> None:
            conn, _ = listener.accept()
            with conn:
                received.append(json.loads(conn.makefile("rb").readline()))
                conn.sendall(b'{"ok": true}\n')

        thread = threading.Thread(target=bridge)
        thread.start()
        result = runner.invoke(
            cli, ["kill", "content_pipeline", "--reason", "INC-3", "--actor", "ana", "--json"]
        )
        thread.join(timeout=5)
    assert received == [{"kill": "content_pipeline", "reason": "INC-3", "actor": "ana"}]
    report = json.loads(result.output[: result.output.rindex("}") + 1])
    assert report["steps"][0]["ok"], report
    assert "stored by the bridge through its operator socket" in report["steps"][0]["detail"]
    assert store.switch_states() == {}
