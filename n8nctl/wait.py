"""Polling with a deadline, for commands that wait on a service to reach a state."""

from __future__ import annotations

import time
from collections.abc import Callable


def until(predicate: Callable[[], bool], timeout: float, *, interval: float = 0.1) -> bool:
    """Call `predicate` every `interval` s until it is true (True) or `timeout` s have passed (False)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True
