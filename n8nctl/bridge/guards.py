"""The replay guard and the rate limit of signed requests, behind one interface: in this process's
memory (one bridge), or in Redis, shared by every replica (BRIDGE_REDIS_URL, docs/adr/0050).

A guard that cannot answer raises GuardUnavailable and the request is refused (503), never let
through: a replica that checked only its own memory would accept a request replayed from another."""

from __future__ import annotations

from typing import Protocol

from n8nctl.bridge.ratelimit import Rate, RateLimiter
from n8nctl.settings import Settings
from n8nctl.signing import ReplayGuard


class GuardUnavailable(Exception):
    """The shared guard store did not answer; the message names no address or password."""


class Guards(Protocol):
    async def seen(self, key: str) -> bool:
        """Record message id `key`; True when it was already recorded within the replay window."""
        ...

    async def hit(self, key: str) -> float:
        """Count one request for `key`: 0 when allowed, else the seconds until one would be."""
        ...

    async def ready(self) -> bool | None:
        """Whether the shared store answers; None when there is none (in-process guards)."""
        ...

    async def aclose(self) -> None: ...


class LocalGuards:
    """In this process's memory: right for one bridge process, lost on restart."""

    def __init__(self, rate: Rate) -> None:
        self._replays, self._limiter = ReplayGuard(), RateLimiter(rate)

    async def seen(self, key: str) -> bool:
        return self._replays.seen(key)

    async def hit(self, key: str) -> float:
        return self._limiter.hit(key)

    async def ready(self) -> bool | None:
        return None

    async def aclose(self) -> None:
        return None


def create_guards(settings: Settings) -> Guards:
    """Redis when BRIDGE_REDIS_URL is set, else this process's memory."""
    rate = Rate.parse(settings.bridge_rate_limit)
    url = settings.bridge_redis_url.get_secret_value()
    if not url:
        return LocalGuards(rate)
    from n8nctl.adapters.redis_guards import RedisGuards

    return RedisGuards(url, rate)
