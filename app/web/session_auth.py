"""Browser sessions for the report pages: login with an account (email and password) or the
admin token, failed-login throttling per account, and CSRF tokens.

The session is Flask's signed cookie (signed with ``LEVER_SECRET_KEY``): HttpOnly,
SameSite=Lax, Secure when ``LEVER_ENV=production``. It holds

* for the admin token, ``admin``: an HMAC of the token (never the token itself), so rotating
  ``LEVER_ADMIN_TOKEN`` logs every such browser out;
* for an account, ``account`` (its id) and ``generation`` (its session generation). Every
  request re-reads the account: a deactivated account, or one whose password changed since
  (both raise the generation), is logged out at once, and a role change applies at once;
* ``since``: the login time; sessions end after ``SESSION_HOURS``;
* ``csrf``: a random per-session token every POST form must echo (checked in constant time).

Password guessing is throttled twice: per client address on the login endpoint
(``limits.LOGIN_LIMIT``, every attempt) and per account here (``ACCOUNT_LOGIN_LIMIT``,
failed attempts), in the rate-limit storage (``LEVER_RATE_LIMIT_STORAGE``).
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
from limits import parse_many, storage, strategies

from ..domain.accounts import Account
from ..domain.errors import LeverError
from ..service.accounts import account_principal
from ..service.permissions import OWNER, Principal
from .db import get_storage

SESSION_HOURS = 12
CSRF_FIELD = "csrf_token"
#: failed logins per account (whatever the address) before it has to wait
ACCOUNT_LOGIN_LIMIT = "5/minute;20/hour"
_THROTTLE = "lever.login_throttle"


class LoginThrottle:
    """Failed logins per account, in fixed windows of the rate-limit storage."""

    def __init__(self, storage_uri: str) -> None:
        self._limiter = strategies.FixedWindowRateLimiter(storage.storage_from_string(storage_uri))
        self._items = tuple(parse_many(ACCOUNT_LOGIN_LIMIT))

    def blocked(self, email: str) -> bool:
        return any(not self._limiter.test(item, "login-account", email) for item in self._items)

    def failed(self, email: str) -> None:
        for item in self._items:
            self._limiter.hit(item, "login-account", email)


def login_throttle() -> LoginThrottle:
    return current_app.extensions[_THROTTLE]


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
    app.extensions[_THROTTLE] = LoginThrottle(app.config["LEVER_RATE_LIMIT_STORAGE"])
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
    """Who this session belongs to, or None (no session, expired, the admin token rotated, the
    account deactivated or its password changed since)."""
    since = session.get("since")
    if not isinstance(since, (int, float)) or time.time() - since > SESSION_HOURS * 3600:
        return None
    marker = session.get("admin")
    if isinstance(marker, str):
        return OWNER if hmac.compare_digest(marker.encode(), _admin_marker().encode()) else None
    account_id, generation = session.get("account"), session.get("generation")
    if not isinstance(account_id, int) or not isinstance(generation, int):
        return None
    account = get_storage().get_account(account_id)
    if account is None or not account.active or account.session_generation != generation:
        return None
    return account_principal(account)


def is_logged_in() -> bool:
    return current_principal() is not None


def _fresh_session() -> None:
    """A new session (no fixation: nothing of the old one survives, a new CSRF token)."""
    session.clear()
    session.permanent = True
    session["since"] = time.time()
    session["csrf"] = secrets.token_urlsafe(32)


def log_in_owner() -> None:
    """Start an admin-token session (the caller checked the token)."""
    _fresh_session()
    session["admin"] = _admin_marker()


def log_in_account(account: Account) -> None:
    """Start a session of ``account`` (the caller checked its password), at its current generation."""
    _fresh_session()
    session["account"] = account.id
    session["generation"] = account.session_generation


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

