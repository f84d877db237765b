"""The OpenAPI 3.1 document of the JSON API (``/api/v1/*`` and ``/healthz``), served at
``GET /api/v1/openapi.json``.

The document is plain Python data built once per app, when the blueprint is registered,
from the same constants the validators use (``app.domain.experiments``, ``app.domain.requests``,
``bandits.encoding``) and from the app's configured limits (``LEVER_MAX_*``), so each
limit is stated in one place. ``tests/test_openapi*.py`` check it is valid OpenAPI,
that it lists exactly the Flask routes under ``/api/v1`` and, with schemathesis, that
the running app answers as documented.
"""
from __future__ import annotations

from typing import Any, Mapping

from flask import Blueprint, current_app, jsonify

from bandits.encoding import (
    FEATURE_TYPES,
    MAX_BUCKETS,
    MAX_HARMONICS,
    MAX_FEATURES,
    MAX_LEVELS,
    MAX_NAME_LENGTH,
    MAX_PARTS,
)

from ..domain.experiments import (
    DEFAULT_REWARD_WINDOW_S,
    KEY_PATTERN,
    MAX_HOLDOUT,
    MAX_PLANNED_VISITORS,
    MAX_REWARD_WINDOW_S,
    MAX_VARIANTS,
    MIN_VARIANTS,
    MODES,
    RESERVED_KEYS,
    REWARD_TYPES,
    STATUSES,
)
from ..domain.metrics import (
    METRIC_KEY_PATTERN,
    REWARD_METRIC,
)
from ..domain.requests import (
    MAX_ABS_VALUE_CEILING,
    MAX_CONTEXT_KEY_CHARS,
    MAX_EVENT_ID_CHARS,
)
from ..service.permissions import (
    EVENTS_EXPORT,
    EXPERIMENTS_WRITE,
    METRICS_WRITE,
    REPORTS_READ,
    VISITORS_MANAGE,
)
from .openapi_metrics import metric_schemas
from .openapi_schema import error, errors, json, nullable, obj, ref
from .openapi_team import permission, team_document
from .openapi_webhooks import webhook_paths, webhook_schemas

OPENAPI_VERSION = "3.1.0"
API_VERSION = "1"
EXTENSION = "lever.openapi"

#: the validators' own bounds that are not exported constants
MAX_NAME_CHARS = 200  # experiments._string default: name
MAX_ORIGIN_CHARS = 200  # experiments.parse_experiment: allowed_origins items
MAX_WEIGHT = 1e9  # experiments._weights
MIN_HALF_LIFE_S, MAX_HALF_LIFE_S = 60.0, 10 * 365 * 86400.0  # experiments.parse_experiment: decay
FEATURE_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.\-]*$"  # bandits.encoding._NAME_PATTERN
MAX_LEVEL_CHARS = 200  # bandits.encoding._MAX_LEVEL_LENGTH
#: app.domain.bounds.identifier: no control characters (C0, DEL, C1) in identifiers and stored strings
PRINTABLE_PATTERN = r"^[^\u0000-\u001f\u007f-\u009f]*$"

bp = Blueprint("openapi", __name__)


@bp.record_once
def _build_on_register(state) -> None:
    state.app.extensions[EXTENSION] = build_spec(state.app.config)


@bp.get("/api/v1/openapi.json")
def openapi_json():
    return jsonify(current_app.extensions[EXTENSION])


_ERROR_RESPONSES = {
    400: "Invalid request: malformed JSON (`invalid_json`) or a field that breaks a rule (`invalid_request`, "
         "`invalid_assignment_token`, `invalid_reward_value`; `value_out_of_range`: a number beyond "
         "`LEVER_MAX_ABS_VALUE` or the experiment's `max_abs_value`; `invalid_characters`: a control character "
         "or lone surrogate in an identifier or stored string); the message names the field. Nothing was written.",
    401: "Missing bearer credential, or an unknown or revoked one (`unauthorized`).",
    403: "The credential's role lacks the operation's permission (`insufficient_role`; see `x-lever-permission`), "
         "or the request's `Origin` is not in the experiment's `allowed_origins` (`origin_not_allowed`); events "
         "without the visitor's token (`visitor_token_required`) or with one that is forged or another "
         "visitor's (`invalid_visitor_token`).",
    404: "No such experiment (`experiment_not_found`), assignment (`assignment_not_found`), metric "
         "(`metric_not_found`), webhook (`webhook_not_found`), API key (`api_key_not_found`) or invitation "
         "(`invitation_not_found`).",
    409: "An experiment or metric with this key exists already (`duplicate_key`), or the write would make "
         "counters non-finite because of values an older version recorded (`non_finite_counters`; nothing was "
         "written, `flask repair-values` repairs them).",
    410: "The invitation was used already or has expired (`invitation_unavailable`).",
    413: "The body is larger than `LEVER_MAX_BODY_BYTES` (`payload_too_large`).",
    422: "The reward window after the assignment has closed (`reward_window_closed`).",
    429: "Over `LEVER_RATE_LIMIT` for this client (`rate_limited`); see Retry-After.",
    503: "The database is busy or unreachable; nothing was written, retry shortly (`service_unavailable`). "
         "Rarely (PostgreSQL): the connection dropped during COMMIT and the outcome could not be checked, "
         "so the request may or may not have been recorded (`outcome_unknown`).",
}


