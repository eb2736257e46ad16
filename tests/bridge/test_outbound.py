"""The outbound policy (adapters/callbacks.py): callback_url is checked at admission and the
connection itself at every attempt; one deadline per attempt; the receiver's body is never read nor
shown; every failed attempt is recorded, so a delivery always reaches its dead letter."""

from __future__ import annotations

import asyncio
import contextlib
import time

import httpx
import pytest

from n8nctl.settings import Settings
from tests.bridge.conftest import Dns
from tests.conftest import eventually, job_body
from tests.harness import Receiver, free_port

PRIVATE = [
    "https://127.0.0.1/cb",
    "https://localhost/cb",  # a name that resolves to loopback, through the system's resolver
    "https://10.1.2.3/cb",
    "https://192.168.0.10/cb",
    "https://172.16.5.4/cb",
    "https://169.254.169.254/latest/meta-data/",  # cloud metadata (link-local)
    "https://100.64.0.1/cb",  # carrier-grade NAT
    "https://0.0.0.0/cb",
    "https://[::1]/cb",
    "https://[::ffff:127.0.0.1]/cb",  # loopback inside an IPv4-mapped IPv6 address
    "https://[fd00::1]/cb",
    "https://[fe80::1]/cb",
    "https://internal.flowbiz.test/cb",  # resolves (test DNS) to a private address
    "https://mixed.flowbiz.test/cb",  # one global and one private answer: refused
]


def _dns(**extra: list[str] | list[list[str]]) -> Dns:
    dns = Dns()
    dns.answers.update(
        {"internal.flowbiz.test": ["10.0.0.7"], "mixed.flowbiz.test": ["93.184.215.14", "10.0.0.7"], **extra}
    )
    return dns


@pytest.mark.parametrize("url", PRIVATE)
async def test_non_global_callback_urls_are_refused_in_production(start_bridge, url):
    async with start_bridge(workers=False, bridge_environment="production", dns=_dns()) as h:
        response = await h.submit(job_body(callback_url=url))
        assert (response.status_code, response.json()["error_code"]) == (422, "CALLBACK_URL_NOT_ALLOWED")
        assert "10.0.0.7" not in response.text, "the answer names no resolved address"


async def test_a_host_that_does_not_resolve_is_refused(start_bridge):
    async with start_bridge(workers=False, bridge_environment="production") as h:
        response = await h.submit(job_body(callback_url="https://no-such-host.invalid/cb"))
        assert (response.status_code, response.json()["error_code"]) == (422, "CALLBACK_URL_NOT_ALLOWED")
        assert "does not resolve" in response.json()["message"]


async def test_a_global_https_url_is_accepted_and_an_allowed_internal_host_too(start_bridge):
    allowed = "internal.flowbiz.test"
    async with start_bridge(
        workers=False, bridge_environment="production", bridge_callback_allow_hosts=allowed, dns=_dns()
    ) as h:
        assert (await h.submit(job_body(callback_url="https://flowbiz.example/cb"))).status_code == 202
        assert (await h.submit(job_body(callback_url=f"https://{allowed}/cb"))).status_code == 202
        assert (await h.submit(job_body(callback_url=f"http://{allowed}/cb"))).status_code == 202
        plain = await h.submit(job_body(callback_url="http://flowbiz.example/cb"))
        assert plain.json()["error_code"] == "CALLBACK_URL_NOT_ALLOWED"


async def test_an_admitted_callback_url_is_reused_for_a_while_and_a_refusal_never(start_bridge):
    """Admission is an early answer (every attempt checks where it connects): the same callback_url
    is resolved once for many jobs, a refused one at each job."""
    async with start_bridge(workers=False, bridge_environment="production", dns=_dns()) as h:
        for _ in range(3):
            assert (await h.submit(job_body(callback_url="https://flowbiz.example/cb"))).status_code == 202
            refused = await h.submit(job_body(callback_url="https://internal.flowbiz.test/cb"))
            assert refused.json()["error_code"] == "CALLBACK_URL_NOT_ALLOWED"
        assert h.dns.lookups.count("flowbiz.example") == 1
        assert h.dns.lookups.count("internal.flowbiz.test") == 3


