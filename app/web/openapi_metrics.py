"""The metrics part of the OpenAPI document: the catalogue, events and per-metric statistics."""
from __future__ import annotations

from typing import Any

from ..domain.events import MAX_TOKEN_CHARS
from ..domain.metrics import (
    AGGREGATES,
    EVENT_NAME_PATTERN,
    GUARDRAIL_ACTIONS,
    MAX_CAP,
    MAX_GUARDRAILS,
    MAX_SECONDARY,
    MAX_WINDOW_S,
    METRIC_KEY_PATTERN,
    METRIC_TYPES,
    REWARD_METRIC,
)
from .openapi_schema import nullable, obj, ref

MAX_NAME_CHARS = 200  # app.domain.metrics: name


def metric_schemas(key: dict[str, Any], number_or_null: dict[str, Any], p_value: dict[str, Any],
                   interval: dict[str, Any], reason: dict[str, Any], visitor: dict[str, Any],
                   max_events: int, max_abs: float) -> dict[str, Any]:
    """Schemas of the metric catalogue, events and the per-metric statistics (``app.domain.metrics``,
    ``app.domain.events``, ``stats.metric_analysis``)."""
    metric_key = {"type": "string", "pattern": METRIC_KEY_PATTERN.pattern}
    event_name = {"type": "string", "pattern": EVENT_NAME_PATTERN.pattern}
    part = obj({"event": event_name, "aggregate": {"enum": list(AGGREGATES), "default": "sum"}}, ("event",))
    window = {"type": "integer", "minimum": 1, "maximum": MAX_WINDOW_S}
    seconds = {"type": "integer", "minimum": 0, "maximum": MAX_WINDOW_S}
    tunable = {"name": {"type": "string", "minLength": 1, "maxLength": MAX_NAME_CHARS}, "window_s": window,
               "delay_s": seconds, "cap": nullable({"type": "number", "exclusiveMinimum": 0, "maximum": MAX_CAP}),
               "higher_is_better": {"type": "boolean", "default": True}, "cuped_window_s": seconds}
    guardrail = obj({"status": {"enum": ["ok", "failing", "not_enough_data"]}, "always_valid_p_value": p_value,
                      "bound": number_or_null, "threshold": number_or_null, "action": {"enum": list(GUARDRAIL_ACTIONS)},
                      "reason": reason, "method": {"enum": [None, "aipw_stabilised", "ips_deployed_policy"],
                                                   "description": "null: the randomised slice's test; else every "
                                                                  "visitor of a bandit"}})
    adaptive = nullable(obj({
        "absolute": number_or_null, "se": number_or_null, "ci": interval, "relative": number_or_null,
        "ci_relative": interval, "relative_scale": {"enum": [None, "log", "linear"]}, "p_value": p_value,
        "always_valid_p_value": p_value, "ci_always_valid": interval,
        "decision": {"enum": ["better", "worse", "inconclusive"]}, "treatment_value": number_or_null,
        "control_value": number_or_null, "decisions": {"type": "integer", "minimum": 0},
        "method": {"enum": ["aipw_stabilised", "ips_deployed_policy"]}, "reason": reason},
        description="Bandit modes: every exposed visitor (stats.metric_adaptive); reason "
                    "ratio_adaptive_not_supported for ratio metrics."))
    uplift = nullable(obj({
        "absolute": number_or_null, "relative": number_or_null, "ci_relative": interval, "p_value": p_value,
        "p_value_adjusted": p_value, "always_valid_p_value": p_value, "ci_always_valid": interval,
        "decision": {"enum": ["better", "worse", "inconclusive"]}, "relative_scale": {"enum": [None, "log", "linear"]},
        "test": {"type": "string"}, "reason": reason, "adaptive": adaptive,
        "decision_rule": {"enum": ["anytime_valid", "adaptive_anytime_valid"]}}, closed=False))
    cuped = nullable(obj({"absolute": number_or_null, "ci_absolute": interval, "p_value": p_value,
                            "variance_reduction": number_or_null}))
    return {
        "MetricDefinition": {**obj({"key": {**metric_key, "not": {"const": REWARD_METRIC}},
                                     "type": {"enum": list(METRIC_TYPES)}, "event": event_name,
                                     "numerator": part, "denominator": part, **tunable}, ("key", "type")),
                             "description": "event for conversion, count and sum; numerator and denominator for "
                                            "ratio. cap winsorises each visitor's total (not for conversion)."},
        "MetricUpdate": {**obj(tunable, ()), "minProperties": 1},
        "Metric": obj({"key": metric_key, "type": {"enum": list(METRIC_TYPES)}, "event": event_name,
                        "numerator": part, "denominator": part, **tunable, "created_at": {"type": "number"},
                        "updated_at": {"type": "number"}},
                       ("key", "name", "type", "window_s", "delay_s", "cap", "higher_is_better", "cuped_window_s")),
        "ExperimentMetrics": obj({
            "primary": metric_key,
            "secondary": {"type": "array", "maxItems": MAX_SECONDARY, "items": metric_key},
            "guardrails": {"type": "array", "maxItems": MAX_GUARDRAILS, "items": {"anyOf": [metric_key, obj({
                "metric": metric_key, "max_regression": {"type": "number", "minimum": 0, "maximum": 10, "default": 0},
                "action": {"enum": list(GUARDRAIL_ACTIONS), "default": "alert"}}, ("metric",))]}},
        }, ("primary",), description="Catalogue keys; a metric appears once. Bandit and contextual modes learn "
                                     "from the primary metric (not a ratio)."),
        "EventsRequest": obj({
            "visitor": visitor,
            "visitor_token": nullable({"type": "string", "minLength": 1, "maxLength": MAX_TOKEN_CHARS,
                                        "description": "From assign; required without the admin token."}),
            "events": {"type": "array", "minItems": 1, "maxItems": max_events, "items": obj({
                "name": event_name, "value": {"type": "number", "default": 1, "minimum": -max_abs, "maximum": max_abs},
                "event_id": ref("EventId"),
                "ts": nullable({"type": "number", "exclusiveMinimum": 0,
                                 "description": "Unix seconds; admin token only, not in the future, within "
                                                "retention. Null or absent: the arrival time."}),
            }, ("name",))},
        }, ("visitor", "events")),
        "EventsResult": obj({"accepted": {"type": "integer", "minimum": 0},
                              "duplicates": {"type": "integer", "minimum": 0}}),
        "MetricResult": obj({
            "key": {"type": "string"}, "role": {"enum": ["primary", "secondary", "guardrail"]},
            "type": {"enum": list(METRIC_TYPES)}, "reason": reason,
            "variants": {"type": "array", "items": obj({
                "key": key, "visitors": {"type": "integer", "minimum": 0}, "value": number_or_null, "ci": interval,
                "uplift": uplift, "cuped": cuped, "guardrail": nullable(guardrail), "reason": reason,
                "cuped_reason": reason})},
        }, description="stats.metric_analysis.MetricResult.to_dict()"),
        "PersonalisationLift": obj({"metric": {"type": "string"},
                                    "role": {"enum": ["primary", "secondary", "guardrail"]},
                                    "vs_holdout": adaptive, "vs_control_holdout": adaptive},
                                   description="The deployed policy against uniform random (the holdout) and "
                                               "against always-control, every visitor (bandit modes)."),
        "GuardrailAction": obj({"metric": {"type": "string"}, "variant": {"type": "string"},
                                 "action": {"enum": list(GUARDRAIL_ACTIONS)}, "at": {"type": "number"},
                                 "evidence": {"type": "object"}},
                                description="variant `policy`: personalisation against the holdout."),
    }
