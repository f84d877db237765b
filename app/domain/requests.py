"""Parsing of public request bodies (assign, reward) against the configured limits.

Each function takes the decoded JSON and returns a frozen request record or raises
``ValidationError`` with a message naming the field. Nothing here touches storage.
Every number is bounded (``finite_number``) and every identifier and stored string is
free of control characters (``identifier``, ``visitor_id``): see ``app.domain.bounds``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from .bounds import DEFAULT_MAX_ABS_VALUE, MAX_ABS_VALUE_CEILING, bounded, identifier
from .errors import ValidationError
from .experiments import KEY_PATTERN

__all__ = [
    "DEFAULT_MAX_ABS_VALUE", "MAX_ABS_VALUE_CEILING", "MAX_CONTEXT_KEY_CHARS", "MAX_EVENT_ID_CHARS", "AssignRequest",
    "Limits", "RewardRequest", "context_object", "experiment_key", "finite_number", "identifier", "parse_assign",
    "parse_reward", "visitor_id",
]

MAX_CONTEXT_KEY_CHARS = 64
MAX_EVENT_ID_CHARS = 128


@dataclass(frozen=True)
class Limits:
    visitor_chars: int
    context_keys: int
    string_chars: int
    batch: int
    #: bound on |number| of every value and context number (LEVER_MAX_ABS_VALUE)
    max_abs_value: float = DEFAULT_MAX_ABS_VALUE

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "Limits":
        return cls(config["LEVER_MAX_VISITOR_CHARS"], config["LEVER_MAX_CONTEXT_KEYS"],
                   config["LEVER_MAX_STRING_CHARS"], config["LEVER_MAX_BATCH"],
                   config.get("LEVER_MAX_ABS_VALUE", DEFAULT_MAX_ABS_VALUE))


@dataclass(frozen=True)
class AssignRequest:
    experiments: tuple[str, ...]
    visitor: str
    context: Mapping[str, Any]
    batched: bool


@dataclass(frozen=True)
class RewardRequest:
    value: float
    event_id: str | None
    token: str | None = None
    experiment: str | None = None
    visitor: str | None = None


def _fail(message: str, code: str = "invalid_request") -> None:
    raise ValidationError(message, code=code)


def _object(body: Any) -> dict:
    if not isinstance(body, dict):
        _fail("the body must be a JSON object", "invalid_json")
    return body


def _only(body: dict, allowed: set[str]) -> None:
    unknown = set(body) - allowed
    if unknown:
        _fail(f"unknown field(s): {', '.join(sorted(unknown))}")


def finite_number(value: Any, name: str, bound: float = MAX_ABS_VALUE_CEILING) -> float:
    """A number with |number| <= ``bound`` (pass ``Limits.max_abs_value``; the default is the
    ceiling every bound stays under, so no caller can let an overflowing value through)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        _fail(f"{name} must be a number")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        _fail(f"{name} must be a finite number")
    return bounded(number, bound, name)


def experiment_key(value: Any, name: str = "experiment") -> str:
    if not isinstance(value, str) or not KEY_PATTERN.fullmatch(value):
        _fail(f"{name} must be an experiment key matching {KEY_PATTERN.pattern}")
    return value


def visitor_id(value: Any, limits: Limits) -> str:
    if not isinstance(value, str) or not value.strip():
        _fail("visitor must be a non-empty string")
    if len(value) > limits.visitor_chars:
        _fail(f"visitor is longer than {limits.visitor_chars} characters")
    return identifier(value, "visitor")


def context_object(value: Any, limits: Limits) -> dict[str, Any]:
    """A flat object of strings, finite numbers, booleans and nulls."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        _fail("context must be an object")
    if len(value) > limits.context_keys:
        _fail(f"context has more than {limits.context_keys} keys")
    clean: dict[str, Any] = {}
    for key, item in value.items():
        if not key or len(key) > MAX_CONTEXT_KEY_CHARS:
            _fail(f"context keys must have 1 to {MAX_CONTEXT_KEY_CHARS} characters")
        identifier(key, "context key")
        if isinstance(item, str):
            if len(item) > limits.string_chars:
                _fail(f"context.{key} is longer than {limits.string_chars} characters")
            identifier(item, f"context.{key}")
        elif isinstance(item, (int, float)) and not isinstance(item, bool):
            finite_number(item, f"context.{key}", limits.max_abs_value)  # checked, kept as sent (ints stay ints)
        elif item is not None and not isinstance(item, bool):
            _fail(f"context.{key} must be a string, number, boolean or null")
        clean[key] = item
    return clean


def parse_assign(body: Any, limits: Limits) -> AssignRequest:
    body = _object(body)
    _only(body, {"experiment", "experiments", "visitor", "context"})
    if ("experiment" in body) == ("experiments" in body):
        _fail("give either experiment or experiments")
    if "experiments" in body:
        keys = body["experiments"]
        if not isinstance(keys, list) or not keys:
            _fail("experiments must be a non-empty list of experiment keys")
        if len(keys) > limits.batch:
            _fail(f"at most {limits.batch} experiments per request")
        experiments = tuple(experiment_key(k, "experiments[]") for k in keys)
        if len(set(experiments)) != len(experiments):
            _fail("experiments must not repeat a key")
    else:
        experiments = (experiment_key(body["experiment"]),)
    return AssignRequest(
        experiments=experiments,
        visitor=visitor_id(body.get("visitor"), limits),
        context=context_object(body.get("context"), limits),
        batched="experiments" in body,
    )


def parse_reward(body: Any, limits: Limits) -> RewardRequest:
    body = _object(body)
    _only(body, {"assignment", "experiment", "visitor", "value", "event_id"})
    value = finite_number(body.get("value", 1), "value", limits.max_abs_value)
    event_id = body.get("event_id")
    if event_id is not None and (not isinstance(event_id, str) or not 0 < len(event_id) <= MAX_EVENT_ID_CHARS):
        _fail(f"event_id must be a string of 1 to {MAX_EVENT_ID_CHARS} characters")
    if event_id is not None:
        identifier(event_id, "event_id")
    if "assignment" in body:
        if "experiment" in body or "visitor" in body:
            _fail("give either assignment, or experiment and visitor")
        if not isinstance(body["assignment"], str) or not body["assignment"]:
            _fail("assignment must be the token string returned by assign")
        return RewardRequest(value=value, event_id=event_id, token=body["assignment"])
    if "experiment" not in body or "visitor" not in body:
        _fail("give assignment, or experiment and visitor")
    return RewardRequest(value=value, event_id=event_id, experiment=experiment_key(body["experiment"]),
                         visitor=visitor_id(body["visitor"], limits))
