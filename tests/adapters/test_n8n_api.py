"""The operator-side n8n API client against a stand-in of n8n's REST session routes."""

from __future__ import annotations

import httpx

from n8nctl.adapters.n8n_api import N8nApi


def fake_n8n(request: httpx.Request) -> httpx.Response:
    """Login answers with the session cookie marked Secure, as n8n does with N8N_SECURE_COOKIE=true
    (the prod stack); the API-key routes need that cookie back."""
    if request.url.path == "/rest/login":
        cookie = "n8n-auth=session-token; Path=/; HttpOnly; Secure; SameSite=Lax"
        return httpx.Response(200, json={"data": {}}, headers={"set-cookie": cookie})
    if request.headers.get("cookie") != "n8n-auth=session-token":
        return httpx.Response(401, json={"message": "Unauthorized"})
    if request.url.path == "/rest/api-keys/scopes":
        return httpx.Response(200, json={"data": ["workflow:read"]})
    return httpx.Response(200, json={"data": {"rawApiKey": "raw-key"}})


def test_the_session_cookie_is_sent_back_over_plain_http_even_when_n8n_marks_it_secure():
    api = N8nApi("http://127.0.0.1:5678", transport=httpx.MockTransport(fake_n8n))
    api.login("owner@flowbiz.local", "Passw0rd")
    assert api.create_api_key("n8nctl") == "raw-key"
