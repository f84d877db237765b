"""What every view needs from the request: the JSON body, the limits, the per-process
services, and the CORS origin check."""
from __future__ import annotations

import json
from typing import Any

from flask import current_app, request

from ..domain.errors import Forbidden, ValidationError
from ..domain.experiments import Experiment
from ..domain.requests import Limits
from ..service.decisions import Services


def json_body() -> Any:
    return parse_json(request.get_data())


def parse_json(data: bytes) -> Any:
    """A request body as JSON, whatever its content type, or a 400 ``invalid_json``."""
    # sendBeacon posts text/plain, so the body is parsed as JSON whatever its content type.
    # Refused like malformed JSON: nesting deeper than the parser's recursion limit and lone
    # surrogates ("\ud800": no UTF-8 form, storage cannot encode them). NaN and Infinity parse,
    # and the field validators refuse them by name.
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


def origin_allowed(origin: str | None, experiment: Experiment) -> None:
    """403 ``origin_not_allowed`` unless the page's ``Origin`` (None: not a browser) is on the allow-list."""
    if origin and experiment.allowed_origins and origin.rstrip("/") not in experiment.allowed_origins:
        raise Forbidden(f"origin {origin} is not allowed for experiment {experiment.key}", code="origin_not_allowed")
