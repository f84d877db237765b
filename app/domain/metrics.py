"""Metric definitions (the catalogue) and an experiment's use of them.

A metric is defined once (``POST /api/v1/metrics``) and used by many experiments. It is
measured per *exposed visitor*: a visitor's value counts the matching events whose time
``t`` satisfies ``delay_s <= t - first exposure <= delay_s + window_s``.

* ``conversion``: 1 when the visitor had at least one matching event, else 0;
* ``count``:      the number of matching events;
* ``sum``:        the sum of the matching events' values (0 when none);
* ``ratio``:      Σ numerator / Σ denominator over visitors, each part an event's
                  ``sum`` of values or ``count`` (AOV = purchase sum / purchase count).

``cap`` winsorises each visitor's total (count and sum; for ratio each part);
``cuped_window_s`` is the pre-period before first exposure whose value of the same
metric CUPED uses as covariate (0: no pre-period, CUPED reports no_pre_period_data).

``parse_metric`` and ``parse_experiment_metrics`` check the shapes and raise
``ValidationError`` naming the field; whether an experiment's keys exist in the
catalogue is the service's check (``app.service.metrics``).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import Any, Mapping

from .errors import ValidationError

METRIC_TYPES = ("conversion", "count", "sum", "ratio")
AGGREGATES = ("sum", "count")
GUARDRAIL_ACTIONS = ("alert", "stop_variant")
METRIC_KEY_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
#: event names the site sends: letters, digits and ._:- (e.g. "purchase", "page_view", "cart:add")
EVENT_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
#: the implicit primary metric of an experiment without ``metrics``: fed by /reward
REWARD_METRIC = "reward"
MAX_WINDOW_S = 365 * 86400
DEFAULT_WINDOW_S = 7 * 86400
DEFAULT_CUPED_WINDOW_S = 14 * 86400
MAX_CAP = 1e12
MAX_SECONDARY = 20
MAX_GUARDRAILS = 20
MAX_NAME_CHARS = 200


@dataclass(frozen=True)
class RatioPart:
    event: str
    aggregate: str  # "sum" | "count"

    def to_dict(self) -> dict[str, str]:
        return {"event": self.event, "aggregate": self.aggregate}


@dataclass(frozen=True)
class MetricDefinition:
    key: str
    name: str
    type: str
    event: str | None = None  # every type but ratio
    numerator: RatioPart | None = None  # ratio only
    denominator: RatioPart | None = None  # ratio only
    window_s: int = DEFAULT_WINDOW_S
    delay_s: int = 0
    cap: float | None = None
    higher_is_better: bool = True
    cuped_window_s: int = DEFAULT_CUPED_WINDOW_S
    created_at: float = 0.0
    updated_at: float = 0.0

    @property
    def events(self) -> tuple[str, ...]:
        """The event names this metric reads."""
        if self.type == "ratio":
            assert self.numerator is not None and self.denominator is not None
            return tuple(dict.fromkeys((self.numerator.event, self.denominator.event)))
        assert self.event is not None
        return (self.event,)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"key": self.key, "name": self.name, "type": self.type}
        if self.type == "ratio":
            assert self.numerator is not None and self.denominator is not None
            data["numerator"], data["denominator"] = self.numerator.to_dict(), self.denominator.to_dict()
        else:
            data["event"] = self.event
        data.update(window_s=self.window_s, delay_s=self.delay_s, cap=self.cap,
                    higher_is_better=self.higher_is_better, cuped_window_s=self.cuped_window_s,
                    created_at=self.created_at, updated_at=self.updated_at)
        return data


@dataclass(frozen=True)
class Guardrail:
    metric: str
    max_regression: float = 0.0  # relative: 0.02 tolerates a 2% change in the bad direction
    action: str = "alert"  # "alert" | "stop_variant"

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "max_regression": self.max_regression, "action": self.action}


@dataclass(frozen=True)
class ExperimentMetrics:
    primary: str
    secondary: tuple[str, ...] = ()
    guardrails: tuple[Guardrail, ...] = ()

    @property
    def keys(self) -> tuple[str, ...]:
        return (self.primary, *self.secondary, *(g.metric for g in self.guardrails))

    def to_dict(self) -> dict[str, Any]:
        return {"primary": self.primary, "secondary": list(self.secondary),
                "guardrails": [g.to_dict() for g in self.guardrails]}


# -- parsing ------------------------------------------------------------------------------

def _fail(message: str) -> None:
    raise ValidationError(message, code="invalid_metric")


def _integer(value: Any, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        _fail(f"{name} must be an integer from {low} to {high}")
    return int(value)


def _event_name(value: Any, name: str) -> str:
    if not isinstance(value, str) or EVENT_NAME_PATTERN.fullmatch(value) is None:
        _fail(f"{name} must be an event name matching {EVENT_NAME_PATTERN.pattern}")
    return value


def _ratio_part(value: Any, name: str) -> RatioPart:
    if not isinstance(value, dict) or set(value) - {"event", "aggregate"}:
        _fail(f'{name} must be {{"event": name, "aggregate": "sum" | "count"}}')
    aggregate = value.get("aggregate", "sum")
    if aggregate not in AGGREGATES:
        _fail(f"{name}.aggregate must be one of {', '.join(AGGREGATES)}")
    return RatioPart(_event_name(value.get("event"), f"{name}.event"), aggregate)


def _cap(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not 0 < value <= MAX_CAP:
        _fail(f"cap must be a number above 0 and at most {MAX_CAP:g}, or null")
    return float(value)


_TUNABLE = {"name", "window_s", "delay_s", "cap", "higher_is_better", "cuped_window_s"}
_FIELDS = _TUNABLE | {"key", "type", "event", "numerator", "denominator"}


def _tunable(body: Mapping[str, Any], base: MetricDefinition) -> MetricDefinition:
    """The fields PATCH may change, over ``base``."""
    name = body.get("name", base.name)
    if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME_CHARS:
        _fail(f"name must be a string of 1 to {MAX_NAME_CHARS} characters")
    higher = body.get("higher_is_better", base.higher_is_better)
    if not isinstance(higher, bool):
        _fail("higher_is_better must be true or false")
    return replace(
        base, name=name, higher_is_better=higher,
        window_s=_integer(body.get("window_s", base.window_s), "window_s", 1, MAX_WINDOW_S),
        delay_s=_integer(body.get("delay_s", base.delay_s), "delay_s", 0, MAX_WINDOW_S),
        cap=_cap(body.get("cap", base.cap)),
        cuped_window_s=_integer(body.get("cuped_window_s", base.cuped_window_s), "cuped_window_s", 0, MAX_WINDOW_S),
    )


def parse_metric(body: Any) -> MetricDefinition:
    """A new catalogue entry (the body of POST /api/v1/metrics)."""
    if not isinstance(body, dict):
        _fail("the body must be a JSON object")
    unknown = set(body) - _FIELDS
    if unknown:
        _fail(f"unknown field(s): {', '.join(sorted(unknown))}")
    key = body.get("key")
    if not isinstance(key, str) or METRIC_KEY_PATTERN.fullmatch(key) is None:
        _fail(f"key must match {METRIC_KEY_PATTERN.pattern}")
    if key == REWARD_METRIC:
        _fail(f"key {REWARD_METRIC!r} is the implicit metric of experiments without metrics; choose another")
    kind = body.get("type")
    if kind not in METRIC_TYPES:
        _fail(f"type must be one of {', '.join(METRIC_TYPES)}")
    if kind == "ratio":
        if "event" in body:
            _fail("a ratio metric takes numerator and denominator, not event")
        base = MetricDefinition(key=key, name=key, type=kind,
                                numerator=_ratio_part(body.get("numerator"), "numerator"),
                                denominator=_ratio_part(body.get("denominator"), "denominator"))
    else:
        if "numerator" in body or "denominator" in body:
            _fail("numerator and denominator apply only to type ratio")
        base = MetricDefinition(key=key, name=key, type=kind, event=_event_name(body.get("event"), "event"))
    if kind == "conversion" and body.get("cap") is not None:
        _fail("cap does not apply to a conversion metric (its value is 0 or 1)")
    return _tunable(body, base)


def patch_metric(existing: MetricDefinition, body: Any) -> MetricDefinition:
    """PATCH /api/v1/metrics/<key>: what a metric measures (key, type, events) never changes."""
    if not isinstance(body, dict) or not body:
        _fail("PATCH takes a JSON object with the fields to change")
    fixed = set(body) & (_FIELDS - _TUNABLE)
    if fixed:
        _fail(f"{', '.join(sorted(fixed))} cannot change (define a new metric); PATCH may change "
              f"{', '.join(sorted(_TUNABLE))}")
    unknown = set(body) - _TUNABLE
    if unknown:
        _fail(f"unknown field(s): {', '.join(sorted(unknown))}")
    if existing.type == "conversion" and body.get("cap") is not None:
        _fail("cap does not apply to a conversion metric (its value is 0 or 1)")
    return _tunable(body, existing)


def metric_from_dict(data: Mapping[str, Any]) -> MetricDefinition:
    """A stored definition (``to_dict`` output) back as a record."""
    parts = {name: RatioPart(**data[name]) for name in ("numerator", "denominator") if data.get(name)}
    return MetricDefinition(
        key=data["key"], name=data["name"], type=data["type"], event=data.get("event"),
        window_s=data["window_s"], delay_s=data["delay_s"], cap=data.get("cap"),
        higher_is_better=data["higher_is_better"], cuped_window_s=data["cuped_window_s"],
        created_at=data.get("created_at", 0.0), updated_at=data.get("updated_at", 0.0), **parts,
    )


def _metric_key(value: Any, name: str) -> str:
    if not isinstance(value, str) or METRIC_KEY_PATTERN.fullmatch(value) is None:
        raise ValidationError(f"{name} must be a metric key matching {METRIC_KEY_PATTERN.pattern}")
    return value


def _guardrail(value: Any, name: str) -> Guardrail:
    if isinstance(value, str):
        value = {"metric": value}
    if not isinstance(value, dict) or set(value) - {"metric", "max_regression", "action"}:
        raise ValidationError(f'{name} must be {{"metric", "max_regression", "action"}}')
    max_regression = value.get("max_regression", 0.0)
    if isinstance(max_regression, bool) or not isinstance(max_regression, (int, float)) \
            or not math.isfinite(max_regression) or not 0 <= max_regression <= 10:
        raise ValidationError(f"{name}.max_regression must be a number from 0 to 10 (relative: 0.02 = 2%)")
    action = value.get("action", "alert")
    if action not in GUARDRAIL_ACTIONS:
        raise ValidationError(f"{name}.action must be one of {', '.join(GUARDRAIL_ACTIONS)}")
    return Guardrail(_metric_key(value.get("metric"), f"{name}.metric"), float(max_regression), action)


def parse_experiment_metrics(raw: Any, name: str = "metrics") -> ExperimentMetrics:
    """The ``metrics`` field of an experiment definition (shapes only; keys are the service's check)."""
    if not isinstance(raw, dict) or set(raw) - {"primary", "secondary", "guardrails"}:
        raise ValidationError(f'{name} must be {{"primary": key, "secondary": [keys], "guardrails": [...]}}')
    secondary = raw.get("secondary", [])
    if not isinstance(secondary, list) or len(secondary) > MAX_SECONDARY:
        raise ValidationError(f"{name}.secondary must be a list of at most {MAX_SECONDARY} metric keys")
    guardrails = raw.get("guardrails", [])
    if not isinstance(guardrails, list) or len(guardrails) > MAX_GUARDRAILS:
        raise ValidationError(f"{name}.guardrails must be a list of at most {MAX_GUARDRAILS} guardrails")
    metrics = ExperimentMetrics(
        primary=_metric_key(raw.get("primary"), f"{name}.primary"),
        secondary=tuple(_metric_key(k, f"{name}.secondary[{i}]") for i, k in enumerate(secondary)),
        guardrails=tuple(_guardrail(g, f"{name}.guardrails[{i}]") for i, g in enumerate(guardrails)),
    )
    if len(set(metrics.keys)) != len(metrics.keys):
        raise ValidationError(f"{name}: a metric may appear only once (primary, secondary or one guardrail)")
    return metrics


def experiment_metrics_from_dict(data: Mapping[str, Any] | None) -> ExperimentMetrics | None:
    if not data:
        return None
    return ExperimentMetrics(primary=data["primary"], secondary=tuple(data.get("secondary", ())),
                             guardrails=tuple(Guardrail(**g) for g in data.get("guardrails", ())))
