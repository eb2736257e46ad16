"""Standard Webhooks signatures (https://www.standardwebhooks.com), used on every hop.

Signed content is `{webhook-id}.{webhook-timestamp}.{raw body}`; the signature header carries one or
more space-separated `v1,<base64 HMAC-SHA256>` values so secrets can be rotated.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)
TOLERANCE_SECONDS = 300


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


def _key(secret: str) -> bytes:
    raw = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(raw + "==")
    except (binascii.Error, ValueError):
        key = b""
    if not key:
        raise ValueError("a Standard Webhooks secret is 'whsec_' followed by base64")
    return key


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value for one secret: `v1,<base64>`."""
    mac = hmac.new(_key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def sign_headers(
    secret: str, body: bytes, *, msg_id: str | None = None, now: int | None = None
) -> dict[str, str]:
    msg_id = msg_id or new_message_id()
    timestamp = int(time.time()) if now is None else now
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
    }


@dataclass(frozen=True)
class Verified:
    msg_id: str
    timestamp: int


def verify(
    secrets_: tuple[str, ...], headers: Mapping[str, str], body: bytes, *, now: float | None = None
) -> Verified:
    """Check headers against any of `secrets_` (rotation). Raises SignatureError; never returns False."""
    msg_id, stamp, signatures = (
        headers.get(h) for h in ("webhook-id", "webhook-timestamp", "webhook-signature")
    )
    if not (msg_id and stamp and signatures):
        raise SignatureError(
            "SIGNATURE_MISSING", "webhook-id, webhook-timestamp and webhook-signature are required"
        )
    try:
        timestamp = int(stamp)
    except ValueError:
        raise SignatureError("SIGNATURE_INVALID", "webhook-timestamp is not an integer") from None
    current = time.time() if now is None else now
    if abs(current - timestamp) > TOLERANCE_SECONDS:
        raise SignatureError(
            "SIGNATURE_EXPIRED", f"webhook-timestamp is more than {TOLERANCE_SECONDS} s from the server clock"
        )
    offered = [part.split(",", 1)[1] for part in signatures.split(" ") if part.startswith("v1,")]
    for secret in secrets_:
        expected = sign(secret, msg_id, timestamp, body).split(",", 1)[1]
        if any(hmac.compare_digest(expected, candidate) for candidate in offered):
            return Verified(msg_id, timestamp)
    raise SignatureError("SIGNATURE_INVALID", "no signature matches")


class ReplayGuard:
    """Remembers message ids for the tolerance window; a second sighting is a replay.

    In-process memory: correct for one bridge process. Replicas need a shared guard (Redis SET NX EX)
    behind the same `seen()` method.
    """

    def __init__(self, window_seconds: float = 2 * TOLERANCE_SECONDS, max_entries: int = 1_000_000) -> None:
        self._window, self._max = window_seconds, max_entries
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def seen(self, key: str, now: float | None = None) -> bool:
        """Record `key`; True when it was already recorded inside the window."""
        current = time.monotonic() if now is None else now
        with self._lock:
            while self._seen and (
                next(iter(self._seen.values())) < current - self._window or len(self._seen) >= self._max
            ):
                self._seen.popitem(last=False)
            if key in self._seen:
                return True
            self._seen[key] = current
            return False
