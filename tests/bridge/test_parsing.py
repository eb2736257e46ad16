"""The parsing policy (bridge/parsing.py), as properties: whatever the bytes, the answer is a value
the store, n8n and FlowBiz can take back, or MALFORMED_JSON; never another exception."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from n8nctl.bridge.errors import ApiError
from n8nctl.bridge.parsing import MAX_DEPTH, parse_json

SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text()
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=30,
)


def _depth(value: object) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


def _representable(value: object) -> bool:
    """What the policy must accept: finite numbers, real Unicode text, bounded depth."""

    def ok(node: object) -> bool:
        if isinstance(node, float):
            return math.isfinite(node)
        if isinstance(node, str):
            return not any(0xD800 <= ord(c) <= 0xDFFF for c in node)
        if isinstance(node, dict):
            return all(ok(k) and ok(v) for k, v in node.items())
        if isinstance(node, list):
            return all(map(ok, node))
        return True

    return ok(value) and _depth(value) <= MAX_DEPTH


@settings(max_examples=400, deadline=None)
@given(value=JSON, ascii_only=st.booleans())
def test_a_value_round_trips_exactly_when_it_is_representable(value, ascii_only):
    raw = json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    try:
        parsed = parse_json(raw)
    except ApiError as exc:
        assert exc.error_code == "MALFORMED_JSON"
        assert not _representable(value), f"refused a representable value: {exc.message}"
    else:
        assert _representable(value)
        assert json.dumps(parsed, allow_nan=False).encode()  # the store and FlowBiz can take it back
        assert parsed == value


@settings(max_examples=400, deadline=None)
@given(raw=st.binary(max_size=300) | JSON.map(lambda v: json.dumps(v).encode()[:-1]))
def test_any_bytes_give_a_value_or_malformed_json(raw):
    try:
        parse_json(raw)
    except ApiError as exc:
        assert (exc.status, exc.error_code) == (400, "MALFORMED_JSON")


@pytest.mark.parametrize("depth", [MAX_DEPTH, MAX_DEPTH + 1, 5000, 500_000])
def test_depth_is_limited_at_max_depth(depth):
    raw = b"[" * depth + b"]" * depth
    if depth <= MAX_DEPTH:
        assert _depth(parse_json(raw)) == depth
    else:
        with pytest.raises(ApiError, match="deeper"):
            parse_json(raw)
