"""``POST /api/v1/events``: the site's events (public, CORS, rate-limited with assign and reward).

Pages send the ``visitor_token`` of their assign response; a server-side caller with a bearer
credential holding ``events.ingest`` (an ``ingest`` API key or above, or the admin token) sends
none and may backfill with ``ts`` (``app.service.events``).
"""
from __future__ import annotations

import time

from flask import Blueprint, Response, current_app, jsonify, request

from ..domain.events import parse_events
from ..service import events as event_flow
from ..service.permissions import EVENTS_INGEST
from .auth import bearer_token, check, public
from .http import json_body, limits, services
from .public_api import cors

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
    parsed = parse_events(json_body(), limits(), current_app.config["LEVER_MAX_EVENTS"])
    # a bearer credential makes it server-side (no visitor token, ``ts`` allowed): it needs events.ingest
    trusted = bearer_token() is not None
    if trusted:
        check(EVENTS_INGEST)
    result = event_flow.record_events(parsed, trusted, time.time(), services(), current_app.extensions[ROUTES],
                                      current_app.config["LEVER_RETENTION_DAYS"])
    return jsonify(result), 202
