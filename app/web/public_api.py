"""The public endpoints pages call: assign and reward (CORS, rate-limited).

No credential, except for a reward addressed by experiment and visitor id rather than by
the signed assignment token: anyone who knew or guessed a visitor id could otherwise add
conversions to it, so that path needs an API key with ``events.ingest`` (role ingest or
above) or the admin token."""
from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from ..domain.requests import parse_assign, parse_reward
from ..service import decisions
from ..service.permissions import EVENTS_INGEST
from .auth import check
from .http import check_origin, json_body, limits, request_info, services

bp = Blueprint("public", __name__)

ENDPOINTS = ("public.assign", "public.reward")

_CORS_HEADERS = (("Access-Control-Allow-Methods", "POST, OPTIONS"), ("Access-Control-Allow-Headers", "Content-Type"),
                 ("Access-Control-Max-Age", "86400"))


@bp.after_request
def cors(response: Response) -> Response:
    """Public endpoints may be called from any page (admin endpoints never get CORS headers)."""
    headers = response.headers
    headers["Access-Control-Allow-Origin"] = request.headers.get("Origin") or "*"
    headers.extend(_CORS_HEADERS)  # none of them is set before: append, no search
    headers["Vary"] = "Origin"
    return response


@bp.route("/assign", methods=["POST", "OPTIONS"])
def assign():
    if request.method == "OPTIONS":
        return Response(status=204)
    parsed = parse_assign(json_body(), limits())
    results = decisions.assign(parsed, request_info(), services(), check_origin)
    if parsed.batched:
        return jsonify({"visitor": parsed.visitor, "visitor_token": results[0]["visitor_token"],
                        "assignments": results})
    return jsonify(results[0])


@bp.route("/reward", methods=["POST", "OPTIONS"])
def reward():
    if request.method == "OPTIONS":
        return Response(status=204)
    parsed = parse_reward(json_body(), limits())
    if parsed.token is None:
        check(EVENTS_INGEST)
    return jsonify(decisions.reward(parsed, request_info(), services(), check_origin)), 202