# -- the document -------------------------------------------------------------------------

def build_spec(config: Mapping[str, Any]) -> dict[str, Any]:
    """The OpenAPI document for an app with these settings (limits are configurable)."""
    visitor_chars = config["LEVER_MAX_VISITOR_CHARS"]
    context_keys = config["LEVER_MAX_CONTEXT_KEYS"]
    string_chars = config["LEVER_MAX_STRING_CHARS"]
    batch = config["LEVER_MAX_BATCH"]
    body_bytes = config["LEVER_MAX_BODY_BYTES"]
    max_events = config["LEVER_MAX_EVENTS"]
    max_abs = config["LEVER_MAX_ABS_VALUE"]
    value = {"type": "number", "minimum": -max_abs, "maximum": max_abs, "default": 1,
             "description": f"|value| at most LEVER_MAX_ABS_VALUE ({max_abs:g}) and the experiment's max_abs_value."}
    printable = {"pattern": PRINTABLE_PATTERN}

    key = {"type": "string", "pattern": KEY_PATTERN.pattern, "description": "An experiment or variant key."}
    probability = {"type": "number", "minimum": 0, "maximum": 1}
    interval = nullable({"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2,
                          "description": "95% interval (low, high)."})
    number_or_null = {"type": ["number", "null"]}
    p_value = nullable(probability)
    reason = {"type": ["string", "null"], "description": "Why a null number could not be computed."}

    feature_name = {"type": "string", "minLength": 1, "maxLength": MAX_NAME_LENGTH, "pattern": FEATURE_NAME_PATTERN}

    def feature(kind: str, params: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
        return obj({"name": feature_name, "type": {"const": kind}, **params}, ("name", "type", *required))

    features = {
        "categorical": feature("categorical", {"levels": {
            "type": "array", "minItems": 1, "maxItems": MAX_LEVELS, "uniqueItems": True,
            "items": {"type": "string", "minLength": 1, "maxLength": MAX_LEVEL_CHARS}}}, ("levels",)),
        "boolean": feature("boolean", {}),
        "numeric": feature("numeric", {"min": {"type": "number", "default": 0}, "max": {"type": "number"}}, ("max",)),
        "cyclic": feature("cyclic", {
            "period": {"type": "number", "exclusiveMinimum": 0},
            "harmonics": {"type": "integer", "minimum": 1, "maximum": MAX_HARMONICS, "default": 1,
                          "description": "sin/cos pairs: H peaks per period instead of one (opt-in)."},
            "parts": {"type": "array", "minItems": 2, "maxItems": MAX_PARTS, "items": {"type": "number", "minimum": 0},
                      "description": "Increasing part starts in [0, period), e.g. [0, 9, 18]: one indicator column "
                                     "per part (the last wraps around), so a step in the effect is learnable."},
        }, ("period",)),
        "hashed": feature("hashed", {"buckets": {"type": "integer", "minimum": 2, "maximum": MAX_BUCKETS}},
                          ("buckets",)),
    }
    assert set(features) == set(FEATURE_TYPES), "document every context feature type of bandits.encoding"

    context_value = {"anyOf": [{"type": "string", "maxLength": string_chars, **printable},
                               {"type": "number", "minimum": -max_abs, "maximum": max_abs},
                               {"type": "boolean"}, {"type": "null"}]}
    visitor = {"type": "string", "minLength": 1, "maxLength": visitor_chars, **printable,
               "description": "The visitor id (not blank, no control characters)."}
    weight = {"type": "number", "minimum": 0, "maximum": MAX_WEIGHT}

    schemas: dict[str, Any] = {
        "Error": obj({"error": obj({"code": {"type": "string"}, "message": {"type": "string"}})},
                      description="Every error: a stable `code` and a message naming the field."),
        "ContextFeature": {
            "description": "A declared context feature (see bandits/encoding.py); `name` must be unique.",
            "oneOf": [features[kind] for kind in FEATURE_TYPES]},
        "Context": nullable({
            "type": "object", "maxProperties": context_keys,
            "propertyNames": {"minLength": 1, "maxLength": MAX_CONTEXT_KEY_CHARS, **printable},
            "additionalProperties": context_value,
            "description": "A flat object: strings, finite numbers, booleans or null.",
        }),
        "ExperimentDefinition": {
            **obj({
                "key": {**key, "not": {"enum": sorted(RESERVED_KEYS)},
                        "description": "The experiment key; `new` is reserved by the report pages."},
                "name": {"type": "string", "minLength": 1, "maxLength": MAX_NAME_CHARS, **printable,
                         "description": "Defaults to key."},
                "mode": {"enum": list(MODES), "default": "bandit"},
                "variants": {"type": "array", "minItems": MIN_VARIANTS, "maxItems": MAX_VARIANTS,
                             "description": "Variant keys must be unique.",
                             "items": {"anyOf": [key, obj({"key": key, "payload": {"type": "object"}}, ("key",))]}},
                "control": {**key, "description": "One of the variant keys; defaults to the first."},
                "holdout": {"type": "number", "minimum": 0, "maximum": MAX_HOLDOUT, "default": 0.1},
                "min_share": {"type": "number", "minimum": 0, "maximum": 1 / MIN_VARIANTS, "default": 0.01,
                              "description": "At most 1/K for K variants."},
                "reward": {"enum": list(REWARD_TYPES), "default": "binary"},
                "reward_window_s": {"type": "integer", "minimum": 1, "maximum": MAX_REWARD_WINDOW_S,
                                    "default": DEFAULT_REWARD_WINDOW_S},
                "sticky": {"type": "boolean", "default": True},
                "weights": {"description": "Mode ab only: one non-negative number per variant (not all zero).",
                            "anyOf": [{"type": "object", "additionalProperties": weight},
                                      {"type": "array", "items": weight}, {"type": "null"}]},
                "context": nullable({"type": "array", "maxItems": MAX_FEATURES,
                                      "items": {"anyOf": [ref("ContextFeature"),
                                                          {"type": "string", "minLength": 1,
                                                           "maxLength": MAX_NAME_LENGTH}]},
                                      "description": "Required (non-empty) for mode contextual. A name alone is "
                                                     "the short form: known names (device, hour, weekday, "
                                                     "returning, visits, source) get their encoding, any other "
                                                     "name is hashed into 16 buckets."}),
                "decay": nullable({**obj({"half_life_s": {"type": "number", "minimum": MIN_HALF_LIFE_S,
                                                            "maximum": MAX_HALF_LIFE_S}}),
                                    "description": "Mode contextual only."}),
                "allowed_origins": {"type": "array", "items": {"type": "string", "maxLength": MAX_ORIGIN_CHARS,
                                                               **printable}},
                "max_abs_value": nullable({"type": "number", "exclusiveMinimum": 0, "maximum": MAX_ABS_VALUE_CEILING,
                                            "description": "Reward numeric only: a bound on |value| tighter than "
                                                           "LEVER_MAX_ABS_VALUE (the smaller of the two holds)."}),
                "crosses": {"type": "array", "maxItems": 8, "description": "Mode contextual only: pairs of declared "
                            "features whose combinations the policy learns, e.g. [[\"device\", \"hour\"]].",
                            "items": {"type": "array", "minItems": 2, "maxItems": 2, "items": {"type": "string"}}},
                "reward_delay_s": nullable({"type": "number", "minimum": 1, "maximum": MAX_REWARD_WINDOW_S,
                                             "description": "Mode contextual only: typical seconds from assignment "
                                                            "to conversion; recent decisions are not yet counted "
                                                            "as failures."}),
                "planned_visitors": nullable({"type": "integer", "minimum": 4, "maximum": MAX_PLANNED_VISITORS,
                                               "description": "Mode ab only: total visitors planned before "
                                                              "launch (GET /api/v1/sample-size); the fixed-horizon "
                                                              "test then decides at that size and not before."}),
                "metrics": nullable(ref("ExperimentMetrics")),
            }, ("key", "variants")),
            "example": {"key": "homepage-hero", "name": "Homepage hero", "mode": "bandit",
                        "variants": [{"key": "control", "payload": {"headline": "A"}},
                                     {"key": "b", "payload": {"headline": "B"}}],
                        "control": "control", "holdout": 0.1},
        },
        "Experiment": obj({
            "key": key,
            "name": {"type": "string"},
            "mode": {"enum": list(MODES)},
            "reward": {"enum": list(REWARD_TYPES)},
            "variants": {"type": "array", "items": obj({"key": key, "payload": {"type": "object"}})},
            "control": key,
            "holdout": {"type": "number"},
            "min_share": {"type": "number"},
            "reward_window_s": {"type": "integer"},
            "sticky": {"type": "boolean"},
            "weights": nullable({"type": "object", "additionalProperties": {"type": "number"},
                                  "description": "Normalised weights (mode ab)."}),
            "context": {"type": "array", "items": {"type": "object"}},
            "decay_half_life_s": number_or_null,
            "allowed_origins": {"type": "array", "items": {"type": "string"}},
            "max_abs_value": number_or_null,
            "planned_visitors": {"type": ["integer", "null"]},
            "crosses": {"type": "array", "items": {"type": "array", "items": {"type": "string"}}},
            "reward_delay_s": number_or_null,
            "metrics": nullable(ref("ExperimentMetrics")),
            "stopped_variants": {"type": "array", "items": key,
                                 "description": "Variants a stop_variant guardrail took out of allocation."},
            "status": {"enum": list(STATUSES)},
            "winner": {"type": ["string", "null"]},
            "created_at": {"type": "number"},
            "updated_at": {"type": "number"},
        }),
        "ExperimentList": obj({"experiments": {"type": "array", "items": ref("Experiment")}}),
        "ExperimentUpdate": {**obj({"status": {"enum": list(STATUSES)}, "winner": {"type": ["string", "null"]},
                                     "metrics": ref("ExperimentMetrics")}, ()),
                             "minProperties": 1,
                             "description": "A winner must be a variant key and goes with status stopped; metrics "
                                            "comes alone and keeps the primary metric."},
        "AssignRequest": {"oneOf": [
            obj({"experiment": key, "visitor": visitor, "context": ref("Context")}, ("experiment", "visitor")),
            obj({"experiments": {"type": "array", "minItems": 1, "maxItems": batch, "uniqueItems": True,
                                  "items": key},
                  "visitor": visitor, "context": ref("Context")}, ("experiments", "visitor")),
        ]},
        "Assignment": obj({
            "assignment": {"type": ["string", "null"],
                           "description": "Signed token for rewards; null when the experiment is not running."},
            "experiment": key,
            "variant": key,
            "payload": {"type": "object"},
            "propensity": nullable({**probability, "exclusiveMinimum": 0}),
            "holdout": {"type": "boolean"},
            "model_version": {"type": ["integer", "null"], "minimum": 0},
            "status": {"enum": list(STATUSES)},
            "sticky": {"type": "boolean", "description": "True when a stored assignment came back."},
            "control": {**key, "description": "The experiment's control: what a client serves when it cannot "
                                              "reach Lever."},
            "explanation": obj({
                "predicted": {"type": "object", "additionalProperties": {"type": "number"}},
                "uncertainty": {"type": "object", "additionalProperties": {"type": "number"}},
                "ignored_context_keys": {"type": "array", "items": {"type": "string"}},
            }, (), closed=False, description="Contextual mode, new assignments only."),
            "visitor_token": ref("VisitorToken"),
        }, ("assignment", "experiment", "variant", "payload", "propensity", "holdout", "model_version", "status",
            "sticky", "control", "visitor_token")),
        "BatchAssignment": obj({"visitor": {"type": "string"}, "visitor_token": ref("VisitorToken"),
                                 "assignments": {"type": "array", "items": ref("Assignment")}}),
        "VisitorToken": {"type": "string", "description": "Signed, bound to the visitor id: send it with the "
                                                          "visitor's events (POST /api/v1/events)."},
        **metric_schemas(key, number_or_null, p_value, interval, reason, visitor, max_events, max_abs),
        "RewardRequest": {"oneOf": [
            obj({"assignment": {"type": "string", "minLength": 1, "description": "The token from assign."},
                 "value": value, "event_id": ref("EventId")}, ("assignment",)),
            obj({"experiment": key, "visitor": visitor,
                 "value": value, "event_id": ref("EventId")}, ("experiment", "visitor")),
        ], "description": "Binary experiments take value 1 or 0; numeric ones a finite number with |value| at most "
                          f"LEVER_MAX_ABS_VALUE ({max_abs:g}) and the experiment's max_abs_value."},
        "EventId": {"type": ["string", "null"], "minLength": 1, "maxLength": MAX_EVENT_ID_CHARS, **printable,
                    "description": "Makes retries safe: one event id is counted once."},
        "RewardResult": obj({
            "experiment": key,
            "assignment_id": {"type": "integer"},
            "counted": {"type": "boolean"},
            "reason": {"enum": [None, "duplicate", "zero_value"]},
            "reward_total": {"type": "number", "description": "Absent for a binary value 0 (nothing recorded)."},
        }, ("experiment", "assignment_id", "counted", "reason")),
        "Uplift": nullable(obj({
            "absolute": number_or_null, "ci_absolute": interval, "relative": number_or_null, "ci_relative": interval,
            "p_value": p_value, "p_value_adjusted": p_value, "always_valid_p_value": p_value,
            "se_absolute": number_or_null, "se_relative": number_or_null, "test": {"type": ["string", "null"]},
            "reason": reason,
        }, ("absolute", "ci_absolute", "relative", "ci_relative", "p_value", "p_value_adjusted",
            "always_valid_p_value", "reason"), closed=False)),
        "Estimate": obj({"value": number_or_null, "ci": interval, "se": number_or_null,
                          "method": {"type": ["string", "null"]}, "reason": reason},
                         ("value", "ci", "reason"), closed=False),
        "ArmSummary": obj({"key": {"type": "string"}, "visitors": {"type": "integer", "minimum": 0},
                            "conversions": {"type": "integer", "minimum": 0}, "rate": nullable(probability),
                            "mean": number_or_null, "ci": interval},
                           ("visitors", "conversions", "rate", "mean", "ci"), closed=False),
        "VariantStats": obj({
            "key": key,
            "visitors": {"type": "integer", "minimum": 0},
            "conversions": {"type": "integer", "minimum": 0},
            "rate": nullable(probability),
            "mean": number_or_null,
            "ci": interval,
            "uplift": ref("Uplift"),
            "chance_to_be_best": p_value,
            "expected_loss": number_or_null,
            "credible_interval_relative": interval,
            "allocation": p_value,
            "visitors_total": {"type": "integer", "minimum": 0},
            "conversions_total": {"type": "integer", "minimum": 0},
            "ips": ref("Estimate"),
            "snips": ref("Estimate"),
            "dr": ref("Estimate"),
            "reason": reason,
        }, closed=False),
        "PolicyValue": obj({"value": number_or_null, "ci": interval, "se": number_or_null,
                             "method": {"type": "string"}, "ips": ref("Estimate"), "snips": ref("Estimate"),
                             "dr": ref("Estimate"), "reason": reason}, ("value", "ci", "ips", "snips", "dr"),
                            closed=False),
        "Stats": obj({
            "experiment": key,
            "mode": {"enum": list(MODES)},
            "reward": {"enum": list(REWARD_TYPES)},
            "control": key,
            "status": {"enum": list(STATUSES)},
            "model_version": {"type": "integer", "minimum": 0},
            "analysis_slice": {"enum": ["all", "holdout"]},
            "variants": {"type": "array", "items": ref("VariantStats")},
            "srm": nullable(obj({
                "p_value": p_value, "ok": {"type": ["boolean", "null"]},
                "expected": {"type": "object", "additionalProperties": {"type": "number"}},
                "observed": {"type": "object", "additionalProperties": {"type": "integer"}},
                "method": {"type": "string"}, "reason": reason,
            }, ("p_value", "ok", "expected", "observed", "method"), closed=False)),
            "personalisation": nullable(obj({
                "policy": ref("ArmSummary"), "holdout": ref("ArmSummary"), "control_holdout": ref("ArmSummary"),
                "vs_holdout": ref("Uplift"), "vs_control_holdout": ref("Uplift"), "reason": reason,
            }, ("vs_holdout", "vs_control_holdout"), closed=False)),
            "off_policy": nullable(obj({
                "uniform_random": ref("PolicyValue"),
                "variants": {"type": "object", "additionalProperties": ref("PolicyValue")},
                "current_policy": ref("PolicyValue"),
                "decisions": {"type": "integer", "minimum": 0},
                "reason": reason,
            }, ("uniform_random", "variants", "current_policy"), closed=False)),
            "segments": {"type": "array", "items": obj({
                "feature": {"type": "string"}, "level": {"type": "string"},
                "variants": {"type": "array", "items": obj({
                    "key": key, "visitors": {"type": "integer", "minimum": 0},
                    "conversions": {"type": "integer", "minimum": 0}, "rate": nullable(probability),
                    "mean": number_or_null, "ci": interval, "uplift": ref("Uplift"),
                }, closed=False)},
            }, closed=False)},
            "bayesian": {"type": "object"},
            "allocation_source": {"type": ["string", "null"]},
            "warnings": {"type": "array", "items": obj({"code": {"type": "string"}, "message": {"type": "string"}})},
            "metrics": {"type": "array", "items": ref("MetricResult"),
                        "description": f"Per metric (without metrics: the implicit `{REWARD_METRIC}`)."},
            "personalisation_guardrails": {"type": "array", "items": {"type": "object"},
                                           "description": "Policy traffic against the holdout, primary metric "
                                                          "and guardrails."},
            "personalisation_lift": {"type": "array", "items": ref("PersonalisationLift")},
            "guardrail_actions": {"type": "array", "items": ref("GuardrailAction")},
            "stopped_variants": {"type": "array", "items": key},
            "reason": reason,
        }, ("experiment", "mode", "reward", "control", "status", "model_version", "analysis_slice", "variants",
            "srm", "personalisation", "off_policy", "segments", "warnings"), closed=False,
            description="Every statistic of the experiment (README, Statistics). Numbers that cannot be "
                        "computed are null beside a reason code; nothing is NaN."),
        "Policy": obj({
            "experiment": key,
            "mode": {"enum": list(MODES)},
            "worker": {"type": "integer"},
            "model_version": {"type": "integer", "minimum": 0},
            "refreshed_at": {"type": "number"},
            "allocation": nullable({"type": "object", "additionalProperties": probability}),
            "posterior": nullable({"type": "object", "additionalProperties": obj({
                "mean": {"type": "number"},
                "interval": {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2}})}),
            "contextual": {"type": "object", "description": "Contextual mode: average_allocation and predicted "
                           "outcome over the last 500 contexts, coefficients per variant with 95% intervals, and "
                           "the learned combinations ({segment, variant, versus, lift_pp, share, contexts, text})."},
        }, ("experiment", "mode", "worker", "model_version", "refreshed_at", "allocation", "posterior")),
        "VisitorEvents": obj({"visitor": {"type": "string"}, "assignments": {"type": "array", "items": obj({
            "id": {"type": "integer"}, "experiment": key, "variant": key, "context": {"type": "object"},
            "propensity": number_or_null, "holdout": {"type": "boolean"}, "model_version": {"type": ["integer", "null"]},
            "created_at": {"type": "number"}, "reward_total": {"type": "number"},
            "reward_count": {"type": "integer", "minimum": 0},
            "rewards": {"type": "array", "items": obj({"value": {"type": "number"},
                                                        "event_id": {"type": ["string", "null"]},
                                                        "created_at": {"type": "number"}})},
        }, closed=False)}, "events": {"type": "array", "items": obj({
            "name": {"type": "string"}, "value": {"type": "number"}, "event_id": {"type": ["string", "null"]},
            "ts": {"type": "number"}, "created_at": {"type": "number"}})}}),
        "VisitorErased": obj({"visitor": {"type": "string"}, "erased_assignments": {"type": "integer", "minimum": 0}}),
        "Health": obj({"status": {"const": "ok"}, "worker": {"type": "integer"}}),
        **webhook_schemas(),
    }

    admin = [{"bearerAuth": []}]
    key_param = {"name": "key", "in": "path", "required": True, "schema": key, "example": "homepage-hero"}
    cors_headers = {name: {"schema": {"type": "string"}} for name in (
        "Access-Control-Allow-Origin", "Access-Control-Allow-Methods", "Access-Control-Allow-Headers")}

    def body(schema_name: str, example: Any = None) -> dict[str, Any]:
        content: dict[str, Any] = {"schema": ref(schema_name)}
        if example is not None:
            content["example"] = example
        return {"required": True, "content": {"application/json": content},
                "description": f"JSON (any Content-Type is parsed as JSON, so sendBeacon's text/plain works); "
                               f"at most {body_bytes} bytes."}

    def preflight(summary: str) -> dict[str, Any]:
        return {"summary": summary, "operationId": summary.replace(" ", "_"), "tags": ["public"], "security": [],
                "responses": {"204": {"description": "CORS preflight answer.", "headers": cors_headers}}}

    paths: dict[str, Any] = {
        "/api/v1/experiments": {
            "post": {"summary": "Create an experiment", "operationId": "create_experiment", **permission(EXPERIMENTS_WRITE), "tags": ["admin"],
                     "security": admin, "requestBody": body("ExperimentDefinition"),
                     "responses": {"201": json(ref("Experiment"), "The stored experiment."),
                                   **errors(400, 401, 403, 409, 413, 503)}},
            "get": {"summary": "List experiments", "operationId": "list_experiments", **permission(REPORTS_READ), "tags": ["admin"],
                    "security": admin,
                    "responses": {"200": json(ref("ExperimentList"), "Every experiment."), **errors(401, 403, 503)}},
        },
        "/api/v1/experiments/{key}": {
            "parameters": [key_param],
            "get": {"summary": "One experiment", "operationId": "get_experiment", **permission(REPORTS_READ), "tags": ["admin"], "security": admin,
                    "responses": {"200": json(ref("Experiment"), "The experiment."), **errors(401, 403, 404, 503)}},
            "patch": {"summary": "Change status (and winner)", "operationId": "update_experiment", **permission(EXPERIMENTS_WRITE), "tags": ["admin"],
                      "security": admin,
                      "requestBody": body("ExperimentUpdate", {"status": "stopped", "winner": "b"}),
                      "responses": {"200": json(ref("Experiment"), "The updated experiment."),
                                    **errors(400, 401, 403, 404, 413, 503)}},
        },
        "/api/v1/experiments/{key}/stats": {
            "parameters": [key_param],
            "get": {"summary": "Every statistic of the experiment", "operationId": "experiment_stats", **permission(REPORTS_READ),
                    "tags": ["admin"], "security": admin,
                    "responses": {"200": json(ref("Stats"), "The statistics."), **errors(401, 403, 404, 503)}},
        },
        "/api/v1/sample-size": {
            "get": {"summary": "Visitors needed to detect a minimum effect", "operationId": "sample_size",
                    **permission(REPORTS_READ), "tags": ["admin"], "security": admin,
                    "parameters": [
                        {"name": name, "in": "query", "required": name == "mde", "schema": schema,
                         "description": text} for name, schema, text in (
                            ("mde", {"type": "number", "exclusiveMinimum": 0}, "Minimum detectable effect."),
                            ("relative", {"type": "boolean", "default": True}, "mde relative to the baseline."),
                            ("baseline_rate", {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
                             "Conversion metrics: the control's expected rate."),
                            ("baseline_mean", {"type": "number"}, "Numeric metrics: the control's mean."),
                            ("sd", {"type": "number", "exclusiveMinimum": 0}, "Numeric metrics: per-visitor sd."),
                            ("variants", {"type": "integer", "minimum": 2, "maximum": 50, "default": 2}, ""),
                            ("alpha", {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 0.5,
                                       "default": 0.05}, ""),
                            ("power", {"type": "number", "minimum": 0.5, "exclusiveMaximum": 1, "default": 0.8}, ""))],
                    "responses": {"200": json({"type": "object"}, "Per rule (fixed_horizon, anytime_valid): "
                                               "visitors per variant and in total; planned_visitors to declare."),
                                  **errors(400, 401, 503)}},
        },
        "/api/v1/experiments/{key}/policy": {
            "parameters": [key_param],
            "get": {"summary": "This worker's policy", "operationId": "policy", **permission(REPORTS_READ), "tags": ["admin"], "security": admin,
                    "responses": {"200": json(ref("Policy"), "Model version, allocation and posterior."),
                                  **errors(401, 403, 404, 503)}},
        },
        "/api/v1/experiments/{key}/events.csv": {
            "parameters": [key_param],
            "get": {"summary": "Events export", "operationId": "events_csv", **permission(EVENTS_EXPORT), "tags": ["admin"], "security": admin,
                    "responses": {"200": {"description": "One row per assignment with its reward total and count.",
                                          "content": {"text/csv": {"schema": {"type": "string"}}}},
                                  **errors(401, 403, 404, 503)}},
        },
        "/api/v1/visitors/{visitor}": {
            "parameters": [{"name": "visitor", "in": "path", "required": True, "schema": visitor, "example": "v-42"}],
            "get": {"summary": "Everything stored about one visitor", "operationId": "export_visitor", **permission(VISITORS_MANAGE),
                    "tags": ["admin"], "security": admin,
                    "responses": {"200": json(ref("VisitorEvents"), "The visitor's assignments and rewards."),
                                  **errors(400, 401, 403, 503)}},
            "delete": {"summary": "Erase a visitor everywhere, counters included", "operationId": "erase_visitor", **permission(VISITORS_MANAGE),
                       "tags": ["admin"], "security": admin,
                       "responses": {"200": json(ref("VisitorErased"), "How many assignments were erased."),
                                     **errors(400, 401, 403, 409, 503)}},
        },
        "/api/v1/assign": {
            "post": {"summary": "Assign a visitor", "operationId": "assign", "tags": ["public"], "security": [],
                     "requestBody": body("AssignRequest", {"experiment": "homepage-hero", "visitor": "v-123",
                                                           "context": {"device": "mobile", "hour": 14}}),
                     "responses": {"200": {**json({"oneOf": [ref("Assignment"), ref("BatchAssignment")]},
                                                   "One assignment, or {visitor, assignments} for `experiments`."),
                                           "headers": cors_headers},
                                   **errors(400, 403, 404, 409, 413, 429, 503)}},
            "options": preflight("assign preflight"),
        },
        "/api/v1/reward": {
            "post": {"summary": "Report a conversion or a numeric reward", "operationId": "reward",
                     "tags": ["public"], "security": [{}, {"bearerAuth": []}],
                     "description": "With the signed `assignment` token: public. By `experiment` and `visitor`: "
                                    "needs a bearer credential with `events.ingest` (an `ingest` API key or above), "
                                    "so nobody can forge conversions for a guessed visitor id.",
                     "requestBody": body("RewardRequest", {"experiment": "homepage-hero", "visitor": "v-123",
                                                           "value": 1}),
                     "responses": {"202": {**json(ref("RewardResult"), "Accepted (or a duplicate, not counted)."),
                                           "headers": cors_headers},
                                   **errors(400, 401, 403, 404, 409, 413, 422, 429, 503)}},
            "options": preflight("reward preflight"),
        },
        **webhook_paths(admin, body),
        "/api/v1/metrics": {
            "post": {"summary": "Define a metric", "operationId": "create_metric", **permission(METRICS_WRITE), "tags": ["admin"],
                     "security": admin, "requestBody": body("MetricDefinition"),
                     "responses": {"201": json(ref("Metric"), "The stored metric."),
                                   **errors(400, 401, 409, 413, 503)}},
            "get": {"summary": "The metric catalogue", "operationId": "list_metrics", **permission(REPORTS_READ), "tags": ["admin"],
                    "security": admin,
                    "responses": {"200": json(obj({"metrics": {"type": "array", "items": ref("Metric")}}),
                                               "Every metric."), **errors(401, 503)}},
        },
        "/api/v1/metrics/{key}": {
            "parameters": [{"name": "key", "in": "path", "required": True,
                            "schema": {"type": "string", "pattern": METRIC_KEY_PATTERN.pattern}, "example": "revenue"}],
            "get": {"summary": "One metric", "operationId": "get_metric", **permission(REPORTS_READ), "tags": ["admin"], "security": admin,
                    "responses": {"200": json(ref("Metric"), "The metric."), **errors(401, 404, 503)}},
            "patch": {"summary": "Change a metric's name, window, delay, cap, direction or CUPED window",
                      "operationId": "update_metric", **permission(METRICS_WRITE), "tags": ["admin"], "security": admin,
                      "requestBody": body("MetricUpdate", {"cap": 500}),
                      "responses": {"200": json(ref("Metric"), "The updated metric."),
                                    **errors(400, 401, 404, 413, 503)}},
        },
        "/api/v1/events": {
            "post": {"summary": "Record a visitor's events", "operationId": "events", "tags": ["public"],
                     "security": [], "description": "Pages send the visitor_token of their assign response; "
                     "server-side callers with the admin bearer token send none and may set ts.",
                     "requestBody": body("EventsRequest", {"visitor": "v-123", "visitor_token": "…", "events": [
                         {"name": "purchase", "value": 49.9, "event_id": "order-991"}]}),
                     "responses": {"202": {**json(ref("EventsResult"), "Stored (duplicates counted once)."),
                                           "headers": cors_headers},
                                   **errors(400, 403, 413, 429, 503)}},
            "options": preflight("events preflight"),
        },
        "/api/v1/openapi.json": {
            "get": {"summary": "This document", "operationId": "openapi", "tags": ["meta"], "security": [],
                    "responses": {"200": json({"type": "object"}, "The OpenAPI document.")}},
        },
        "/healthz": {
            "get": {"summary": "Health check (database)", "operationId": "healthz", "tags": ["meta"], "security": [],
                    "responses": {"200": json(ref("Health"), "The database answers."),
                                  "503": error("The database does not answer (`database_unavailable`).")}},
        },
    }

    team_schemas, team_paths = team_document({"obj": obj, "ref": ref, "json": json, "errors": errors,
                                              "body": body})
    schemas.update(team_schemas)
    paths.update(team_paths)

    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Lever",
            "version": API_VERSION,
            "description": "Self-hosted experimentation and bandit optimisation. Errors are always "
                           '`{"error": {"code", "message"}}`. Admin endpoints need '
                           "`Authorization: Bearer <API key or LEVER_ADMIN_TOKEN>` whose role holds the "
                           "operation's `x-lever-permission`; assign and reward are public and answer "
                           "CORS preflights.",
        },
        "tags": [{"name": "admin"}, {"name": "team"}, {"name": "public"}, {"name": "meta"}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "responses": {str(status): error(text) for status, text in _ERROR_RESPONSES.items()},
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer",
                                               "description": "An API key (lever_sk_…) or LEVER_ADMIN_TOKEN"}},
        },
    }