def test_production_opens_no_loopback_by_default_and_development_does():
    production = Settings(_env_file=None)  # type: ignore[call-arg]
    assert production.bridge_environment == "production"
    assert production.callback_allow_hosts == frozenset()
    development = Settings(_env_file=None, bridge_environment="development")  # type: ignore[call-arg]
    assert development.callback_allow_hosts == {"127.0.0.1", "localhost", "::1"}
    explicit = Settings(_env_file=None, bridge_callback_allow_hosts="Hooks.Internal, [::1]")  # type: ignore[call-arg]
    assert explicit.callback_allow_hosts == {"hooks.internal", "::1"}


# -- every attempt connects through the policy, to the address it checked ------------------------------


async def _finish(h, callback_url: str) -> str:
    body = job_body(callback_url=callback_url)
    assert (await h.submit(body)).status_code == 202, (await h.submit(body)).text
    await eventually(lambda: h.n8n.calls, what="dispatch")
    assert (await h.result(body["job_id"])).status_code == 200
    return body["job_id"]


async def _callback(h, job_id: str) -> dict:
    return (await h.get(f"/v1/jobs/{job_id}")).json()["callback"] or {}


@pytest.fixture
def receiver(secrets):
    receiver = Receiver(free_port(), secrets.callback)
    receiver.start()
    yield receiver
    receiver.stop()


async def test_an_allowed_name_is_delivered_to_the_address_that_was_checked(start_bridge, receiver):
    """receiver.test exists only in the bridge's resolver: the socket must go to the checked
    127.0.0.1 (a connection by name would fail), and the official library verifies the callback."""
    async with start_bridge(
        real_callbacks=True,
        bridge_environment="production",
        bridge_callback_allow_hosts="receiver.test",
        dns=_dns(**{"receiver.test": ["127.0.0.1"]}),
    ) as h:
        job_id = await _finish(h, f"http://receiver.test:{receiver.port}/cb")
        await eventually(lambda: receiver.calls, what="the callback at the real receiver")
        assert receiver.calls[0][1]["job_id"] == job_id and receiver.rejected == []
        assert h.dns.lookups.count("receiver.test") >= 2, "resolved at admission and at the attempt"


async def test_a_name_that_rebinds_to_loopback_after_admission_is_never_called(start_bridge, receiver):
    dns = _dns(**{"flowbiz.test": [["93.184.215.14"], ["127.0.0.1"]]})
    async with start_bridge(
        real_callbacks=True,
        bridge_environment="production",
        bridge_callback_retry_schedule="0,0.1,0.1",
        dns=dns,
    ) as h:
        job_id = await _finish(h, f"https://flowbiz.test:{receiver.port}/cb")

        async def dead():
            callback = await _callback(h, job_id)
            return callback.get("state") == "dead" and callback

        callback = await eventually(dead, what="the dead letter")
        assert callback["attempts"] == 3 and callback["last_status_code"] is None
        assert callback["last_error"].startswith("refused: ") and "non-global" in callback["last_error"]
        assert receiver.calls == [] and receiver.rejected == []


# -- bounded attempts: one deadline, the body never read, the lease longer than the deadline ---------


@contextlib.asynccontextmanager
async def hostile_receiver(answer):
    """A raw TCP server on 127.0.0.1: `answer(writer)` plays the receiver; counts connections."""
    connections: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            await reader.readuntil(b"\r\n\r\n")
            await answer(writer)
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], connections
    finally:
        server.close()


async def _drip(writer: asyncio.StreamWriter) -> None:
    """Headers that never end, one byte every 50 ms: no read ever waits long enough to time out."""
    writer.write(b"HTTP/1.1 200 OK\r\nX-Drip: ")
    for _ in range(400):
        writer.write(b"x")
        await writer.drain()
        await asyncio.sleep(0.05)


