"""The experiment definition: parsing and validating what admins send.

``parse_experiment`` turns untrusted JSON into a frozen ``ExperimentSpec`` or raises
``ValidationError`` naming the field; the storage layer persists specs and hands back
``Experiment`` records (a spec plus id, status and timestamps).
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Mapping

from bandits import ContextEncoder, PolicyConfigError
from bandits.schema import normalise_schema

from .bounds import MAX_ABS_VALUE_CEILING, bounded, identifier, valid_bound
from .errors import ValidationError
from .metrics import ExperimentMetrics, parse_experiment_metrics

KEY_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
#: experiment keys the report's URLs take for themselves (/experiments/new is the create form)
RESERVED_KEYS = frozenset({"new"})
MODES = ("bandit", "ab", "contextual")
REWARD_TYPES = ("binary", "numeric")
STATUSES = ("running", "paused", "stopped")
MIN_VARIANTS, MAX_VARIANTS = 2, 50
MAX_HOLDOUT = 0.5
MAX_REWARD_WINDOW_S = 90 * 24 * 3600
DEFAULT_REWARD_WINDOW_S = 7 * 24 * 3600


@dataclass(frozen=True)
class Variant:
    key: str
    payload: Mapping[str, Any] = field(default_factory=dict)
    id: int | None = None


@dataclass(frozen=True)
class ExperimentSpec:
    key: str
    name: str
    mode: str
    reward: str
    variants: tuple[Variant, ...]
    control: str
    holdout: float = 0.1
    min_share: float = 0.01
    reward_window_s: int = DEFAULT_REWARD_WINDOW_S
    sticky: bool = True
    weights: tuple[float, ...] | None = None  # ab only, aligned with variants, sums to 1
    context: tuple[Mapping[str, Any], ...] = ()
    decay_half_life_s: float | None = None  # contextual only
    allowed_origins: tuple[str, ...] = ()  # CORS allow-list for public endpoints; empty = any origin
    #: ab only: total visitors planned before launch; the fixed-horizon test then decides at that size
    planned_visitors: int | None = None
    #: contextual only: pairs of context features whose combinations the policy learns
    crosses: tuple[tuple[str, str], ...] = ()
    #: contextual only: typical seconds from assignment to conversion (recent decisions are not yet failures)
    reward_delay_s: float | None = None
    metrics: ExperimentMetrics | None = None  # None: the implicit primary metric "reward" (fed by /reward)
    #: bound on |reward value| tighter than LEVER_MAX_ABS_VALUE (None: that setting alone)
    max_abs_value: float | None = None

    @property
    def variant_keys(self) -> tuple[str, ...]:
        return tuple(v.key for v in self.variants)

    def variant_index(self, key: str) -> int:
        return self.variant_keys.index(key)


@dataclass(frozen=True)
class Experiment(ExperimentSpec):
    id: int = 0
    status: str = "running"
    winner: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    #: variants a stop_variant guardrail took out of allocation (their returning visitors see the control)
    stopped_variants: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["variants"] = [{"key": v.key, "payload": dict(v.payload)} for v in self.variants]
        data["weights"] = dict(zip(self.variant_keys, self.weights)) if self.weights else None
        data["context"] = [dict(feature) for feature in self.context]
        data["allowed_origins"] = list(self.allowed_origins)
        data["crosses"] = [list(pair) for pair in self.crosses]
        data["metrics"] = self.metrics.to_dict() if self.metrics is not None else None
        data["stopped_variants"] = list(self.stopped_variants)
        data.pop("id")
        return data


# -- parsing ---------------------------------------------------------------------------

def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValidationError(message)


def _number(value: Any, name: str, low: float, high: float) -> float:
    _require(isinstance(value, (int, float)) and not isinstance(value, bool), f"{name} must be a number")
    _require(low <= value <= high and math.isfinite(value), f"{name} must be between {low} and {high}")
    return float(value)


def _string(value: Any, name: str, max_length: int = 200) -> str:
    _require(isinstance(value, str) and 0 < len(value) <= max_length, f"{name} must be a string of 1 to {max_length} characters")
    return identifier(value, name)


def _strings(value: Any) -> list[str]:
    """Every string in a JSON value, object keys included."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for key, item in value.items() for text in (key, *_strings(item))]
    if isinstance(value, list):
        return [text for item in value for text in _strings(item)]
    return []


def _plain_json(value: Any) -> bool:
    """Whether ``value`` can be sent back as standard JSON (no NaN or Infinity)."""
    try:
        json.dumps(value, allow_nan=False)
    except ValueError:
        return False
    return True


