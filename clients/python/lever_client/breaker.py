"""A circuit breaker for ``assign``: after a few failures in a row, stop waiting for a Lever
that is down and answer the fallback at once, probing again after a growing pause."""
from __future__ import annotations

import random
import threading
import time
from typing import Callable


class Breaker:
    """Closed until ``threshold`` consecutive failures; then open for ``pause`` seconds
    (doubling on every failed probe up to ``max_pause``, with +-25% jitter so that many
    processes do not probe in step). When the pause ends, one caller probes; a success closes it."""

    def __init__(self, threshold: int = 3, pause: float = 1.0, max_pause: float = 30.0,
                 rng: random.Random | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold = threshold
        self.pause = pause
        self.max_pause = max_pause
        self._rng = rng or random.Random()
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._opened = 0  # how many times in a row it has opened
        self._until = 0.0

    def allow(self) -> bool:
        with self._lock:
            if self._failures < self.threshold:
                return True
            now = self._clock()
            if now < self._until:
                return False
            self._until = now + self._next_pause()  # this caller probes; the others wait
            return True

    def success(self) -> None:
        with self._lock:
            self._failures = 0
            self._opened = 0
            self._until = 0.0

    def failure(self) -> None:
        with self._lock:
            self._failures += 1
            if self._failures == self.threshold:
                self._until = self._clock() + self._next_pause()

    def _next_pause(self) -> float:
        pause = min(self.max_pause, self.pause * 2.0 ** min(self._opened, 32))
        self._opened += 1
        return pause * self._rng.uniform(0.75, 1.25)
