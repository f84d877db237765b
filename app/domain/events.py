"""Parsing of ``POST /api/v1/events`` bodies against the configured limits.

``{"visitor": "v-1", "visitor_token": "…", "events": [{"name": "purchase", "value": 49.9,
"event_id": "order-991", "ts": 1767225600}]}``. ``value`` defaults to 1; ``ts`` (unix
seconds) is for trusted server-side callers only, which the service checks (the parser
cannot know who is calling). Nothing here touches storage.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import ValidationError
from .metrics import EVENT_NAME_PATTERN
from .requests import MAX_EVENT_ID_CHARS, Limits, finite_number, identifier, visitor_id

#: most events in one request
MAX_EVENTS = 100
MAX_TOKEN_CHARS = 200


@dataclass(frozen=True)
class Event:
    name: str
    value: float = 1.0
    event_id: str | None = None
    ts: float | None = None  # None: the time the request arrived


@dataclass(frozen=True)
class EventsRequest:
    visitor: str
    visitor_token: str | None
    events: tuple[Event, ...]


def _fail(message: str, code: str = "invalid_request") -> None:
    raise ValidationError(message, code=code)


def _event(raw: Any, index: int, max_abs_value: float) -> Event:
    name = f"events[{index}]"
    if not isinstance(raw, dict):
        _fail(f"{name} must be an object with a name")
    unknown = set(raw) - {"name", "value", "event_id", "ts"}
    if unknown:
        _fail(f"{name} has unknown field(s): {', '.join(sorted(unknown))}")
    event_name = raw.get("name")
    if not isinstance(event_name, str) or EVENT_NAME_PATTERN.fullmatch(event_name) is None:
        _fail(f"{name}.name must be an event name matching {EVENT_NAME_PATTERN.pattern}")
    event_id = raw.get("event_id")
    if event_id is not None and (not isinstance(event_id, str) or not 0 < len(event_id) <= MAX_EVENT_ID_CHARS):
        _fail(f"{name}.event_id must be a string of 1 to {MAX_EVENT_ID_CHARS} characters")
    if event_id is not None:
        identifier(event_id, f"{name}.event_id")  # no control characters, identically on both backends
    value = finite_number(raw.get("value", 1), f"{name}.value", max_abs_value)
    ts = raw.get("ts")
    if ts is not None:
        ts = finite_number(ts, f"{name}.ts")
        if ts <= 0:
            _fail(f"{name}.ts must be unix seconds")
    return Event(name=event_name, value=value, event_id=event_id, ts=ts)


def parse_events(body: Any, limits: Limits, max_events: int = MAX_EVENTS) -> EventsRequest:
    if not isinstance(body, dict):
        _fail("the body must be a JSON object", "invalid_json")
    unknown = set(body) - {"visitor", "visitor_token", "events"}
    if unknown:
        _fail(f"unknown field(s): {', '.join(sorted(unknown))}")
    events = body.get("events")
    if not isinstance(events, list) or not events:
        _fail("events must be a non-empty list")
    if len(events) > max_events:
        _fail(f"at most {max_events} events per request")
    token = body.get("visitor_token")
    if token is not None and (not isinstance(token, str) or not 0 < len(token) <= MAX_TOKEN_CHARS):
        _fail("visitor_token must be the string returned by assign")
    return EventsRequest(visitor=visitor_id(body.get("visitor"), limits), visitor_token=token,
                         events=tuple(_event(raw, i, limits.max_abs_value) for i, raw in enumerate(events)))