def _key(value: Any, name: str) -> str:
    _require(isinstance(value, str) and KEY_PATTERN.fullmatch(value) is not None,
             f"{name} must match {KEY_PATTERN.pattern}")
    return value


def _variants(raw: Any) -> tuple[Variant, ...]:
    _require(isinstance(raw, list), "variants must be a list")
    _require(MIN_VARIANTS <= len(raw) <= MAX_VARIANTS, f"an experiment needs {MIN_VARIANTS} to {MAX_VARIANTS} variants")
    variants = []
    for index, item in enumerate(raw):
        if isinstance(item, str):
            item = {"key": item}
        _require(isinstance(item, dict), f"variants[{index}] must be an object with a key")
        unknown = set(item) - {"key", "payload"}
        _require(not unknown, f"variants[{index}] has unknown field(s): {', '.join(sorted(unknown))}")
        payload = item.get("payload", {})
        _require(isinstance(payload, dict), f"variants[{index}].payload must be an object")
        _require(_plain_json(payload), f"variants[{index}].payload must not contain NaN or Infinity")
        variants.append(Variant(key=_key(item.get("key"), f"variants[{index}].key"), payload=payload))
    keys = [v.key for v in variants]
    _require(len(set(keys)) == len(keys), "variant keys must be unique")
    return tuple(variants)


def _weights(raw: Any, keys: tuple[str, ...]) -> tuple[float, ...]:
    if raw is None:
        return tuple(1.0 / len(keys) for _ in keys)
    if isinstance(raw, list):
        _require(len(raw) == len(keys), "weights must have one number per variant")
        raw = dict(zip(keys, raw))
    _require(isinstance(raw, dict), "weights must map variant keys to numbers")
    _require(set(raw) == set(keys), "weights must give a number for every variant and nothing else")
    values = [_number(raw[k], f"weights.{k}", 0.0, 1e9) for k in keys]
    total = sum(values)
    _require(total > 0, "weights must not all be zero")
    return tuple(v / total for v in values)


def _context(raw: Any, crosses: Any, mode: str) -> tuple[tuple[Mapping[str, Any], ...], tuple[tuple[str, str], ...]]:
    """The full feature definitions (the short form ``["device", "hour"]`` expanded) and the crosses."""
    if raw is None:
        raw = []
    _require(isinstance(raw, list), 'context must be a list of feature names or definitions, e.g. ["device", "hour"]')
    for text in _strings(raw):  # names and levels become segment labels, stored and reported
        identifier(text, "context")
    try:
        features = normalise_schema(raw)
    except PolicyConfigError as error:
        raise ValidationError(f"context: {error}") from None
    if mode == "contextual":
        _require(len(features) > 0, "a contextual experiment must declare at least one context feature")
    pairs: tuple[tuple[str, str], ...] = ()
    if crosses is not None:
        _require(mode == "contextual", "crosses apply only to mode contextual")
        _require(isinstance(crosses, list) and all(isinstance(c, list) and len(c) == 2
                                                   and all(isinstance(n, str) for n in c) for c in crosses),
                 'crosses must be a list of feature-name pairs, e.g. [["device", "hour"]]')
        pairs = tuple((c[0], c[1]) for c in crosses)
    if features:  # every mode: the report's segments are built from the declared features (the encoder owns the rules)
        try:
            ContextEncoder.from_schema(features, pairs)
        except PolicyConfigError as error:
            raise ValidationError(f"context: {error}") from None
    return tuple(features), pairs


_FIELDS = {
    "key", "name", "mode", "variants", "control", "holdout", "min_share", "reward", "reward_window_s",
    "sticky", "weights", "context", "decay", "allowed_origins", "planned_visitors", "crosses", "reward_delay_s",
    "metrics",
    "max_abs_value",
}
MAX_PLANNED_VISITORS = 10**9


