"""Admin authentication: a bearer token compared in constant time."""
from __future__ import annotations

import functools
import hmac
from typing import Callable, TypeVar

from flask import current_app, request

from ..domain.errors import Unauthorized

F = TypeVar("F", bound=Callable)


def is_admin_token(candidate: str | None) -> bool:
    expected = current_app.config["LEVER_ADMIN_TOKEN"]
    return bool(candidate) and bool(expected) and hmac.compare_digest(candidate.encode(), expected.encode())


def bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def admin_required(view: F) -> F:
    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        if not is_admin_token(bearer_token()):
            raise Unauthorized("admin endpoints need 'Authorization: Bearer <LEVER_ADMIN_TOKEN>'")
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]
