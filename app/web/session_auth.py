"""Browser sessions for the report pages: admin login with the admin token, and CSRF tokens.

The session is Flask's signed cookie (signed with ``LEVER_SECRET_KEY``): HttpOnly,
SameSite=Lax, Secure when ``LEVER_ENV=production``. It holds

* ``admin``: an HMAC of the admin token (never the token itself), so rotating
  ``LEVER_ADMIN_TOKEN`` logs every browser out;
* ``since``: the login time; sessions end after ``SESSION_HOURS``;
* ``csrf``: a random per-session token every POST form must echo (checked in constant time).
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from datetime import timedelta
from urllib.parse import urlsplit

from flask import Flask, Request, current_app, request, session
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface

from ..domain.errors import LeverError
from ..service.permissions import OWNER, Principal

SESSION_HOURS = 12
CSRF_FIELD = "csrf_token"


class CsrfError(LeverError):
    status = 400
    code = "csrf_failed"


class CookieSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, minus the signing serializer (and cookie parsing)
    Flask spends on every request before it looks for a cookie: API calls carry none,
    and it cost each of them ~20 µs."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if app.secret_key and "HTTP_COOKIE" not in request.environ:
            return self.session_class()
        return super().open_session(app, request)


def configure(app: Flask) -> None:
    """Cookie settings of the session (called once when the report blueprint is registered)."""
    app.session_interface = CookieSessions()
    app.config.update(
        SESSION_COOKIE_NAME="lever_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=app.config.get("LEVER_ENV") == "production",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=SESSION_HOURS),
    )


def _admin_marker() -> str:
    token = current_app.config["LEVER_ADMIN_TOKEN"].encode()
    return hmac.new(current_app.config["SECRET_KEY"].encode(), b"lever-session:" + token, hashlib.sha256).hexdigest()


def csrf_token() -> str:
    """This session's CSRF token (created on first use)."""
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def check_csrf() -> None:
    """Reject (400) a form whose CSRF token is missing or not this session's."""
    sent = request.form.get(CSRF_FIELD, "")
    expected = session.get("csrf", "")
    if not sent or not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise CsrfError("The form's security token is missing or out of date. Reload the page and try again.")


def current_principal() -> Principal | None:
    """Who this session belongs to, or None (no session, expired, or the admin token rotated)."""
    marker = session.get("admin")
    since = session.get("since")
    if not isinstance(marker, str) or not isinstance(since, (int, float)):
        return None
    if time.time() - since > SESSION_HOURS * 3600:
        return None
    return OWNER if hmac.compare_digest(marker.encode(), _admin_marker().encode()) else None


def is_logged_in() -> bool:
    return current_principal() is not None


def log_in_owner() -> None:
    """Start an admin-token session (the caller checked the token); a fresh session: no fixation."""
    session.clear()
    session.permanent = True
    session["admin"] = _admin_marker()
    session["since"] = time.time()
    session["csrf"] = secrets.token_urlsafe(32)


def log_out() -> None:
    session.clear()


def safe_next(target: str | None) -> str | None:
    """A same-site path to go back to after login, or None (no open redirects)."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    return target

