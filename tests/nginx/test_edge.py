"""The rendered nginx site config under a real nginx, in front of a real bridge (see conftest.py)."""

from __future__ import annotations

import base64
import socket
import subprocess
import time

import httpx
import pytest
from websockets.sync.client import connect

from tests.nginx.conftest import EDITOR_PASSWORD, Edge

pytestmark = pytest.mark.process
BRIDGE, EDITOR = {"host": "bridge.test"}, {"host": "editor.test"}
SECURITY_HEADERS = {
    "strict-transport-security": "max-age=63072000; includeSubDomains",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "content-security-policy": "frame-ancestors 'none'",
    "referrer-policy": "no-referrer",
}


def auth(password: str = EDITOR_PASSWORD, user: str = "operator") -> dict[str, str]:
    return {"authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def client(edge: Edge, source: str = "127.0.0.1") -> httpx.Client:
    """An HTTPS client that trusts only the test's certificate, connecting from `source`."""
    return httpx.Client(
        base_url=edge.https, transport=httpx.HTTPTransport(local_address=source, verify=edge.tls), timeout=10
    )


def assert_security_headers(response: httpx.Response) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, f"{name} on {response.request.url}: {response.headers}"
    assert response.headers["server"] == "nginx", "no version in the Server header"


def test_nginx_t_accepts_the_rendered_config(edge):
    started = time.perf_counter()
    done = subprocess.run(
        [edge.nginx, "-t", "-p", str(edge.folder), "-c", str(edge.conf), "-e", str(edge.folder / "t.log")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "syntax is ok" in done.stderr and "test is successful" in done.stderr
    assert time.perf_counter() - started < 5


def test_public_server_proxies_the_bridge_api_with_security_headers(edge):
    with client(edge) as http:
        health = http.get("/healthz", headers=BRIDGE)
        meta = http.get("/v1/meta", headers=BRIDGE)
        unsigned = http.post("/v1/jobs", headers=BRIDGE, json={"job_id": "x"})
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    assert meta.status_code == 200 and "workflows" in meta.json()
    assert unsigned.status_code == 401 and unsigned.json()["error_code"], "the bridge itself answered"
    for response in (health, meta, unsigned):
        assert_security_headers(response)


@pytest.mark.parametrize("path", ["/metrics", "/readyz", "/docs", "/openapi.json", "/webhook/flowbiz/x", "/"])
def test_public_server_exposes_nothing_but_v1_and_healthz(edge, path):
    with client(edge) as http:
        response = http.get(path, headers=BRIDGE)
    assert response.status_code == 404
    assert "text/html" in response.headers["content-type"], "nginx answered, not the bridge"
    assert_security_headers(response)


def test_public_server_limits_the_body_size_to_the_bridges(edge):
    too_big = b"x" * (edge.settings.bridge_max_body_bytes + 1)
    with client(edge) as http:
        response = http.post(
            "/v1/jobs", headers={**BRIDGE, "content-type": "application/json"}, content=too_big
        )
    assert response.status_code == 413


def test_public_server_rate_limits_per_client_address(edge):
    # its own source address: its own limit_req bucket, untouched by the other tests
    with client(edge, source="127.0.0.3") as http:
        codes = [http.get("/v1/meta", headers=BRIDGE).status_code for _ in range(30)]
        limited = http.get("/v1/meta", headers=BRIDGE)
    assert codes[0] == 200
    assert 429 in codes, codes
    assert limited.status_code == 429
    assert_security_headers(limited)
    with client(edge, source="127.0.0.4") as other:
        assert other.get("/v1/meta", headers=BRIDGE).status_code == 200, "another client is not limited"


def test_plain_http_redirects_to_https(edge):
    response = httpx.get(f"{edge.http}/v1/meta?x=1", headers=BRIDGE)
    assert response.status_code == 301
    assert response.headers["location"] == "https://bridge.test/v1/meta?x=1"


def test_editor_without_credentials_is_401(edge):
    with client(edge) as http:
        missing = http.get("/", headers=EDITOR)
        wrong = http.get("/", headers={**EDITOR, **auth("not-the-password")})
        unknown = http.get("/", headers={**EDITOR, **auth(user="someone")})
    for response in (missing, wrong, unknown):
        assert response.status_code == 401
        assert_security_headers(response)
    assert missing.headers["www-authenticate"] == 'Basic realm="n8n editor"'
    assert "/" not in edge.editor.paths, "nginx let an unauthenticated request through"


def test_editor_with_the_htpasswd_credentials_reaches_n8n(edge):
    with client(edge) as http:
        response = http.get("/workflows", headers={**EDITOR, **auth()})
    assert response.status_code == 200, response.text
    forwarded = response.json()["headers"]
    assert forwarded["x-forwarded-proto"] == "https" and forwarded["x-forwarded-for"] == "127.0.0.1"
    assert forwarded["host"] == "editor.test"
    assert "/workflows" in edge.editor.paths
    assert_security_headers(response)


def test_editor_from_an_address_outside_the_allow_list_is_403_even_with_credentials(edge):
    with client(edge, source="127.0.0.2") as http:
        anonymous = http.get("/", headers=EDITOR)
        with_password = http.get("/", headers={**EDITOR, **auth()})
    assert anonymous.status_code == 403 and with_password.status_code == 403
    assert_security_headers(with_password)


@pytest.mark.parametrize("path", ["/webhook/flowbiz/tiktok", "/webhook-test/x", "/webhook-waiting/1"])
def test_n8n_webhooks_are_not_routed_even_for_the_operator(edge, path):
    with client(edge) as http:
        response = http.post(path, headers={**EDITOR, **auth()}, json={})
    assert response.status_code == 404
    assert path not in edge.editor.paths


def test_editor_push_channel_upgrades_to_websocket(edge):
    port = int(edge.https.rsplit(":", 1)[1])
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    with connect(
        f"wss://editor.test:{port}/rest/push",
        sock=sock,
        ssl=edge.tls,
        server_hostname="editor.test",
        additional_headers=auth(),
        open_timeout=10,
    ) as websocket:
        websocket.send("ping")
        assert websocket.recv(timeout=10) == "echo:ping"
