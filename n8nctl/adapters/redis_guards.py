"""The replay guard and the rate limit in Redis, shared by every bridge replica (docs/adr/0050).

One client per bridge process, built here: a bounded pool, a 1 s deadline on connecting and on each
reply, one retry on a dropped connection, a health check of idle connections. Both checks are one
atomic command each, so two replicas never both accept one webhook-id nor both spend the last token:

- replay guard: `SET <digest> 1 NX EX 600`, the 16-byte digest of the webhook-id;
- rate limit: GCRA (the in-process algorithm of bridge/ratelimit.py) in a Lua script, on Redis's
  clock, so the replicas' clocks do not matter.

Redis failing is GuardUnavailable, never an answer. Messages and logs carry neither the URL nor the
password it may hold.
"""

from __future__ import annotations

import logging

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from n8nctl.bridge.guards import GuardUnavailable
from n8nctl.bridge.ratelimit import Rate
from n8nctl.signing import REPLAY_WINDOW_SECONDS, replay_digest

log = logging.getLogger(__name__)

DEADLINE_SECONDS = 1.0  # connect, each reply, and waiting for a pooled connection
MAX_CONNECTIONS = 32
PREFIX = b"n8nctl:bridge:"

# KEYS[1]: the client's key; ARGV: emission interval and burst tolerance, in microseconds.
# Returns 0 (allowed; the theoretical arrival time moves on) or the microseconds to wait.
GCRA = """
local t = redis.call('TIME')
local now = t[1] * 1000000 + t[2]
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local wait = tat - tonumber(ARGV[2]) - now
if wait > 0 then return wait end
tat = tat + tonumber(ARGV[1])
redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000) + 1)
return 0
"""


class RedisGuards:
    def __init__(self, url: str, rate: Rate) -> None:
        pool = redis.BlockingConnectionPool.from_url(
            url,
            max_connections=MAX_CONNECTIONS,
            timeout=DEADLINE_SECONDS,
            socket_connect_timeout=DEADLINE_SECONDS,
            socket_timeout=DEADLINE_SECONDS,
            retry=Retry(NoBackoff(), 1),
            health_check_interval=30,
            client_name="n8nctl-bridge",
        )
        self._client = redis.Redis.from_pool(pool)
        self._gcra = self._client.register_script(GCRA)
        self._args = (round(rate.interval * 1e6), round(rate.tolerance * 1e6))
        self._answering = True

    async def seen(self, key: str) -> bool:
        try:
            fresh = await self._client.set(
                PREFIX + b"replay:" + replay_digest(key), b"1", nx=True, ex=REPLAY_WINDOW_SECONDS
            )
        except RedisError as exc:
            raise self._down(exc) from None
        self._up()
        return not fresh

    async def hit(self, key: str) -> float:
        try:
            wait = await self._gcra(keys=[PREFIX + b"rate:" + key.encode()], args=self._args)
        except RedisError as exc:
            raise self._down(exc) from None
        self._up()
        return int(wait) / 1e6

    async def ready(self) -> bool | None:
        try:
            await self._client.ping()
        except RedisError as exc:
            self._down(exc)
            return False
        self._up()
        return True

    async def aclose(self) -> None:
        await self._client.aclose()

    def _down(self, exc: RedisError) -> GuardUnavailable:
        if self._answering:  # once per outage, not once per request
            log.warning(
                "the shared Redis (BRIDGE_REDIS_URL) does not answer (%s): signed requests are refused "
                "with 503 GUARD_UNAVAILABLE until it does",
                type(exc).__name__,
            )
        self._answering = False
        return GuardUnavailable(f"the shared replay and rate store did not answer ({type(exc).__name__})")

    def _up(self) -> None:
        if not self._answering:
            log.warning("the shared Redis (BRIDGE_REDIS_URL) answers again")
        self._answering = True
