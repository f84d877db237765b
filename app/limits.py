"""Rate limits on the public endpoints (Flask-Limiter), per client address.

The limit string and the counter storage are settings (``LEVER_RATE_LIMIT``,
``LEVER_RATE_LIMIT_STORAGE``). With the default ``memory://`` storage each gunicorn
worker counts on its own, so the effective limit is the setting times the number of
workers; point it at Redis for one shared budget. A request over the limit gets a 429
JSON error (``rate_limited``) through the common error renderer, with Retry-After.
"""
from __future__ import annotations

from flask import Flask
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

from .api import PUBLIC_ENDPOINTS

#: password guessing: failed or not, login attempts per client address
LOGIN_LIMIT = "10/minute"
LOGIN_ENDPOINT = "report.login"


def init_rate_limits(app: Flask) -> None:
    limit = app.config["LEVER_RATE_LIMIT"]
    limiter = Limiter(
        key_func=get_remote_address,
        app=app,
        storage_uri=app.config["LEVER_RATE_LIMIT_STORAGE"],
        default_limits=[],
        headers_enabled=True,
    )
    app.extensions["lever.limiter"] = limiter
    if LOGIN_ENDPOINT in app.view_functions:
        app.view_functions[LOGIN_ENDPOINT] = limiter.limit(LOGIN_LIMIT, methods=["POST"])(
            app.view_functions[LOGIN_ENDPOINT])
    if limit:
        for endpoint in PUBLIC_ENDPOINTS:
            view = app.view_functions[endpoint]
            # preflights are free: a browser sends one before the real request
            app.view_functions[endpoint] = limiter.limit(limit, exempt_when=_is_preflight)(view)


def _is_preflight() -> bool:
    from flask import request

    return request.method == "OPTIONS"
