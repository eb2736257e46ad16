"""Standard Webhooks signatures (https://www.standardwebhooks.com), used on every hop.

Signed content is `{webhook-id}.{webhook-timestamp}.{raw body}`; the signature header carries one or
more space-separated `v1,<base64 HMAC-SHA256>` values so secrets can be rotated.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)
TOLERANCE_SECONDS = 300
MAX_ID_LENGTH = 256  # webhook-id: ours are 36 characters
MAX_SIGNATURE_HEADER = 1024  # about 20 signatures: rotation needs two
_TIMESTAMP = re.compile(r"[0-9]{1,12}")  # whole seconds; more digits would overflow the clock math


class SignatureError(Exception):
    """Why a message was rejected; `code` is the API error_code."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


def generate_secret(key: bytes | None = None) -> str:
    """A `whsec_` secret for `key` (default: 32 random bytes)."""
    return SECRET_PREFIX + base64.b64encode(key or secrets.token_bytes(32)).decode()


def new_message_id() -> str:
    return "msg_" + secrets.token_hex(16)


def secret_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_` secret. ValueError (which never quotes the secret) when malformed."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"it does not start with {SECRET_PREFIX!r}")
    raw = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"what follows {SECRET_PREFIX!r} is not base64") from None
    if not key:
        raise ValueError(f"nothing follows {SECRET_PREFIX!r}")
    return key


@dataclass(frozen=True)
class Keyring:
    """The secrets of one signing party, newest first: `whsec_new|whsec_old@2026-12-03T10:00:00Z`.

    A secret with `@<UTC time>` retires then: the grace window of a rotation (`n8nctl secrets
    rotate`), in which both old and new signatures are sent and accepted. `live()` is read at each
    use, so a window closes by itself, without a restart."""

    entries: tuple[tuple[str, datetime | None], ...] = ()

    @classmethod
    def parse(cls, text: str) -> Keyring:
        """ValueError (never quoting a secret) when an entry is malformed."""
        entries = []
        for position, part in enumerate(filter(None, (p.strip() for p in text.split("|"))), 1):
            secret, _, until = part.partition("@")
            try:
                secret_key(secret)
                retires = datetime.fromisoformat(until) if until else None
            except ValueError as exc:
                raise ValueError(f"secret {position}: {exc}") from None
            if retires is not None and retires.tzinfo is None:
                raise ValueError(f"secret {position}: its retirement time has no zone (end it with Z)")
            entries.append((secret, retires))
        return cls(tuple(entries))

    def live(self, now: datetime | None = None) -> tuple[str, ...]:
        moment = now or datetime.now(UTC)
        return tuple(secret for secret, retires in self.entries if retires is None or retires > moment)

    def hmac_keys(self) -> list[bytes]:
        return [secret_key(secret) for secret, _ in self.entries]

    def __str__(self) -> str:
        return "|".join(
            secret + (f"@{retires.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}" if retires else "")
            for secret, retires in self.entries
        )


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value for one secret: `v1,<base64>`."""
    return "v1," + base64.b64encode(_mac(secret_key(secret), msg_id, timestamp, body)).decode()


def _mac(key: bytes, msg_id: str, timestamp: int, body: bytes) -> bytes:
    return hmac.digest(key, f"{msg_id}.{timestamp}.".encode() + body, "sha256")  # OpenSSL's one-shot HMAC


def sign_headers(
    secret: str | tuple[str, ...], body: bytes, *, msg_id: str | None = None, now: int | None = None
) -> dict[str, str]:
    """The three `webhook-*` headers; with several secrets (a rotation), one signature each."""
    msg_id = msg_id or new_message_id()
    timestamp = int(time.time()) if now is None else now
    secrets_ = (secret,) if isinstance(secret, str) else secret
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(sign(s, msg_id, timestamp, body) for s in secrets_),
    }


@dataclass(frozen=True)
class Verified:
    msg_id: str
    timestamp: int


def verify(
    secrets_: tuple[str, ...], headers: Mapping[str, str], body: bytes, *, now: float | None = None
) -> Verified:
    """Check headers against any of `secrets_` (rotation). Raises SignatureError; never returns False.

    Every header is bounded and every candidate is decoded before comparing, so no header value can
    make this raise anything but SignatureError."""
    msg_id, stamp, signatures = (
        headers.get(h) for h in ("webhook-id", "webhook-timestamp", "webhook-signature")
    )
    if not (msg_id and stamp and signatures):
        raise SignatureError(
            "SIGNATURE_MISSING", "webhook-id, webhook-timestamp and webhook-signature are required"
        )
    if len(msg_id) > MAX_ID_LENGTH:
        raise SignatureError("SIGNATURE_INVALID", f"webhook-id is longer than {MAX_ID_LENGTH} characters")
    if len(signatures) > MAX_SIGNATURE_HEADER:
        raise SignatureError(
            "SIGNATURE_INVALID", f"webhook-signature is longer than {MAX_SIGNATURE_HEADER} characters"
        )
    if not _TIMESTAMP.fullmatch(stamp):
        raise SignatureError("SIGNATURE_INVALID", "webhook-timestamp is not Unix time in whole seconds")
    timestamp = int(stamp)
    current = time.time() if now is None else now
    if abs(current - timestamp) > TOLERANCE_SECONDS:
        raise SignatureError(
            "SIGNATURE_EXPIRED", f"webhook-timestamp is more than {TOLERANCE_SECONDS} s from the server clock"
        )
    offered = [mac for part in signatures.split(" ") if (mac := _candidate(part)) is not None]
    for secret in secrets_:
        expected = _mac(secret_key(secret), msg_id, timestamp, body)
        if any(hmac.compare_digest(expected, candidate) for candidate in offered):
            return Verified(msg_id, timestamp)
    raise SignatureError("SIGNATURE_INVALID", "no signature matches")


def _candidate(part: str) -> bytes | None:
    """The MAC of one `v1,<base64>` value; None for other versions and for anything not base64."""
    version, _, encoded = part.partition(",")
    if version != "v1":
        return None
    try:
        return base64.b64decode(encoded, validate=True)
    except ValueError:  # binascii.Error, and non-ASCII text
        return None


REPLAY_WINDOW_SECONDS = 2 * TOLERANCE_SECONDS


def replay_digest(key: str) -> bytes:
    """What a replay guard remembers of a message id: 16 bytes, whatever the caller sent."""
    return hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=16).digest()


class ReplayGuard:
    """Remembers message ids for the tolerance window; a second sighting is a replay.

    In-process memory: correct for one bridge process. Replicas share one in Redis (SET NX EX,
    n8nctl/adapters/redis_guards.py) behind the same `seen()`.
    """

    def __init__(self, window_seconds: float = REPLAY_WINDOW_SECONDS, max_entries: int = 1_000_000) -> None:
        self._window, self._max = window_seconds, max_entries
        self._seen: OrderedDict[bytes, float] = OrderedDict()
        self._lock = threading.Lock()

    def seen(self, key: str, now: float | None = None) -> bool:
        """Record `key`; True when it was already recorded inside the window."""
        current = time.monotonic() if now is None else now
        with self._lock:
            while self._seen and (
                next(iter(self._seen.values())) < current - self._window or len(self._seen) >= self._max
            ):
                self._seen.popitem(last=False)
            digest = replay_digest(key)
            if digest in self._seen:
                return True
            self._seen[digest] = current
            return False
