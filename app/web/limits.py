"""Rate limits on the public endpoints and on login, per client address.

Built directly on ``limits`` (the rate-limiting core that Flask-Limiter wraps, same
maintainers): a fixed-window counter per (endpoint group, client address) in the
storage ``LEVER_RATE_LIMIT_STORAGE`` names. Measured on this project, Flask-Limiter's
request hooks cost more than the whole assign endpoint (they run on every request and
twice on decorated ones); a direct ``hit`` costs about 10 µs and runs only where a
limit applies.

With the default ``memory://`` storage each gunicorn worker counts on its own, so the
effective limit is the setting times the number of workers; point it at Redis for one
shared budget. A request over the limit gets a 429 JSON error (``rate_limited``)
through the common error renderer, with ``Retry-After``.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

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


class RateLimits:
    def __init__(self, storage_uri: str) -> None:
        self._limiter = strategies.FixedWindowRateLimiter(storage.storage_from_string(storage_uri))
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
                reset = self._limiter.get_window_stats(item, rule.group, client).reset_time
                return item, max(1, math.ceil(reset - time.time()))
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
