"""Standard Webhooks: the spec's test vector, interoperability with the official library, rotation."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
import standardwebhooks
from hypothesis import given, settings
from hypothesis import strategies as st

from n8nctl.signing import (
    MAX_SIGNATURE_HEADER,
    Keyring,
    ReplayGuard,
    SignatureError,
    generate_secret,
    sign,
    sign_headers,
    verify,
)

# The vector published with the Standard Webhooks libraries.
VECTOR = {
    "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "msg_id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
    "timestamp": 1614265330,
    "body": b'{"test": 2432232314}',
    "signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
}


def test_signature_matches_the_published_vector():
    assert (
        sign(VECTOR["secret"], VECTOR["msg_id"], VECTOR["timestamp"], VECTOR["body"]) == VECTOR["signature"]
    )


def test_verify_accepts_the_published_vector_at_its_time():
    headers = {
        "webhook-id": VECTOR["msg_id"],
        "webhook-timestamp": str(VECTOR["timestamp"]),
        "webhook-signature": VECTOR["signature"],
    }
    assert (
        verify((VECTOR["secret"],), headers, VECTOR["body"], now=VECTOR["timestamp"] + 10).msg_id
        == VECTOR["msg_id"]
    )


@settings(max_examples=50, deadline=None)
@given(body=st.text(max_size=300).map(str.encode))
def test_official_library_verifies_what_we_sign(body):
    secret = generate_secret()
    assert standardwebhooks.Webhook(secret).verify(body, sign_headers(secret, body), json_parse=False) is None


@settings(max_examples=50, deadline=None)
@given(body=st.text(max_size=300))
def test_we_verify_what_the_official_library_signs(body):
    secret = generate_secret()
    now = int(time.time())
    signature = standardwebhooks.Webhook(secret).sign("msg_1", datetime.fromtimestamp(now, UTC), body)
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(now), "webhook-signature": signature}
    assert verify((secret,), headers, body.encode()).msg_id == "msg_1"


def test_any_of_several_signatures_and_any_of_several_secrets():
    old, new, body = generate_secret(), generate_secret(), b"{}"
    headers = sign_headers(old, body)
    assert verify((new, old), headers, body)
    headers["webhook-signature"] = f"v1,bm90LWl0 {headers['webhook-signature']}"
    assert verify((old,), headers, body)


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"webhook-signature": None}, "SIGNATURE_MISSING"),
        ({"webhook-timestamp": "1614265330"}, "SIGNATURE_EXPIRED"),
        ({"webhook-signature": "v2,abc"}, "SIGNATURE_INVALID"),
        ({"webhook-id": "msg_other"}, "SIGNATURE_INVALID"),
    ],
)
def test_rejections(change, code):
    secret, body = generate_secret(), b"{}"
    headers = {k: v for k, v in {**sign_headers(secret, body), **change}.items() if v is not None}
    with pytest.raises(SignatureError) as error:
        verify((secret,), headers, body)
    assert error.value.code == code


def test_wrong_secret_is_rejected():
    body = b"{}"
    with pytest.raises(SignatureError):
        verify((generate_secret(),), sign_headers(generate_secret(), body), body)


def test_secret_needs_base64_after_the_prefix():
    with pytest.raises(ValueError, match="whsec_"):
        sign("whsec_", "m", 1, b"")


def test_replay_guard_forgets_after_the_window():
    guard = ReplayGuard(window_seconds=10)
    assert guard.seen("a", now=0) is False
    assert guard.seen("a", now=5) is True
    assert guard.seen("a", now=16) is False


def test_replay_guard_is_bounded():
    guard = ReplayGuard(window_seconds=100, max_entries=3)
    for key in "abcd":
        guard.seen(key, now=1)
    assert guard.seen("a", now=1) is False  # the oldest entry was dropped to stay within bounds


# -- properties: no header value makes verify raise anything but SignatureError ------------------------

HEADER_TEXT = st.text(st.characters(max_codepoint=0x2FF, exclude_categories=("Cs",)), max_size=80)
SECRET = generate_secret()


@settings(max_examples=300, deadline=None)
@given(
    msg_id=st.one_of(st.none(), HEADER_TEXT, st.text(min_size=250, max_size=300)),
    stamp=st.one_of(st.none(), HEADER_TEXT, st.integers().map(str), st.just("9" * 400)),
    signature=st.one_of(st.none(), HEADER_TEXT, st.lists(HEADER_TEXT, max_size=5).map(" ".join)),
    body=st.binary(max_size=200),
)
def test_any_headers_are_either_verified_or_a_signature_error(msg_id, stamp, signature, body):
    headers = {
        k: v
        for k, v in {"webhook-id": msg_id, "webhook-timestamp": stamp, "webhook-signature": signature}.items()
        if v is not None
    }
    try:
        verify((SECRET,), headers, body)
    except SignatureError as exc:
        assert exc.code in {"SIGNATURE_MISSING", "SIGNATURE_INVALID", "SIGNATURE_EXPIRED"}
    else:  # only a real signature verifies, and hypothesis does not forge HMACs
        raise AssertionError(f"verified forged headers {headers!r}")


@settings(max_examples=200, deadline=None)
@given(
    msg_id=st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=256),
    body=st.binary(max_size=500),
    junk=st.lists(HEADER_TEXT, max_size=4),
    skew=st.integers(-300, 300),
)
def test_a_good_signature_verifies_among_any_junk_and_a_changed_body_does_not(msg_id, body, junk, skew):
    now = 1_795_000_000
    headers = sign_headers(SECRET, body, msg_id=msg_id, now=now + skew)
    headers["webhook-signature"] = " ".join([*junk, headers["webhook-signature"]])[-MAX_SIGNATURE_HEADER:]
    assert verify((generate_secret(), SECRET), headers, body, now=now).msg_id == msg_id
    with pytest.raises(SignatureError):
        verify((SECRET,), headers, body + b" ", now=now)


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=60))
def test_keyring_parse_only_raises_value_error_and_never_quotes(text):
    try:
        Keyring.parse(text)
    except ValueError as exc:
        assert text not in str(exc) or len(text) < 4