async def _huge_body(writer: asyncio.StreamWriter) -> None:
    """A 500 with a body of a gigabyte announced, 200 MB of it sent as fast as it is read."""
    writer.write(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 1000000000\r\n\r\n")
    chunk = b"x" * 65536
    for _ in range(3200):
        writer.write(chunk)
        await writer.drain()
    await asyncio.sleep(30)


async def _first_attempt(start_bridge, answer) -> tuple[dict, float, list[int]]:
    """One job whose callback goes to a hostile receiver playing `answer`, with a 1 s deadline:
    its callback state once the first attempt is recorded, how long that took, the connections made."""
    async with (
        hostile_receiver(answer) as (port, connections),
        start_bridge(
            real_callbacks=True, bridge_callback_timeout_seconds=1, bridge_callback_retry_schedule="0,60"
        ) as h,
    ):
        job_id = await _finish(h, f"http://127.0.0.1:{port}/cb")
        started = time.monotonic()

        async def recorded():
            callback = await _callback(h, job_id)
            return callback.get("last_error") and callback

        callback = await eventually(recorded, timeout=4, what="the first attempt recorded")
        return callback, time.monotonic() - started, connections


async def test_a_dripping_receiver_is_cut_at_the_deadline_and_not_claimed_twice(start_bridge):
    callback, elapsed, connections = await _first_attempt(start_bridge, _drip)
    assert elapsed < 3
    assert (callback["attempts"], callback["last_error"]) == (1, "no answer within 1 s")
    assert len(connections) == 1, "one attempt: the lease outlives its deadline"


async def test_a_huge_answer_is_not_read_and_its_status_is_kept(start_bridge):
    callback, elapsed, _ = await _first_attempt(start_bridge, _huge_body)
    assert elapsed < 3
    assert callback["attempts"] == 1
    assert (callback["last_status_code"], callback["last_error"]) == (500, "HTTP 500")


# -- what the client sees, and attempts that fail inside --------------------------------------------------


async def test_the_receivers_body_is_never_shown_to_the_client(start_bridge):
    async with start_bridge(bridge_callback_retry_schedule="0,60") as h:
        h.receiver.answers = [httpx.Response(500, text="internal admin page: password=hunter2")]
        job_id = await _finish(h, "http://127.0.0.1:9/cb")
        callback = await eventually(lambda: _attempted(h, job_id), what="the first attempt")
        assert (callback["last_status_code"], callback["last_error"]) == (500, "HTTP 500")
        assert "hunter2" not in (await h.get(f"/v1/jobs/{job_id}")).text
        assert all("hunter2" not in str(e["details"]) for e in h.app.state.bridge.store.audit_for(job_id))


async def _attempted(h, job_id):
    callback = await _callback(h, job_id)
    return callback.get("attempts", 0) >= 1 and callback.get("last_error") and callback


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (httpx.Response(503, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00"}), "HTTP 503"),
        (httpx.Response(503, headers={"Retry-After": "Wed, 99 Foo 2015 99:99:99 GMT"}), "HTTP 503"),
        (RuntimeError("a bug below the adapter"), "attempt failed: RuntimeError"),
    ],
    ids=["retry-after-without-zone", "retry-after-garbage", "failure-inside-the-attempt"],
)
async def test_every_failed_attempt_is_recorded_so_the_delivery_reaches_the_dead_letter(
    start_bridge, answer, error
):
    async with start_bridge(bridge_callback_retry_schedule="0,0.1,0.1") as h:
        h.receiver.answers = [answer] * 3
        job_id = await _finish(h, "http://127.0.0.1:9/cb")

        async def dead():
            callback = await _callback(h, job_id)
            return callback.get("state") == "dead" and callback

        callback = await eventually(dead, what="the dead letter")
        assert (callback["attempts"], callback["last_error"]) == (3, error)
        actions = [e["action"] for e in h.app.state.bridge.store.audit_for(job_id)]
        assert actions.count("callback_pending") == 2 and actions.count("callback_dead") == 1
