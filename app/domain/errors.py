"""Exceptions that carry their HTTP status.

The service and the validators raise ``LeverError`` subclasses; the one handler in
``app.web.errors`` renders them as ``{"error": {"code", "message"}}`` JSON (API paths)
or a small HTML page. Nothing here knows about HTTP beyond the status number.
"""
from __future__ import annotations


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


class Forbidden(LeverError):
    status = 403
    code = "forbidden"
