"""The client's logger, and a way to say a thing once per episode instead of once per call."""
from __future__ import annotations

import logging
import threading

logger = logging.getLogger("lever_client")


class LogOnce:
    """``warning(key, ...)`` logs the first time for ``key`` until ``reset(key)`` (the episode
    is over: Lever answered again). A page that falls back 10 000 times logs one line."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active: set[str] = set()

    def _first(self, key: str) -> bool:
        with self._lock:
            if key in self._active:
                return False
            self._active.add(key)
            return True

    def warning(self, key: str, message: str, *args: object) -> None:
        if self._first(key):
            logger.warning(message, *args)

    def reset(self, key: str, message: str = "", *args: object) -> None:
        """End the episode; log ``message`` at INFO if one was going on."""
        with self._lock:
            was_active = key in self._active
            self._active.discard(key)
        if was_active and message:
            logger.info(message, *args)
