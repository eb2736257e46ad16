"""The stack's own probes: one HTTP client per process (each httpx.Client loads the CA bundle, ~50 ms
on this machine: `n8nctl status` probes three URLs), and a service that does not answer reads as None."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from n8nctl.adapters import probe
from tests.harness import free_port

ANSWERS = {"/healthz": (200, "ok"), "/v1/meta": (200, '{"version": "1"}'), "/metrics": (200, "up 1\n")}


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        code, body = ANSWERS.get(self.path, (404, "no"))
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def service() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_every_probe_shares_one_client(service: str, monkeypatch: pytest.MonkeyPatch) -> None:
    made = []
    init = httpx.Client.__init__

    def counting(self: httpx.Client, *args: Any, **kwargs: Any) -> None:
        made.append(1)
        init(self, *args, **kwargs)

    probe._client.cache_clear()
    monkeypatch.setattr(httpx.Client, "__init__", counting)
    assert probe.status(service + "/healthz") == 200
    assert probe.json_body(service + "/v1/meta") == {"version": "1"}
    assert probe.text(service + "/metrics") == "up 1\n"
    assert probe.text(service + "/missing") is None
    assert len(made) == 1
    probe._client.cache_clear()


def test_a_service_that_does_not_answer_reads_as_none() -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    assert probe.status(dead + "/healthz", timeout=1) is None
    assert probe.json_body(dead + "/v1/meta", timeout=1) is None
    assert probe.text(dead + "/metrics", timeout=1) is None