def parse_experiment(body: Any) -> ExperimentSpec:
    """Validate an experiment definition (the body of POST /api/v1/experiments)."""
    _require(isinstance(body, dict), "the body must be a JSON object")
    unknown = set(body) - _FIELDS
    _require(not unknown, f"unknown field(s): {', '.join(sorted(unknown))}")
    key = _key(body.get("key"), "key")
    _require(key not in RESERVED_KEYS, f"key {key!r} is reserved by the report pages; choose another")
    name = _string(body.get("name", key), "name")
    mode = body.get("mode", "bandit")
    _require(mode in MODES, f"mode must be one of {', '.join(MODES)}")
    reward = body.get("reward", "binary")
    _require(reward in REWARD_TYPES, f"reward must be one of {', '.join(REWARD_TYPES)}")
    variants = _variants(body.get("variants"))
    keys = tuple(v.key for v in variants)
    control = body.get("control", keys[0])
    _require(control in keys, "control must be one of the variant keys")
    holdout = _number(body.get("holdout", 0.1), "holdout", 0.0, MAX_HOLDOUT)
    min_share = _number(body.get("min_share", 0.01), "min_share", 0.0, 1.0 / len(keys))
    window = body.get("reward_window_s", DEFAULT_REWARD_WINDOW_S)
    _require(isinstance(window, int) and not isinstance(window, bool) and 1 <= window <= MAX_REWARD_WINDOW_S,
             f"reward_window_s must be an integer from 1 to {MAX_REWARD_WINDOW_S}")
    sticky = body.get("sticky", True)
    _require(isinstance(sticky, bool), "sticky must be true or false")
    _require(mode == "ab" or body.get("weights") is None, "weights apply only to mode ab")
    weights = _weights(body.get("weights"), keys) if mode == "ab" else None
    decay = body.get("decay")
    half_life = None
    if decay is not None:
        _require(mode == "contextual", "decay applies only to mode contextual")
        _require(isinstance(decay, dict) and set(decay) == {"half_life_s"}, 'decay must be {"half_life_s": seconds}')
        half_life = _number(decay["half_life_s"], "decay.half_life_s", 60.0, 10 * 365 * 86400.0)
    origins = body.get("allowed_origins", [])
    _require(isinstance(origins, list) and all(isinstance(o, str) and len(o) <= 200 for o in origins),
             "allowed_origins must be a list of origins such as https://shop.example")
    for origin in origins:
        identifier(origin, "allowed_origins[]")
    max_abs_value = body.get("max_abs_value")
    _require(max_abs_value is None or valid_bound(max_abs_value),
             f"max_abs_value must be a number above 0 and at most {MAX_ABS_VALUE_CEILING:g}")
    _require(max_abs_value is None or reward == "numeric", "max_abs_value applies only to reward numeric")
    delay = body.get("reward_delay_s")
    if delay is not None:
        _require(mode == "contextual", "reward_delay_s applies only to mode contextual")
        delay = _number(delay, "reward_delay_s", 1.0, float(MAX_REWARD_WINDOW_S))
    context, crosses = _context(body.get("context"), body.get("crosses"), mode)
    planned = body.get("planned_visitors")
    if planned is not None:
        _require(mode == "ab", "planned_visitors applies only to mode ab (bandits decide on every visitor, "
                               "always-valid)")
        _require(isinstance(planned, int) and not isinstance(planned, bool)
                 and len(keys) * 2 <= planned <= MAX_PLANNED_VISITORS,
                 f"planned_visitors must be an integer from {len(keys) * 2} to {MAX_PLANNED_VISITORS}")
    return ExperimentSpec(
        key=key, name=name, mode=mode, reward=reward, variants=variants, control=control,
        holdout=holdout, min_share=min_share, reward_window_s=window, sticky=sticky, weights=weights,
        context=context, crosses=crosses, reward_delay_s=delay, decay_half_life_s=half_life,
        allowed_origins=tuple(o.rstrip("/") for o in origins), planned_visitors=planned,
        metrics=parse_experiment_metrics(body["metrics"]) if body.get("metrics") is not None else None,
        max_abs_value=None if max_abs_value is None else float(max_abs_value),
    )


def check_value(experiment: ExperimentSpec, value: float) -> float:
    """A reward value within the experiment's own ``max_abs_value`` (the request parser has
    already applied LEVER_MAX_ABS_VALUE, so the tighter of the two holds); else a 400."""
    if experiment.max_abs_value is not None:
        bounded(value, experiment.max_abs_value, "value")
    return value


def with_status(experiment: Experiment, status: str, winner: str | None) -> Experiment:
    return replace(experiment, status=status, winner=winner)


def value_bound(experiment: ExperimentSpec, global_bound: float) -> float:
    """The bound on |reward value| that holds for the experiment: the tighter of LEVER_MAX_ABS_VALUE
    (``global_bound``) and its own ``max_abs_value``."""
    return min(global_bound, experiment.max_abs_value) if experiment.max_abs_value is not None else global_bound
