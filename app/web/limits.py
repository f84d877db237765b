"""Rate limits on the public endpoints and on login, per client address.

Built directly on ``limits`` (the rate-limiting core that Flask-Limiter wraps, same
maintainers): a fixed-window counter per (endpoint group, client address) in the
storage ``LEVER_RATE_LIMIT_STORAGE`` names. Measured on this project, Flask-Limiter's
request hooks cost more than the whole assign endpoint (they run on every request and
twice on decorated ones); a direct ``hit`` costs about 10 µs and runs only where a
limit applies.

With the default ``memory://`` storage each gunicorn worker counts on its own, so the
effective limit is the setting times the number of workers; point it at Redis for one
shared budget. ``memory://`` is counted here (``MemoryWindows``), not in ``limits``'
``MemoryStorage``: that one starts a ``threading.Timer`` thread whenever its expiry timer is
not running (every 10 ms under load) and the request waits for the thread to start, which
profiled at 13-39 % of an assign. The windows are the same: a key's window opens at its
first hit and lasts the limit's period. A request over the limit gets a 429 JSON error (``rate_limited``)
through the common error renderer, with ``Retry-After``.
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Protocol

from flask import Flask, Response, request
from limits import RateLimitItem, parse_many, storage, strategies

from .errors import error_response
from .events_api import ENDPOINTS as EVENT_ENDPOINTS
from .public_api import ENDPOINTS as PUBLIC_ENDPOINTS

#: app.extensions key of the app's ``RateLimits`` (the fast path counts in the same windows)
RATE_LIMITS = "lever.rate_limits"
#: password guessing: failed or not, login attempts per client address
LOGIN_LIMIT = "10/minute"
LOGIN_ENDPOINT = "report.login"


@dataclass(frozen=True)
class Rule:
    group: str
    items: tuple[RateLimitItem, ...]
    methods: frozenset[str]


class Windows(Protocol):
    """Fixed-window counters: count a hit, and when the window of a key resets."""

    def hit(self, item: RateLimitItem, *identifiers: str) -> bool: ...

    def reset_time(self, item: RateLimitItem, *identifiers: str) -> float: ...


class MemoryWindows:
    """``memory://``: this process's fixed windows, as ``limits``' FixedWindowRateLimiter over its
    MemoryStorage counts them (a window opens at a key's first hit), without a timer thread:
    expired keys are dropped when the table grows past ``prune_at``."""

    def __init__(self, prune_at: int = 10_000) -> None:
        self._windows: dict[str, tuple[float, int]] = {}  # key -> (window end, hits in it)
        self._lock = threading.Lock()
        self.prune_at = prune_at

    def hit(self, item: RateLimitItem, *identifiers: str) -> bool:
        key, now = item.key_for(*identifiers), time.time()
        with self._lock:
            end, hits = self._windows.get(key, (0.0, 0))
            if end <= now:
                end, hits = now + item.get_expiry(), 0
            self._windows[key] = (end, hits + 1)
            if len(self._windows) > self.prune_at:
                self._windows = {k: v for k, v in self._windows.items() if v[0] > now}
        return hits + 1 <= item.amount

    def reset_time(self, item: RateLimitItem, *identifiers: str) -> float:
        end, _hits = self._windows.get(item.key_for(*identifiers), (0.0, 0))
        return end if end > time.time() else time.time()


class LimitsWindows:
    """Any other storage ``limits`` knows (``redis://…``): its FixedWindowRateLimiter."""

    def __init__(self, storage_uri: str) -> None:
        self._limiter = strategies.FixedWindowRateLimiter(storage.storage_from_string(storage_uri))

    def hit(self, item: RateLimitItem, *identifiers: str) -> bool:
        return self._limiter.hit(item, *identifiers)

    def reset_time(self, item: RateLimitItem, *identifiers: str) -> float:
        return self._limiter.get_window_stats(item, *identifiers).reset_time


def open_windows(storage_uri: str) -> Windows:
    return MemoryWindows() if storage_uri.rstrip("/") == "memory:" else LimitsWindows(storage_uri)


class RateLimits:
    def __init__(self, storage_uri: str) -> None:
        self._limiter = open_windows(storage_uri)
        self.rules: dict[str, Rule] = {}
        self.enabled = True

    def add(self, endpoint: str, limit: str, group: str, methods: tuple[str, ...]) -> None:
        self.rules[endpoint] = Rule(group, tuple(parse_many(limit)), frozenset(methods))

    def hit(self, endpoint: str, method: str, client: str) -> tuple[RateLimitItem, int] | None:
        """Count one request of ``client`` to ``endpoint``: None when it may go on, else the limit
        it exceeds and the seconds until that window resets (``Retry-After``)."""
        rule = self.rules.get(endpoint)
        if rule is None or not self.enabled or method not in rule.methods:
            return None
        for item in rule.items:
            if not self._limiter.hit(item, rule.group, client):
                return item, max(1, math.ceil(self._limiter.reset_time(item, rule.group, client) - time.time()))
        return None

    def check(self) -> Response | None:
        """Flask's before-request hook: None when the request may go on, else the 429 response."""
        exceeded = self.hit(request.endpoint or "", request.method, request.remote_addr or "unknown")
        if exceeded is None:
            return None
        item, retry_after = exceeded
        response = error_response(429, "rate_limited", over_limit_message(item))
        response.headers["Retry-After"] = str(retry_after)
        return response


def over_limit_message(item: RateLimitItem) -> str:
    return f"more than {item} from this address; retry later"


def init_rate_limits(app: Flask) -> None:
    limits = RateLimits(app.config["LEVER_RATE_LIMIT_STORAGE"])
    app.extensions[RATE_LIMITS] = limits
    limits.add(LOGIN_ENDPOINT, LOGIN_LIMIT, "login", ("POST",))
    if app.config["LEVER_RATE_LIMIT"]:
        for endpoint in PUBLIC_ENDPOINTS + EVENT_ENDPOINTS:
            # one budget for assign, reward and events; preflights (OPTIONS) are free
            limits.add(endpoint, app.config["LEVER_RATE_LIMIT"], "public", ("POST",))
    app.before_request(limits.check)
