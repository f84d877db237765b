"""Exceptions that carry their HTTP status, and the one handler that renders them.

Views raise ``LeverError`` subclasses; API paths get ``{"error": {"code", "message"}}``
JSON, other paths a small HTML page. Werkzeug's own HTTP errors (404, 405, 413 …) and
anything unexpected go through the same renderer, so no request ever answers with an
HTML stack trace or a bare 500 body.
"""
from __future__ import annotations

import logging

from flask import Flask, Response, jsonify, render_template_string, request
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


class LeverError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status


class ValidationError(LeverError):
    status = 400
    code = "invalid_request"


class Unauthorized(LeverError):
    status = 401
    code = "unauthorized"


class NotFound(LeverError):
    status = 404
    code = "not_found"


class Conflict(LeverError):
    status = 409
    code = "conflict"


class Unprocessable(LeverError):
    status = 422
    code = "unprocessable"


class ServiceUnavailable(LeverError):
    """The database is busy or unreachable: the client may retry, nothing was written."""

    status = 503
    code = "service_unavailable"


_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}

# No inline style: report pages send a CSP without 'unsafe-inline'; the stylesheet is static.
_HTML = """<!doctype html><title>{{ status }} {{ code }}</title>
<link rel="stylesheet" href="/static/report.css">
<main class="error-page"><h1>{{ status }}</h1><p>{{ message }}</p><p><a href="/">Back to experiments</a></p></main>"""


def wants_json() -> bool:
    return request.path.startswith("/api/") or request.path in ("/healthz",) or request.is_json


def error_response(status: int, code: str, message: str) -> Response:
    if wants_json():
        response = jsonify({"error": {"code": code, "message": message}})
    else:
        response = Response(render_template_string(_HTML, status=status, code=code, message=message))
    response.status_code = status
    return response


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(LeverError)
    def handle_lever_error(error: LeverError) -> Response:
        return error_response(error.status, error.code, error.message)

    @app.errorhandler(HTTPException)
    def handle_http_error(error: HTTPException) -> Response:
        status = error.code or 500
        response = error_response(status, _HTTP_CODES.get(status, "http_error"), error.description or error.name)
        if status == 405 and error.valid_methods:
            response.headers["Allow"] = ", ".join(error.valid_methods)
        return response

    @app.errorhandler(Exception)
    def handle_unexpected(error: Exception) -> Response:  # the last line of defence
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal_error", "Unexpected server error; it has been logged.")
