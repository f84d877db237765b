"""What every view needs from the request: the JSON body, the limits, the request's
metadata for enrichment, the per-process services, and the CORS origin check."""
from __future__ import annotations

import json
import time
from typing import Any

from flask import current_app, request

from ..domain.errors import Forbidden, ValidationError
from ..domain.experiments import Experiment
from ..domain.requests import Limits
from ..service.decisions import Services
from ..service.modes import RequestInfo


def json_body() -> Any:
    # sendBeacon posts text/plain, so the body is parsed as JSON whatever its content type.
    # Refused like malformed JSON: nesting deeper than the parser's recursion limit and lone
    # surrogates ("\ud800": no UTF-8 form, storage cannot encode them). NaN and Infinity parse,
    # and the field validators refuse them by name.
    data = request.get_data()
    try:
        body = json.loads(data)
        if b"\\u" in data or not data.isascii():  # the only ways a lone surrogate gets in: an
            # escape, or raw in a UTF-16/32 body (json decodes those with surrogatepass)
            json.dumps(body, ensure_ascii=False).encode()
    except (ValueError, RecursionError):
        raise ValidationError("the body must be valid JSON", code="invalid_json") from None
    return body


def limits() -> Limits:
    return current_app.extensions["lever.limits"]


def services() -> Services:
    return current_app.extensions["lever.services"]


def request_info() -> RequestInfo:
    return RequestInfo(now=time.time(), user_agent=request.headers.get("User-Agent", "")[:512],
                       origin=request.headers.get("Origin"))


def check_origin(experiment: Experiment) -> None:
    """A page on an origin outside the experiment's allow-list gets a 403."""
    origin = request.headers.get("Origin")
    if origin and experiment.allowed_origins and origin.rstrip("/") not in experiment.allowed_origins:
        raise Forbidden(f"origin {origin} is not allowed for experiment {experiment.key}", code="origin_not_allowed")
