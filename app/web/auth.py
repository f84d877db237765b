"""Who is calling, and may they: one decorator for every admin route and page.

``@require("experiments.write")`` on a view declares the permission it needs (the role
table is ``app.service.permissions.ROLE_PERMISSIONS``) and checks it before the view runs:

* API paths (``/api/…``) authenticate with ``Authorization: Bearer <credential>``: the
  admin token (``LEVER_ADMIN_TOKEN``, the bootstrap owner, role admin) or an API key
  (``lever_sk_…``). No credential, or an unknown or revoked key: 401 JSON. A role without
  the permission: 403 JSON (``insufficient_role``).
* Pages authenticate with the session cookie (``session_auth``): none → a redirect to the
  login page; a role without the permission → a 403 HTML page.

The decorator records the permission on the view (``view.lever_permission``) so the tests
can check that every non-public route declares one. ``admin_required`` is
``require("admin")``. ``current_actor()`` names the caller for audit entries.
"""
from __future__ import annotations

import functools
import hmac
import time
from typing import Callable, TypeVar

from flask import Flask, current_app, has_request_context, redirect, request, url_for

from ..domain.errors import Forbidden, Unauthorized
from ..service.accounts import ApiKeyResolver
from ..service.audit import SYSTEM_ACTOR
from ..service.permissions import ADMIN, OWNER, PERMISSIONS, Principal, roles_with
from ..storage import AccountStore
from . import session_auth
from .db import get_storage

F = TypeVar("F", bound=Callable)

#: attribute a view carries: the permission it needs (None on views marked public)
PERMISSION_ATTRIBUTE = "lever_permission"
#: app.extensions key of the per-worker API key resolver (``app.service.accounts.ApiKeyResolver``)
KEY_RESOLVER = "lever.api_keys"
_PRINCIPAL = "lever.principal"


def matches_admin_token(candidate: str | None, expected: str) -> bool:
    return bool(candidate) and bool(expected) and hmac.compare_digest(candidate.encode(), expected.encode())


def is_admin_token(candidate: str | None) -> bool:
    return matches_admin_token(candidate, current_app.config["LEVER_ADMIN_TOKEN"])


def bearer_from_header(header: str) -> str | None:
    """The credential of an ``Authorization: Bearer <credential>`` header value, else None."""
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def bearer_token() -> str | None:
    return bearer_from_header(request.headers.get("Authorization", ""))


def _is_api_path() -> bool:
    return request.path.startswith("/api/")


def key_resolver() -> ApiKeyResolver:
    """This worker's API key resolver (created by ``init_auth``)."""
    return current_app.extensions[KEY_RESOLVER]


def init_auth(app: Flask) -> None:
    app.extensions[KEY_RESOLVER] = ApiKeyResolver()


def bearer_principal(token: str | None, admin_token: str, resolver: ApiKeyResolver, storage: AccountStore,
                     now: float) -> Principal | None:
    """Who a bearer credential is: the admin token (the owner), an active API key, or nobody."""
    if not token:
        return None
    if matches_admin_token(token, admin_token):
        return OWNER
    return resolver.principal(storage, token, now)


def _bearer_principal() -> Principal | None:
    return bearer_principal(bearer_token(), current_app.config["LEVER_ADMIN_TOKEN"], key_resolver(), get_storage(),
                            time.time())


def authenticate() -> Principal | None:
    """The caller of this request (bearer credential on API paths, session cookie on pages), or None."""
    # cached on the request itself (not ``g``: an app context can outlive its request, e.g. a streamed answer)
    environ = request.environ
    if _PRINCIPAL not in environ:
        environ[_PRINCIPAL] = _bearer_principal() if _is_api_path() else session_auth.current_principal()
    return environ[_PRINCIPAL]


def current_principal() -> Principal | None:
    return authenticate() if has_request_context() else None


def current_actor() -> str:
    """How the audit log names the caller: the account's email, ``key:<name>`` or ``admin-token``;
    ``system`` outside a request or for an anonymous one."""
    principal = current_principal()
    return principal.actor if principal is not None else SYSTEM_ACTOR


def _unauthorized(token: str | None) -> Unauthorized:
    if token:
        return Unauthorized("unknown or revoked credential: give an API key or LEVER_ADMIN_TOKEN")
    return Unauthorized("this endpoint needs 'Authorization: Bearer <API key or LEVER_ADMIN_TOKEN>'")


def check(permission: str) -> Principal:
    """Authenticate and authorise inside a view (401 without a valid credential, 403 without the role)."""
    return authorize(authenticate(), permission, bearer_token())


def authorize(principal: Principal | None, permission: str, token: str | None) -> Principal:
    """``principal`` (authenticated from ``token``, the bearer credential sent) may do ``permission``,
    else Unauthorized (nobody) or Forbidden (a role without it)."""
    if principal is None:
        raise _unauthorized(token)
    if not principal.may(permission):
        raise Forbidden(f"{permission} needs the role {' or '.join(roles_with(permission))}; "
                        f"this credential has the role {principal.role}", code="insufficient_role")
    return principal


def require(permission: str) -> Callable[[F], F]:
    """Decorator: the view needs ``permission`` (one of ``app.service.permissions.PERMISSIONS``)."""
    if permission not in PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}; declare it in app/service/permissions.py")

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapped(*args, **kwargs):
            if not _is_api_path() and authenticate() is None:
                target = request.full_path if request.query_string else request.path
                return redirect(url_for("report.login", next=target))
            check(permission)
            return view(*args, **kwargs)

        setattr(wrapped, PERMISSION_ATTRIBUTE, permission)
        return wrapped  # type: ignore[return-value]

    return decorate


def public(view: F) -> F:
    """Mark a view as deliberately open to anyone (the role-table test accepts it without a permission)."""
    setattr(view, PERMISSION_ATTRIBUTE, None)
    return view


#: the admin-only permission, for views written before roles existed
admin_required = require(ADMIN)
