"""Unauthenticated HTTP probes of the stack's own services (health, GET /v1/meta, /metrics). They never
raise: a service that does not answer, or answers something that is not JSON, reads as None."""

from __future__ import annotations

import logging
from functools import cache
from typing import Any

import httpx

log = logging.getLogger(__name__)


@cache
def _client() -> httpx.Client:
    # One per process: every httpx.Client loads the CA bundle into a TLS context (~20 ms), and
    # `n8nctl status` probes three URLs, two of them on the bridge (kept alive between them).
    return httpx.Client()


def status(url: str, *, timeout: float = 2.0) -> int | None:
    log.debug("probe GET %s", url)
    try:
        return _client().get(url, timeout=timeout).status_code
    except httpx.HTTPError:
        return None


def json_body(url: str, *, timeout: float = 2.0) -> Any:
    log.debug("probe GET %s", url)
    try:
        return _client().get(url, timeout=timeout).json()
    except (httpx.HTTPError, ValueError):
        return None


def text(url: str, *, timeout: float = 2.0) -> str | None:
    log.debug("probe GET %s", url)
    try:
        response = _client().get(url, timeout=timeout)
    except httpx.HTTPError:
        return None
    return response.text if response.status_code == 200 else None
