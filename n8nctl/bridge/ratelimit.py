"""Per-client rate limits with GCRA (the generic cell rate algorithm): a token bucket kept as one
timestamp per key. `120/minute` allows a burst of 120, then one request every 0.5 s.

State is in process memory, which is right for one bridge process. Replicas run the same algorithm
in Redis (n8nctl/adapters/redis_guards.py, one key per client and kind), behind the same `hit`.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


@dataclass(frozen=True)
class Rate:
    count: int
    period: float

    @classmethod
    def parse(cls, text: str) -> Rate:
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(second|minute|hour|day)s?\s*", text)
        if not match or int(match[1]) < 1:
            raise ValueError(f"{text!r} is not a rate like '120/minute'")
        return cls(int(match[1]), UNITS[match[2]])

    @property
    def interval(self) -> float:
        """Seconds between two requests at the steady rate."""
        return self.period / self.count

    @property
    def tolerance(self) -> float:
        """How far ahead of now the theoretical arrival time may be: the burst, in seconds."""
        return self.period - self.interval


class RateLimiter:
    def __init__(self, rate: Rate, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval, self._tolerance = rate.interval, rate.tolerance
        self._clock = clock
        self._theoretical_arrival: dict[str, float] = {}
        self._lock = threading.Lock()

    def hit(self, key: str) -> float:
        """Count one request for `key`. Returns 0 when allowed, else the seconds until one would be."""
        with self._lock:
            now = self._clock()
            arrival = max(self._theoretical_arrival.get(key, now), now)
            wait = arrival - self._tolerance - now
            if wait > 0:
                return wait
            self._theoretical_arrival[key] = arrival + self._interval
            return 0.0
