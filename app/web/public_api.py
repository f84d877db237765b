"""The public endpoints pages call: assign and reward (CORS, rate-limited).

No credential, except for a reward addressed by experiment and visitor id rather than by
the signed assignment token: anyone who knew or guessed a visitor id could otherwise add
conversions to it, so that path needs an API key with ``events.ingest`` (role ingest or
above) or the admin token. The work is ``public_calls``' (shared with the fast path, which
serves these routes in front of Flask unless ``LEVER_FAST_PATH`` is off); a view renders it."""
from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request

from . import public_calls
from .public_calls import CORS_HEADERS, VARY, PublicCall, PublicRequest, allow_origin

bp = Blueprint("public", __name__)

ENDPOINTS = ("public.assign", "public.reward")


@bp.after_request
def cors(response: Response) -> Response:
    """Public endpoints may be called from any page (admin endpoints never get CORS headers)."""
    headers = response.headers
    headers["Access-Control-Allow-Origin"] = allow_origin(request.headers.get("Origin"))
    headers.extend(CORS_HEADERS)  # none of them is set before: append, no search
    headers[VARY[0]] = VARY[1]
    return response


def public_request() -> PublicRequest:
    """This request as the public calls read it (``request.get_data`` refuses an oversize body: 413)."""
    headers = request.headers
    return PublicRequest(body=request.get_data(), origin=headers.get("Origin"),
                         user_agent=headers.get("User-Agent", ""), authorization=headers.get("Authorization", ""))


def serve(call: PublicCall) -> tuple[Response, int]:
    status, body = call(current_app.extensions[public_calls.SETUP], public_request())
    return jsonify(body), status


@bp.route("/assign", methods=["POST", "OPTIONS"])
def assign():
    if request.method == "OPTIONS":
        return Response(status=204)
    return serve(public_calls.assign)


@bp.route("/reward", methods=["POST", "OPTIONS"])
def reward():
    if request.method == "OPTIONS":
        return Response(status=204)
    return serve(public_calls.reward)
