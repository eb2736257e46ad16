"""Where the bridge calls FlowBiz back: the outbound policy for `callback_url`, and delivery attempts.

The policy (security/ACCESS_MODEL.md section 5) lives here once and is applied twice: when a job is
admitted (`OutboundPolicy.check`) and at every attempt, where the connection itself goes through it:
the host is resolved, every address must be global unless the operator allowed that host, and the
socket connects to the address that was checked (then checks the peer it got), so a name that
resolves elsewhere between the check and the connect (DNS rebinding) cannot reach an internal
address. One attempt has one deadline for everything (connect, TLS, request, status line and
headers); the receiver's body is never read: its status code is all the bridge keeps.
"""

from __future__ import annotations

import asyncio
import email.utils
import ipaddress
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpcore
import httpx

from n8nctl.signing import sign_headers

log = logging.getLogger(__name__)
ADMITTED_FOR = 10.0  # seconds
ADMITTED_MAX = 4096  # URLs remembered at most

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]
"""host, port -> the addresses a connection to them may use (a seam for tests)."""


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


class CallbackRefused(Exception):
    """The policy refuses this callback_url; the message says why, never which address was found."""


def _is_global(address: Address) -> bool:
    return address.is_global and not address.is_multicast


@dataclass(frozen=True)
class OutboundPolicy:
    allow_hosts: frozenset[str]
    """Hosts the operator allowed: they may resolve to non-global addresses and use plain http."""
    resolve: Resolver = system_resolver

    def allowed(self, host: str) -> bool:
        return host.lower() in self.allow_hosts

    def check_scheme(self, url: httpx.URL) -> None:
        if url.scheme == "https" or (url.scheme == "http" and self.allowed(url.host)):
            return
        raise CallbackRefused(
            "callback_url must be https; plain http only for hosts in BRIDGE_CALLBACK_ALLOW_HOSTS"
        )

    async def addresses(self, host: str, port: int) -> list[Address]:
        """Where a connection to host:port may go; CallbackRefused when anywhere it could is not."""
        try:
            found: list[Address] = [ipaddress.ip_address(host)]
        except ValueError:
            try:
                found = [ipaddress.ip_address(a.split("%", 1)[0]) for a in await self.resolve(host, port)]
            except (OSError, ValueError):
                raise CallbackRefused(f"the callback host {host} does not resolve") from None
        if not found:
            raise CallbackRefused(f"the callback host {host} does not resolve")
        if not self.allowed(host) and not all(map(_is_global, found)):
            raise CallbackRefused(
                f"the callback host {host} is or resolves to a non-global address (private, loopback, "
                "link-local or reserved); only hosts in BRIDGE_CALLBACK_ALLOW_HOSTS may"
            )
        return found

    async def check(self, url: str) -> None:
        """The admission check of a job's callback_url."""
        parsed = httpx.URL(url)
        self.check_scheme(parsed)
        await self.addresses(parsed.host, parsed.port or (443 if parsed.scheme == "https" else 80))


class _PinnedBackend(httpcore.AsyncNetworkBackend):
    """Connects only to addresses the policy allowed, and only where it checked."""

    def __init__(self, policy: OutboundPolicy) -> None:
        self._policy, self._inner = policy, httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        failure: Exception = httpcore.ConnectError(f"no address for {host}")
        for address in await self._policy.addresses(host, port):
            try:
                stream = await self._inner.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except httpcore.ConnectError as exc:
                failure = exc
                continue
            peer = stream.get_extra_info("server_addr")
            if not peer or ipaddress.ip_address(peer[0]) != address:
                await stream.aclose()
                raise CallbackRefused("the connection reached another address than the one checked")
            return stream
        raise failure

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise CallbackRefused("callbacks do not go to unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _PinnedTransport(httpx.AsyncHTTPTransport):
    def __init__(self, policy: OutboundPolicy) -> None:
        super().__init__(trust_env=False)  # no proxy from the environment: it would connect for us
        self._policy = policy
        # httpx has no public seam for the network backend: its pool is replaced by one that connects
        # through the policy. No keep-alive, so every attempt resolves and checks anew.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_keepalive_connections=0,
            network_backend=_PinnedBackend(policy),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self._policy.check_scheme(request.url)
        return await super().handle_async_request(request)


@dataclass(frozen=True)
class Attempt:
    """What one delivery attempt got: a status code, or why there was none."""

    status_code: int | None
    error: str | None = None
    retry_after: float | None = None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class CallbackSender:
    """Signs and posts callbacks to FlowBiz, one bounded attempt at a time."""

    def __init__(
        self,
        policy: OutboundPolicy,
        *,
        deadline: float,
        secrets: Callable[[], tuple[str, ...]],
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.policy, self.deadline, self._secrets = policy, deadline, secrets
        self._admitted: dict[str, float] = {}  # callback_url -> until when its admission holds
        self._http = httpx.AsyncClient(
            transport=transport or _PinnedTransport(policy), follow_redirects=False, timeout=deadline
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def admit(self, url: str) -> None:
        """The policy's admission check of a job's callback_url. An admitted URL is not checked
        again for ADMITTED_FOR seconds (FlowBiz sends many jobs with one callback_url; parsing and
        resolving it is a fifth of intake's CPU): the admission is an early answer, and every
        delivery attempt still resolves and checks where it connects. A refusal is never reused."""
        now = time.monotonic()
        if self._admitted.get(url, 0.0) > now:
            return
        await self.policy.check(url)
        if len(self._admitted) >= ADMITTED_MAX:
            self._admitted.clear()  # many distinct URLs: start over rather than grow
        self._admitted[url] = now + ADMITTED_FOR

    async def post(self, url: str, body: bytes, *, message_id: str) -> Attempt:
        """One attempt, signed with every live secret (rotation). Never raises for the receiver's
        sake: a refusal, a timeout or a network error is an Attempt without a status code."""
        headers = {
            **sign_headers(self._secrets(), body, msg_id=message_id),
            "content-type": "application/json",
        }
        try:
            async with asyncio.timeout(self.deadline):
                async with self._http.stream("POST", url, content=body, headers=headers) as response:
                    # the body is not read: the bridge keeps the status, and a huge or endless
                    # answer costs nothing
                    status = response.status_code
                    retry_after = _retry_after(response.headers.get("retry-after"))
        except CallbackRefused as exc:
            return Attempt(None, f"refused: {exc}")
        except TimeoutError:
            return Attempt(None, f"no answer within {self.deadline:g} s")
        except httpx.HTTPError as exc:
            return Attempt(None, type(exc).__name__)
        return Attempt(status, None if 200 <= status < 300 else f"HTTP {status}", retry_after)


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); None when it is neither
    (an HTTP date always names its zone, GMT: a date without one names no moment)."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        return None
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())
