"""The fast path: assign, reward and events served by a plain WSGI callable in front of Flask.

Profiled, Flask's request and response machinery around these views (request and response
objects, routing, contexts, hooks, ``jsonify``, the CORS hook) cost more than the views' own
work. ``FastPath`` answers ``POST`` and ``OPTIONS`` of the public routes itself with the same
code the Flask views run (``public_calls``) and hands every other request to Flask, unchanged.
The answers are the Flask views' answers, byte for byte (``tests/test_fast_path.py`` sends
the same requests both ways):

* the same hooks in the same order: the guardrail monitor's start, the rate limit (the same
  ``RateLimits`` object, so both paths count in the same windows), the call, the storage's
  end-of-request release;
* the same JSON (the app's JSON provider, compact), the same CORS headers, the same
  ``{"error": {"code", "message"}}`` errors from the same exceptions (a ``LeverError``, a
  storage failure: 503, anything else: logged, 500);
* anything it could not answer identically goes to Flask: another method or path, a body
  without a plain ``Content-Length`` (chunked, absent) or over ``LEVER_MAX_BODY_BYTES``
  (Flask's 413), a body shorter than announced (replayed to Flask as read), debug mode, or
  an app with request hooks the fast path does not know (then it passes everything).

``LEVER_FAST_PATH=false`` leaves Flask to serve everything.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from flask import Flask
from werkzeug.http import HTTP_STATUS_CODES

from ..domain.errors import LeverError
from .errors import UNEXPECTED, UNHANDLED_LOG, storage_error
from .errors import log as error_log
from .limits import RATE_LIMITS, RateLimits, over_limit_message
from .public_calls import CALLS, CORS_HEADERS, SETUP, VARY, PublicCall, PublicRequest, PublicSetup, allow_origin

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]
Header = tuple[str, str]

#: app.extensions key of the guardrail monitor (``app.web.factory``)
GUARDRAILS = "lever.guardrails"
#: status lines as werkzeug writes them ("202 ACCEPTED")
STATUS_LINES = {code: f"{code} {reason.upper()}" for code, reason in HTTP_STATUS_CODES.items()}
_JSON: Header = ("Content-Type", "application/json")
#: what Flask's empty ``Response(status=204)`` carries (werkzeug drops its Content-Length)
_PREFLIGHT: Header = ("Content-Type", "text/html; charset=utf-8")
_CORS_TAIL: tuple[Header, ...] = (*CORS_HEADERS, VARY)
_COMPACT = {"separators": (",", ":")}


@dataclass(frozen=True)
class Route:
    endpoint: str  # the Flask endpoint (the rate limit's rule is keyed by it)
    call: PublicCall


def known_hooks(app: Flask) -> bool:
    """The app's request hooks are the ones the fast path runs itself: the guardrail monitor and
    the rate limit before every request, CORS after the public blueprints' (each endpoint's
    blueprint, ``public`` or ``events``), the storage release at teardown."""
    befores = [getattr(f, "__name__", "") for f in app.before_request_funcs.get(None, [])]
    afters = {bp: [getattr(f, "__name__", "") for f in funcs] for bp, funcs in app.after_request_funcs.items()
              if bp in {endpoint.split(".")[0] for endpoint in CALLS} or bp is None}
    return (befores == ["ensure_started", "check"] and afters == {"public": ["cors"], "events": ["cors"]}
            and not app.teardown_request_funcs and not app.url_value_preprocessors
            and len(app.teardown_appcontext_funcs) == 1)


class FastPath:
    """WSGI middleware: the public calls without Flask; everything else to ``flask_app``."""

    def __init__(self, app: Flask, flask_app: WSGIApp) -> None:
        self.flask_app = flask_app
        self.app = app
        self.setup: PublicSetup = app.extensions[SETUP]
        self.rate_limits: RateLimits = app.extensions[RATE_LIMITS]
        self.before: Callable[[], None] = app.extensions[GUARDRAILS].ensure_started
        self.max_body: int = app.config["MAX_CONTENT_LENGTH"]
        self.dumps: Callable[..., str] = app.json.dumps  # the app's provider: no NaN, keys as given
        # the route table is the Flask app's own: the same paths, one call per endpoint
        self.routes: dict[str, Route] = {} if not known_hooks(app) else {
            rule.rule: Route(rule.endpoint, CALLS[rule.endpoint])
            for rule in app.url_map.iter_rules() if rule.endpoint in CALLS}

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        route = self.routes.get(environ.get("PATH_INFO", ""))
        if route is None or self.app.debug:
            return self.flask_app(environ, start_response)
        method = environ.get("REQUEST_METHOD")
        origin = environ.get("HTTP_ORIGIN")
        if origin is not None and ("\n" in origin or "\r" in origin):  # werkzeug refuses such a header value
            return self.flask_app(environ, start_response)
        if method == "OPTIONS":  # the preflight: no body read, no rate limit, nothing stored
            self.before()
            start_response(STATUS_LINES[204], [_PREFLIGHT, ("Access-Control-Allow-Origin", allow_origin(origin)),
                                               *_CORS_TAIL])
            return []
        length = environ.get("CONTENT_LENGTH", "")
        if (method != "POST" or not (length.isascii() and length.isdigit()) or int(length) > self.max_body
                or "HTTP_TRANSFER_ENCODING" in environ):
            return self.flask_app(environ, start_response)
        body = environ["wsgi.input"].read(int(length))
        if len(body) != int(length):  # a client that sent less: Flask decides, on the bytes read
            environ["wsgi.input"] = io.BytesIO(body)
            return self.flask_app(environ, start_response)
        try:
            return self._serve(route, environ, body, origin, start_response)
        finally:
            self.setup.services.storage.release()

    def _serve(self, route: Route, environ: Environ, body: bytes, origin: str | None,
               start_response: StartResponse) -> Iterable[bytes]:
        self.before()
        exceeded = self.rate_limits.hit(route.endpoint, "POST", environ.get("REMOTE_ADDR") or "unknown")
        if exceeded is not None:
            item, retry_after = exceeded
            return self._error(start_response, origin, 429, "rate_limited", over_limit_message(item),
                               (("Retry-After", str(retry_after)),))
        request = PublicRequest(body=body, origin=origin, user_agent=environ.get("HTTP_USER_AGENT", ""),
                                authorization=environ.get("HTTP_AUTHORIZATION", ""))
        try:
            status, reply = route.call(self.setup, request)
            data = self.dumps(reply, **_COMPACT)
        except LeverError as error:
            return self._error(start_response, origin, error.status, error.code, error.message)
        except Exception as error:  # noqa: BLE001 - rendered as Flask's handlers render it
            found = storage_error(error)
            if found is None:
                error_log.exception(UNHANDLED_LOG, "POST", environ.get("PATH_INFO", ""))
                found = UNEXPECTED
            return self._error(start_response, origin, *found)
        return self._respond(start_response, origin, status, data)

    def _error(self, start_response: StartResponse, origin: str | None, status: int, code: str, message: str,
               extra: tuple[Header, ...] = ()) -> Iterable[bytes]:
        data = self.dumps({"error": {"code": code, "message": message}}, **_COMPACT)
        return self._respond(start_response, origin, status, data, extra)

    @staticmethod
    def _respond(start_response: StartResponse, origin: str | None, status: int, data: str,
                 extra: tuple[Header, ...] = ()) -> Iterable[bytes]:
        payload = (data + "\n").encode()  # jsonify's trailing newline
        start_response(STATUS_LINES[status], [_JSON, ("Content-Length", str(len(payload))), *extra,
                                              ("Access-Control-Allow-Origin", allow_origin(origin)), *_CORS_TAIL])
        return [payload]


def install(app: Flask) -> None:
    """Put the fast path in front of the app's WSGI callable (before any ProxyFix wraps it)."""
    app.wsgi_app = FastPath(app, app.wsgi_app)  # type: ignore[method-assign]
