"""The one error renderer: every failure of a request answers through it.

``LeverError`` subclasses (``app.domain.errors``) carry their status and code; API paths
get ``{"error": {"code", "message"}}`` JSON, other paths a small HTML page. Werkzeug's
own HTTP errors (404, 405, 413 …), the storage's "busy" and "outcome unknown" and
anything unexpected go through the same renderer, so no request ever answers with an
HTML stack trace or a bare 500 body.
"""
from __future__ import annotations

import logging

from flask import Flask, Response, jsonify, render_template_string, request
from werkzeug.exceptions import HTTPException

from ..domain.errors import LeverError
from ..storage import StorageBusy, StorageOutcomeUnknown

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
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

    @app.errorhandler(StorageOutcomeUnknown)
    def storage_outcome_unknown(_error: StorageOutcomeUnknown) -> Response:
        return error_response(503, "outcome_unknown",
                              "the database connection dropped while committing and the outcome could not be "
                              "checked: this request may or may not have been recorded")

    @app.errorhandler(StorageBusy)
    def storage_busy(_error: StorageBusy) -> Response:
        return error_response(503, "service_unavailable", "the database is busy; retry shortly (nothing was written)")

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
