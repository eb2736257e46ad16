"""The replay guard and the rate limit shared through a real redis-server (BRIDGE_REDIS_URL): two
bridges in one test play two replicas; Redis stopped or frozen refuses signed requests (fail
closed, ADR 50), and its password appears in no answer or log."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from n8nctl.adapters.redis_guards import RedisGuards
from n8nctl.bridge.ratelimit import Rate, RateLimiter
from n8nctl.errors import ConfigError
from n8nctl.settings import load_settings
from tests.conftest import job_body, signed
from tests.redis_server import RedisServer

pytestmark = pytest.mark.redis


async def test_a_request_replayed_to_the_other_replica_is_refused(start_bridge, redis_server: RedisServer):
    async with (
        start_bridge(workers=False, bridge_redis_url=redis_server.url) as one,
        start_bridge(workers=False, bridge_redis_url=redis_server.url) as two,
    ):
        raw, headers = signed(one.secrets.client, job_body())
        assert (await one.client.post("/v1/jobs", content=raw, headers=headers)).status_code == 202

        replayed = await two.client.post("/v1/jobs", content=raw, headers=headers)
        assert replayed.status_code == 401, replayed.text
        assert replayed.json()["error_code"] == "SIGNATURE_REPLAYED"
        again = await one.client.post("/v1/jobs", content=raw, headers=headers)
        assert again.json()["error_code"] == "SIGNATURE_REPLAYED"


async def test_a_result_replayed_to_the_other_replica_is_refused(start_bridge, redis_server: RedisServer):
    async with (
        start_bridge(workers=False, bridge_redis_url=redis_server.url) as one,
        start_bridge(workers=False, bridge_redis_url=redis_server.url) as two,
    ):
        body = job_body()
        assert (await one.submit(body)).status_code == 202
        raw, headers = signed(one.secrets.n8n, {"job_id": body["job_id"], "status": "success"})
        first = await one.client.post("/v1/callbacks/n8n", content=raw, headers=headers)
        assert first.json()["recorded"] == "finished"

        replayed = await two.client.post("/v1/callbacks/n8n", content=raw, headers=headers)
        assert (replayed.status_code, replayed.json()["error_code"]) == (401, "SIGNATURE_REPLAYED")


async def test_the_rate_limit_holds_for_the_fleet(start_bridge, redis_server: RedisServer):
    """10/minute is a burst of 10 for the client, whichever replica it calls; reads count apart."""
    async with (
        start_bridge(workers=False, bridge_redis_url=redis_server.url, bridge_rate_limit="10/minute") as one,
        start_bridge(workers=False, bridge_redis_url=redis_server.url, bridge_rate_limit="10/minute") as two,
    ):
        answers = [await (one if n % 2 else two).submit(job_body()) for n in range(16)]
        codes = [a.status_code for a in answers]
        assert codes == [202] * 10 + [429] * 6, codes
        refused = answers[-1]
        assert refused.json()["error_code"] == "RATE_LIMITED"
        assert 1 <= int(refused.headers["retry-after"]) <= 6  # one token every 6 s
        assert (await one.get(f"/v1/jobs/{job_body()['job_id']}")).status_code == 404  # reads: own budget


async def test_redis_gcra_matches_the_in_process_limiter(redis_server: RedisServer):
    """Same algorithm, same answers: a burst of 5 at 5/second, then about 0.2 s between requests."""
    rate = Rate.parse("5/second")
    guards, local = RedisGuards(redis_server.url, rate), RateLimiter(rate)
    try:
        shared = [await guards.hit("c:write") for _ in range(7)]
        mine = [local.hit("c:write") for _ in range(7)]
        assert shared[:5] == mine[:5] == [0.0] * 5
        for theirs, ours in zip(shared[5:], mine[5:], strict=True):
            assert theirs == pytest.approx(ours, abs=0.05)
            assert 0.1 < theirs <= 0.2
        ttl = redis_server.client().pttl(b"n8nctl:bridge:rate:c:write")
        assert 0 < ttl <= 1001, "the key outlives its theoretical arrival time"
        assert await guards.seen("client:flowbiz:msg_1") is False
        assert await guards.seen("client:flowbiz:msg_1") is True
        replay_keys = redis_server.client().keys(b"n8nctl:bridge:replay:*")
        assert len(replay_keys) == 1 and len(replay_keys[0]) == len(b"n8nctl:bridge:replay:") + 16
        assert 590 < redis_server.client().ttl(replay_keys[0]) <= 600
    finally:
        await guards.aclose()


async def test_redis_down_refuses_signed_requests_and_says_so_without_the_password(
    start_bridge, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG)
    async with start_bridge(workers=False, bridge_redis_url=redis_server.url) as h:
        assert (await h.submit(job_body())).status_code == 202
        assert (await h.client.get("/readyz")).status_code == 200
        redis_server.stop()

        body = job_body()
        refused = await h.submit(body)
        assert refused.status_code == 503, refused.text
        assert refused.json()["error_code"] == "GUARD_UNAVAILABLE"
        assert refused.headers["retry-after"] == "5"
        assert h.app.state.bridge.store.get_job(body["job_id"]) is None, "stored without its replay check"
        result = await h.result(body["job_id"])
        assert result.json()["error_code"] == "GUARD_UNAVAILABLE"
        ready = await h.client.get("/readyz")
        assert (ready.status_code, ready.json()["detail"]) == (503, {"store": True, "redis": False})
        assert (await h.client.get("/healthz")).status_code == 200
        seen = refused.text + result.text + ready.text + caplog.text
        assert redis_server.password not in seen
        assert "does not answer" in caplog.text

        redis_server.start()  # same port: the pool reconnects by itself
        assert (await h.submit(body)).status_code == 202
        assert "answers again" in caplog.text
        assert redis_server.password not in caplog.text


async def test_a_frozen_redis_answers_503_within_its_deadline(start_bridge, redis_server: RedisServer):
    async with start_bridge(workers=False, bridge_redis_url=redis_server.url) as h:
        assert (await h.submit(job_body())).status_code == 202
        redis_server.pause()
        try:
            started = time.monotonic()
            answers = await asyncio.gather(*(h.submit(job_body()) for _ in range(5)))
            elapsed = time.monotonic() - started
        finally:
            redis_server.resume()
        assert {a.json()["error_code"] for a in answers} == {"GUARD_UNAVAILABLE"}
        assert elapsed < 4.5, f"answers took {elapsed:.1f} s: a frozen Redis must not hang requests"


def test_a_malformed_redis_url_is_one_line_without_the_value(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("BRIDGE_REDIS_URL", "http://user:hunter2-secret@redis:6379")
    with pytest.raises(ConfigError) as refused:
        load_settings(_env_file=None)
    assert "BRIDGE_REDIS_URL" in str(refused.value)
    assert "hunter2" not in str(refused.value) + repr(refused.value)
