"""Where n8nctl posts alerts: a Slack-compatible incoming webhook (`{"text": ...}`), which Slack,
Mattermost, Rocket.Chat and most chat tools accept. The URL is a secret: it is never in a message."""

from __future__ import annotations

import logging

import httpx

from n8nctl.errors import RemoteError, UnreachableError

log = logging.getLogger(__name__)


def post_alert(url: str, text: str, *, transport: httpx.BaseTransport | None = None) -> None:
    log.debug("alert POST (%d characters)", len(text))
    try:
        with httpx.Client(timeout=10.0, transport=transport, follow_redirects=False) as http:
            response = http.post(url, json={"text": text})
    except httpx.HTTPError as exc:
        raise UnreachableError(
            "the alert webhook did not answer",
            why=type(exc).__name__,
            fix="Check --alert-url (N8NCTL_ALERT_URL); the alerts are sent again on the next run.",
        ) from None
    if not response.is_success:
        raise RemoteError(
            "the alert webhook refused the alert",
            status=response.status_code,
            error_code=f"HTTP_{response.status_code}",
            fix="Check --alert-url (N8NCTL_ALERT_URL); the alerts are sent again on the next run.",
        )
