"""The public calls (assign, reward, events) from request bytes to a status and a JSON body.

One implementation for both ways such a request is served: the Flask views
(``public_api``, ``events_api``) and the plain-WSGI fast path in front of Flask
(``fast_path``). Nothing here touches Flask's request or app globals: a call gets what it
reads from the request (``PublicRequest``) and the per-app setup (``PublicSetup``), and
returns ``(status, body)`` or raises a ``LeverError`` (or a storage error) that the caller
renders with the one error format. The CORS headers both add are declared here too.
"""
from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from ..domain.events import parse_events
from ..domain.requests import Limits, parse_assign, parse_reward
from ..service import decisions
from ..service import events as event_flow
from ..service.accounts import ApiKeyResolver
from ..service.decisions import Services
from ..service.events import EventRoutes
from ..service.modes import RequestInfo
from ..service.permissions import EVENTS_INGEST
from .auth import authorize, bearer_from_header, bearer_principal
from .http import origin_allowed, parse_json

#: app.extensions key of the app's ``PublicSetup``
SETUP = "lever.public_setup"

#: every public answer (and error) carries these after ``Access-Control-Allow-Origin``: any page
#: may call (admin endpoints never get CORS headers); preflights are cached for a day
CORS_HEADERS = (("Access-Control-Allow-Methods", "POST, OPTIONS"), ("Access-Control-Allow-Headers", "Content-Type"),
                ("Access-Control-Max-Age", "86400"))
VARY = ("Vary", "Origin")

#: the longest User-Agent kept for enrichment
MAX_USER_AGENT_CHARS = 512

Reply = tuple[int, dict[str, Any]]


def allow_origin(origin: str | None) -> str:
    """``Access-Control-Allow-Origin``: the calling page's origin, or ``*`` without one."""
    return origin or "*"


@dataclass(frozen=True)
class PublicSetup:
    """What the public calls need from the app, built once per app (``app.web.factory``). ``config``
    is the app's own: settings are read at each call, as a Flask view reads them."""

    services: Services
    limits: Limits
    routes: EventRoutes
    key_resolver: ApiKeyResolver
    config: Mapping[str, Any]


@dataclass(frozen=True)
class PublicRequest:
    """What a public call reads from its request: the raw body and three headers ('' when absent,
    ``origin`` None when absent)."""

    body: bytes
    origin: str | None
    user_agent: str
    authorization: str


def _info(request: PublicRequest) -> RequestInfo:
    return RequestInfo(now=time.time(), user_agent=request.user_agent[:MAX_USER_AGENT_CHARS], origin=request.origin)


def _ingest_caller(setup: PublicSetup, token: str | None) -> None:
    """The bearer credential must hold ``events.ingest`` (401 none or unknown, 403 a smaller role)."""
    principal = bearer_principal(token, setup.config["LEVER_ADMIN_TOKEN"], setup.key_resolver,
                                 setup.services.storage, time.time())
    authorize(principal, EVENTS_INGEST, token)


def assign(setup: PublicSetup, request: PublicRequest) -> Reply:
    parsed = parse_assign(parse_json(request.body), setup.limits)
    results = decisions.assign(parsed, _info(request), setup.services,
                               functools.partial(origin_allowed, request.origin))
    if parsed.batched:
        return 200, {"visitor": parsed.visitor, "visitor_token": results[0]["visitor_token"], "assignments": results}
    return 200, results[0]


def reward(setup: PublicSetup, request: PublicRequest) -> Reply:
    """By the signed assignment token (anyone), or by experiment and visitor id (``events.ingest``)."""
    parsed = parse_reward(parse_json(request.body), setup.limits)
    if parsed.token is None:
        _ingest_caller(setup, bearer_from_header(request.authorization))
    return 202, decisions.reward(parsed, _info(request), setup.services,
                                 functools.partial(origin_allowed, request.origin))


def events(setup: PublicSetup, request: PublicRequest) -> Reply:
    parsed = parse_events(parse_json(request.body), setup.limits, setup.config["LEVER_MAX_EVENTS"])
    # a bearer credential makes it server-side (no visitor token, ``ts`` allowed): it needs events.ingest
    token = bearer_from_header(request.authorization)
    trusted = token is not None
    if trusted:
        _ingest_caller(setup, token)
    result = event_flow.record_events(parsed, trusted, time.time(), setup.services, setup.routes,
                                      setup.config["LEVER_RETENTION_DAYS"])
    return 202, result


PublicCall = Callable[[PublicSetup, PublicRequest], Reply]

#: Flask endpoint → the call behind it (the fast path serves the same routes with the same calls)
CALLS: dict[str, PublicCall] = {"public.assign": assign, "public.reward": reward, "events.events": events}
