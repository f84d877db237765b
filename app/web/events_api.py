"""``POST /api/v1/events``: the site's events (public, CORS, rate-limited with assign and reward).

Pages send the ``visitor_token`` of their assign response; a server-side caller with a bearer
credential holding ``events.ingest`` (an ``ingest`` API key or above, or the admin token) sends
none and may backfill with ``ts`` (``app.service.events``). The work is ``public_calls.events``
(shared with the fast path).
"""
from __future__ import annotations

from flask import Blueprint, Response, request

from . import public_calls
from .auth import public
from .public_api import cors, serve

bp = Blueprint("events", __name__)
bp.after_request(cors)

ENDPOINTS = ("events.events",)
#: app.extensions key of the per-process ``events.EventRoutes``
ROUTES = "lever.event_routes"


@bp.route("/events", methods=["POST", "OPTIONS"])
@public
def events():
    if request.method == "OPTIONS":
        return Response(status=204)
    return serve(public_calls.events)
