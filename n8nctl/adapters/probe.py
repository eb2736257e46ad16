"""Unauthenticated HTTP probes of the stack's own services (health, GET /v1/meta, /metrics). They never
raise: a service that does not answer, or answers something that is not JSON, reads as None.

The standard library's client, not httpx: `n8nctl status` makes three local GETs, and importing httpx
cost it ~85 ms of its one-second budget (docs/PERFORMANCE.md)."""

from __future__ import annotations

import http.client
import json
import logging
import urllib.error
import urllib.request
from functools import cache
from typing import Any

log = logging.getLogger(__name__)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a 3xx is the service's answer, not a place to go


@cache
def _opener() -> urllib.request.OpenerDirector:
    # no proxy from the environment: these are the stack's own services
    return urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect)


def _get(url: str, timeout: float) -> tuple[int, bytes] | None:
    """(status, body), or None when nothing answered."""
    log.debug("probe GET %s", url)
    try:
        with _opener().open(url, timeout=timeout) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:  # 4xx, 5xx and an unfollowed 3xx: an answer all the same
        with exc:
            return exc.code, exc.read()
    except (OSError, ValueError, http.client.HTTPException):  # refused, timed out, malformed
        return None


def status(url: str, *, timeout: float = 2.0) -> int | None:
    answer = _get(url, timeout)
    return answer[0] if answer else None


def json_body(url: str, *, timeout: float = 2.0) -> Any:
    answer = _get(url, timeout)
    try:
        return json.loads(answer[1]) if answer else None
    except ValueError:
        return None


def text(url: str, *, timeout: float = 2.0) -> str | None:
    answer = _get(url, timeout)
    return answer[1].decode("utf-8", "replace") if answer and answer[0] == 200 else None
