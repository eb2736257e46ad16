"""The stack's own probes (the standard library's HTTP client: `n8nctl status` must not pay httpx's
import), and a service that does not answer reads as None."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from n8nctl.adapters import probe
from tests.harness import free_port

ANSWERS = {
    "/healthz": (200, "ok"),
    "/v1/meta": (200, '{"version": "1"}'),
    "/metrics": (200, "up 1\n"),
    "/moved": (301, "elsewhere"),
}


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        code, body = ANSWERS.get(self.path, (404, "no"))
        self.send_response(code)
        if code == 301:
            self.send_header("Location", "/healthz")
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


def test_probes_read_status_json_and_text_and_never_follow_a_redirect(service: str) -> None:
    assert probe.status(service + "/healthz") == 200
    assert probe.json_body(service + "/v1/meta") == {"version": "1"}
    assert probe.text(service + "/metrics") == "up 1\n"
    assert probe.status(service + "/missing") == 404
    assert probe.text(service + "/missing") is None
    assert probe.json_body(service + "/healthz") is None, "not JSON"
    assert probe.status(service + "/moved") == 301, "a redirect is the answer"


def test_status_imports_no_httpx() -> None:
    """The probes are `n8nctl status`'s only HTTP: httpx's import would cost it ~85 ms."""
    code = "import sys, n8nctl.stack, n8nctl.adapters.probe; print('httpx' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_a_service_that_does_not_answer_reads_as_none() -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    assert probe.status(dead + "/healthz", timeout=1) is None
    assert probe.json_body(dead + "/v1/meta", timeout=1) is None
    assert probe.text(dead + "/metrics", timeout=1) is None
