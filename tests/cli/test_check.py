"""`n8nctl check --alert-url`: alerts on a problem's start, a recovery when it clears, never the same
one twice in a row. Against the real bridge app, a real job store, an n8n stand-in serving the
health and webhook routes n8n serves, and a chat webhook that records what it gets."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from n8nctl.bridge.app import create_app
from n8nctl.cli.main import cli
from n8nctl.registry import load_registry
from n8nctl.settings import Settings
from n8nctl.store import NewJob, Store
from tests.bridge.conftest import migrate
from tests.conftest import PROJECT, Secrets
from tests.harness import ServerThread, free_port

ALERT_URL_SECRET = "T000/B000/hook-credential-9f2c"


class Chat(ServerThread):
    """A Slack-compatible incoming webhook: records each posted text."""

    def __init__(self) -> None:
        super().__init__(
            Starlette(routes=[Route("/hooks/{token:path}", self._post, methods=["POST"])]), free_port()
        )
        self.url = f"http://127.0.0.1:{self.port}/hooks/{ALERT_URL_SECRET}"
        self.texts: list[str] = []
        self.answer = 200

    async def _post(self, request: Request) -> JSONResponse:
        if self.answer != 200:
            return JSONResponse({"error": "no"}, status_code=self.answer)
        self.texts.append((await request.json())["text"])
        return JSONResponse({"ok": True})


class N8n(ServerThread):
    """n8n's health route, and its production webhooks: registered paths answer 403 without the
    header token (as n8n does), unregistered ones 404."""

    def __init__(self, registered: set[str]) -> None:
        routes = [
            Route("/healthz/readiness", lambda r: JSONResponse({"status": "ok"})),
            Route("/webhook/{path:path}", self._webhook, methods=["POST"]),
        ]
        super().__init__(Starlette(routes=routes), free_port())
        self.registered = registered

    async def _webhook(self, request: Request) -> JSONResponse:
        registered = request.path_params["path"] in self.registered
        return JSONResponse({"message": "x"}, status_code=403 if registered else 404)


@pytest.fixture
def stack(tmp_path, monkeypatch):
    secrets, port = Secrets(), free_port()
    env = {
        "N8NCTL_PROJECT_DIR": str(tmp_path),
        "N8NCTL_STATE_DIR": str(tmp_path / "state"),
        "BRIDGE_DATABASE_URL": f"sqlite:///{tmp_path / 'bridge.db'}",
        "BRIDGE_REGISTRY_PATH": str(PROJECT / "workflows" / "registry.json"),
        "BRIDGE_CLIENT_SECRETS": f"flowbiz:{secrets.client}",
        "BRIDGE_CALLBACK_SIGNING_SECRET": secrets.callback,
        "BRIDGE_N8N_CALLBACK_SECRET": secrets.n8n,
        "N8NCTL_BRIDGE_URL": f"http://127.0.0.1:{port}",
        "N8NCTL_STACK": "ops",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    migrate(settings.database_url)  # as `n8nctl up` does before the bridge starts
    bridge = ServerThread(
        create_app(settings, load_registry(settings.registry_path), workers=False), port, lifespan="on"
    )
    n8n, chat = N8n({"flowbiz/tiktok-live-helper", "flowbiz/content-pipeline"}), Chat()
    monkeypatch.setenv("N8N_BASE_URL", f"http://127.0.0.1:{n8n.port}")
    for server in (bridge, n8n, chat):
        server.start()
    yield settings, n8n, chat
    for server in (bridge, n8n, chat):
        server.stop()


def _dead_letter(settings: Settings) -> None:
    store = Store(settings.database_url)
    now = datetime.now(UTC)
    row = {
        "job_id": "j1", "client_id": "flowbiz", "workflow_key": "tiktok_live_helper", "priority": 5,
        "timeout_seconds": 1, "inputs": {}, "callback_url": "https://x/cb", "metadata": {}, "user_id": None,
        "request_hash": "h", "retention_days": 90, "accepted_at": now - timedelta(seconds=5),
        "deadline_at": now - timedelta(seconds=4),
    }  # fmt: skip
    store.submit_batch([NewJob(row)])
    store.expire_overdue()
    for delivery in store.claim_deliveries(limit=1, lease=timedelta(seconds=60)):
        store.delivery_result(delivery, state="dead", status_code=500, error="HTTP 500")
    store.close()


def _check(*args: str):
    return CliRunner().invoke(cli, ["check", *args])


def test_alerts_once_when_a_problem_starts_and_a_recovery_when_it_clears(stack):
    settings, n8n, chat = stack
    clean = _check("--alert-url", chat.url)
    assert (clean.exit_code, chat.texts) == (0, []), clean.output

    _dead_letter(settings)
    n8n.registered.discard("flowbiz/content-pipeline")  # published, webhook not registered
    first = _check("--alert-url", chat.url)
    assert first.exit_code == 1, first.output
    alerts = sorted(t.removeprefix("n8nctl ops: ALERT: ") for t in chat.texts)
    assert alerts[0].startswith("bridge: 1 callbacks in the dead letter"), alerts
    assert alerts[1].startswith("n8n does not route the webhook of content_pipeline"), alerts
    assert all(t.startswith("n8nctl ops: ALERT: ") for t in chat.texts)
    assert any("content_pipeline" in t for t in chat.texts)

    again = _check("--alert-url", chat.url)
    assert again.exit_code == 1 and len(chat.texts) == 2, "the same alerts are not posted twice in a row"

    Store(settings.database_url).redeliver(all_dead=True, actor="ops")
    recovered = _check("--alert-url", chat.url)
    assert recovered.exit_code == 1, "the webhook route is still missing"
    assert len(chat.texts) == 3 and chat.texts[2].startswith("n8nctl ops: RECOVERED: bridge: 1 callbacks")

    n8n.registered.add("flowbiz/content-pipeline")
    assert _check("--alert-url", chat.url).exit_code == 0
    assert chat.texts[3].startswith(
        "n8nctl ops: RECOVERED: n8n does not route the webhook of content_pipeline"
    )
    assert _check("--alert-url", chat.url).exit_code == 0 and len(chat.texts) == 4
    assert all(ALERT_URL_SECRET not in t for t in chat.texts)


def test_a_refused_post_is_sent_again_on_the_next_run(stack):
    settings, _, chat = stack
    _dead_letter(settings)
    chat.answer = 500
    refused = _check("--alert-url", chat.url)
    assert refused.exit_code == 6, refused.output
    assert ALERT_URL_SECRET not in refused.output
    chat.answer = 200
    assert _check("--alert-url", chat.url).exit_code == 1
    assert [t.split(": ALERT: ")[1][:18] for t in chat.texts] == ["bridge: 1 callback"]


def test_a_service_down_is_a_problem_and_json_carries_the_last_hour(stack, monkeypatch):
    monkeypatch.setenv("N8N_BASE_URL", f"http://127.0.0.1:{free_port()}")
    result = _check("--json")
    assert result.exit_code == 1
    report = json.loads(result.output[: result.output.rindex("}") + 1])
    assert [p["key"] for p in report["problems"]] == ["n8n_down"]
    assert report["bridge_last_hour"]["jobs_accepted"] == 0
