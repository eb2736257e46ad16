"""The one parsing policy for every request body the bridge reads.

A body is strict UTF-8 JSON whose numbers are finite, whose strings (keys included) hold no lone
surrogate and whose objects and arrays nest at most MAX_DEPTH deep: exactly what the store, n8n and
FlowBiz's JSON parsers can all take back. Anything else is a 400 MALFORMED_JSON, decided here once,
before any other code sees the value. Work on a large body runs in a thread (`sized`), so one big
request never stalls the event loop for the others.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import Callable
from typing import Any, TypeVar, TypeVarTuple

from n8nctl.bridge.errors import ApiError

MAX_DEPTH = 64
LARGE_BODY_BYTES = 64 * 1024  # above this, parsing and validation leave the event loop
_SURROGATE = re.compile("[\ud800-\udfff]")
# Strict UTF-8 decodes to no surrogate: one can only come from a \uD800-\uDFFF escape in the text.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
T = TypeVar("T")
Args = TypeVarTuple("Args")


def _malformed(why: str) -> ApiError:
    return ApiError("MALFORMED_JSON", f"request body is not valid JSON: {why}")


def _not_finite_error() -> ApiError:
    return _malformed("it has a number that is not finite (NaN, Infinity or out of range)")


def parse_json(raw: bytes) -> Any:
    """The value of `raw` under the policy; raises ApiError MALFORMED_JSON, and nothing else."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _malformed("it is not UTF-8") from None
    try:
        value = json.loads(text, parse_constant=_not_finite, parse_float=_finite)
    except RecursionError:
        raise _malformed(f"it nests deeper than {MAX_DEPTH} levels") from None
    except ValueError:
        raise _malformed("it does not parse") from None
    # Numbers are checked as they parse. The walk over depth and text runs unless the raw text shows
    # it cannot fail: no more brackets than MAX_DEPTH, and no escape that could make a surrogate.
    if text.count("[") + text.count("{") > MAX_DEPTH or _SURROGATE_ESCAPE.search(text):
        _check(value)
    return value


def _not_finite(_: str) -> Any:
    raise _not_finite_error()


def _finite(token: str) -> float:
    number = float(token)
    if not math.isfinite(number):  # 1e999
        raise _not_finite_error()
    return number


def _check(value: Any) -> None:
    """Walk the parsed value once, without recursion (the depth is what is being checked)."""
    containers: list[tuple[Any, int]] = [(value, 0)]
    while containers:
        node, depth = containers.pop()
        items: Any
        if isinstance(node, dict):
            for key in node:
                _check_text(key)
            items = node.values()
        elif isinstance(node, list):
            items = node
        else:
            _check_scalar(node)
            continue
        if depth >= MAX_DEPTH:
            raise _malformed(f"it nests deeper than {MAX_DEPTH} levels")
        for item in items:
            if isinstance(item, dict | list):
                containers.append((item, depth + 1))
            else:
                _check_scalar(item)


def _check_scalar(value: Any) -> None:
    if isinstance(value, str):
        _check_text(value)
    elif isinstance(value, float) and not math.isfinite(value):
        raise _not_finite_error()


def _check_text(text: str) -> None:
    if _SURROGATE.search(text):
        raise _malformed("it has a lone surrogate escape (\\ud800-\\udfff), which is not Unicode text")


async def sized(size: int, function: Callable[[*Args], T], *args: *Args) -> T:
    """Run `function(*args)` inline for a small body, in a worker thread for a large one."""
    if size > LARGE_BODY_BYTES:
        return await asyncio.to_thread(function, *args)
    return function(*args)
