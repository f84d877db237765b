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


#: the database's failures a request can meet: status, code, message (nothing written, or unknown)
STORAGE_ERRORS: dict[type[Exception], tuple[int, str, str]] = {
    StorageOutcomeUnknown: (503, "outcome_unknown",
                            "the database connection dropped while committing and the outcome could not be "
                            "checked: this request may or may not have been recorded"),
    StorageBusy: (503, "service_unavailable", "the database is busy; retry shortly (nothing was written)"),
}
#: what an unexpected failure answers (after logging it with ``UNHANDLED_LOG``)
UNEXPECTED = (500, "internal_error", "Unexpected server error; it has been logged.")
UNHANDLED_LOG = "unhandled error on %s %s"


def storage_error(error: Exception) -> tuple[int, str, str] | None:
    """The answer to a storage error (its most specific class in ``STORAGE_ERRORS``), else None."""
    for cls in type(error).__mro__:
        if cls in STORAGE_ERRORS:
            return STORAGE_ERRORS[cls]
    return None


def _render_storage_error(error: Exception) -> Response:
    status, code, message = storage_error(error) or UNEXPECTED
    return error_response(status, code, message)


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

    for error_class in STORAGE_ERRORS:
        app.register_error_handler(error_class, _render_storage_error)

    @app.errorhandler(HTTPException)
    def handle_http_error(error: HTTPException) -> Response:
        status = error.code or 500
        response = error_response(status, _HTTP_CODES.get(status, "http_error"), error.description or error.name)
        if status == 405 and error.valid_methods:
            response.headers["Allow"] = ", ".join(error.valid_methods)
        return response

    @app.errorhandler(Exception)
    def handle_unexpected(error: Exception) -> Response:  # the last line of defence
        log.exception(UNHANDLED_LOG, request.method, request.path)
        return error_response(*UNEXPECTED)
