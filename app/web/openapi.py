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

from typing import Any, Callable, Mapping

from flask import Blueprint, current_app, jsonify

from bandits.encoding import FEATURE_TYPES, MAX_BUCKETS, MAX_FEATURES, MAX_LEVELS, MAX_NAME_LENGTH

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
from ..domain.requests import MAX_ABS_VALUE_CEILING, MAX_CONTEXT_KEY_CHARS, MAX_EVENT_ID_CHARS
from ..domain.webhooks import EVENT_TYPES, FORMATS, MAX_SECRET_CHARS, MAX_URL_CHARS, MIN_SECRET_CHARS, URL_SCHEMES
from ..service.webhooks import DELIVERY_LOG_LIMIT, MAX_WEBHOOK_ID
from ..storage.webhooks import DELIVERED, FAILED, PENDING

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


# -- helpers -----------------------------------------------------------------------------

def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def _obj(properties: dict[str, Any], required: tuple[str, ...] | None = None, *, closed: bool = True,
         description: str | None = None) -> dict[str, Any]:
    """An object schema; ``required`` defaults to every property (response records)."""
    schema: dict[str, Any] = {"type": "object", "properties": properties,
                              "required": list(properties if required is None else required)}
    if closed:
        schema["additionalProperties"] = False
    if description:
        schema["description"] = description
    return schema


def _json(schema: dict[str, Any], description: str, example: Any = None) -> dict[str, Any]:
    content: dict[str, Any] = {"schema": schema}
    if example is not None:
        content["example"] = example
    return {"description": description, "content": {"application/json": content}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


def _errors(*statuses: int) -> dict[str, Any]:
    return {str(status): {"$ref": f"#/components/responses/{status}"} for status in statuses}


_ERROR_RESPONSES = {
    400: "Invalid request: malformed JSON (`invalid_json`) or a field that breaks a rule (`invalid_request`, "
         "`invalid_assignment_token`, `invalid_reward_value`; `value_out_of_range`: a number beyond "
         "`LEVER_MAX_ABS_VALUE` or the experiment's `max_abs_value`; `invalid_characters`: a control character "
         "or lone surrogate in an identifier or stored string); the message names the field. Nothing was written.",
    401: "Missing or wrong admin bearer token (`unauthorized`).",
    403: "The request's `Origin` is not in the experiment's `allowed_origins` (`origin_not_allowed`).",
    404: "No such experiment (`experiment_not_found`), assignment (`assignment_not_found`) or webhook "
         "(`webhook_not_found`).",
    409: "An experiment with this key exists already (`duplicate_key`), or the write would make counters "
         "non-finite because of values an older version recorded (`non_finite_counters`; nothing was written, "
         "`flask repair-values` repairs them).",
    413: "The body is larger than `LEVER_MAX_BODY_BYTES` (`payload_too_large`).",
    422: "The reward window after the assignment has closed (`reward_window_closed`).",
    429: "Over `LEVER_RATE_LIMIT` for this client (`rate_limited`); see Retry-After.",
    503: "The database is busy or unreachable; nothing was written, retry shortly (`service_unavailable`). "
         "Rarely (PostgreSQL): the connection dropped during COMMIT and the outcome could not be checked, "
         "so the request may or may not have been recorded (`outcome_unknown`).",
}


# -- webhooks ----------------------------------------------------------------------------

def _webhook_schemas() -> dict[str, Any]:
    event_type = {"enum": list(EVENT_TYPES)}
    webhook = _obj({
        "id": {"type": "integer"},
        "url": {"type": "string"},
        "events": {"type": "array", "items": event_type, "description": "Sorted."},
        "format": {"enum": list(FORMATS)},
        "secret_prefix": {"type": "string", "description": "The secret's first characters; never the secret."},
        "created_at": {"type": "number"},
    })
    return {
        "WebhookDefinition": {
            **_obj({
                "url": {"type": "string", "minLength": 1, "maxLength": MAX_URL_CHARS,
                        "description": f"An {' or '.join(URL_SCHEMES)} URL Lever POSTs every event to "
                                       "(its host in `LEVER_WEBHOOK_ALLOWED_HOSTS` when that is set)."},
                "events": {"type": "array", "minItems": 1, "uniqueItems": True, "items": event_type},
                "secret": {"type": "string", "minLength": MIN_SECRET_CHARS, "maxLength": MAX_SECRET_CHARS,
                           "description": "Signs every delivery (`X-Lever-Signature`); stored, never shown again."},
                "format": {"enum": list(FORMATS), "default": "json",
                           "description": "`json`: the signed event; `slack`: `{\"text\": …}` for a Slack "
                                          "incoming webhook."},
            }, ("url", "events", "secret")),
            "example": {"url": "https://hooks.example.com/lever", "events": ["srm.detected", "guardrail.failing"],
                        "secret": "a-long-random-secret-of-yours", "format": "json"},
        },
        "Webhook": webhook,
        "WebhookList": _obj({"webhooks": {"type": "array", "items": _ref("Webhook")}}),
        "WebhookDeleted": _obj({"id": {"type": "integer"}, "deleted": {"const": True}}),
        "DeliveryLog": _obj({"webhook": {"type": "integer"}, "deliveries": {
            "type": "array", "maxItems": DELIVERY_LOG_LIMIT, "description": "Newest first.", "items": _obj({
                "id": {"type": "integer"},
                "event_id": {"type": "string", "description": "The event's id: the same on every attempt."},
                "event_type": event_type,
                "experiment": {"type": ["string", "null"]},
                "status": {"enum": [PENDING, DELIVERED, FAILED]},
                "attempts": {"type": "integer", "minimum": 0},
                "last_status": {"type": ["integer", "null"], "description": "HTTP status of the last attempt."},
                "last_error": {"type": ["string", "null"]},
                "next_attempt_at": {"type": ["number", "null"], "description": "Pending deliveries only."},
                "last_attempt_at": {"type": ["number", "null"]},
                "delivered_at": {"type": ["number", "null"]},
                "created_at": {"type": "number"},
            })}}),
    }


def _webhook_paths(admin: list, body: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
    webhook_id = {"name": "webhook_id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 0, "maximum": MAX_WEBHOOK_ID}, "example": 1}
    return {
        "/api/v1/webhooks": {
            "post": {"summary": "Register a webhook", "operationId": "create_webhook", "tags": ["admin"],
                     "security": admin, "requestBody": body("WebhookDefinition"),
                     "responses": {"201": _json(_ref("Webhook"), "The webhook (the secret only as a prefix)."),
                                   **_errors(400, 401, 413, 503)}},
            "get": {"summary": "List webhooks", "operationId": "list_webhooks", "tags": ["admin"], "security": admin,
                    "responses": {"200": _json(_ref("WebhookList"), "Every webhook."), **_errors(401, 503)}},
        },
        "/api/v1/webhooks/{webhook_id}": {
            "parameters": [webhook_id],
            "delete": {"summary": "Delete a webhook (pending deliveries stop)", "operationId": "delete_webhook",
                       "tags": ["admin"], "security": admin,
                       "responses": {"200": _json(_ref("WebhookDeleted"), "Deleted, with its delivery log."),
                                     **_errors(401, 404, 503)}},
        },
        "/api/v1/webhooks/{webhook_id}/deliveries": {
            "parameters": [webhook_id],
            "get": {"summary": "A webhook's delivery log", "operationId": "webhook_deliveries", "tags": ["admin"],
                    "security": admin,
                    "responses": {"200": _json(_ref("DeliveryLog"), "Status, attempts and last error per delivery."),
                                  **_errors(401, 404, 503)}},
        },
    }


# -- the document -------------------------------------------------------------------------

def build_spec(config: Mapping[str, Any]) -> dict[str, Any]:
    """The OpenAPI document for an app with these settings (limits are configurable)."""
    visitor_chars = config["LEVER_MAX_VISITOR_CHARS"]
    context_keys = config["LEVER_MAX_CONTEXT_KEYS"]
    string_chars = config["LEVER_MAX_STRING_CHARS"]
    batch = config["LEVER_MAX_BATCH"]
    body_bytes = config["LEVER_MAX_BODY_BYTES"]
    max_abs = config["LEVER_MAX_ABS_VALUE"]
    value = {"type": "number", "minimum": -max_abs, "maximum": max_abs, "default": 1,
             "description": f"|value| at most LEVER_MAX_ABS_VALUE ({max_abs:g}) and the experiment's max_abs_value."}
    printable = {"pattern": PRINTABLE_PATTERN}

    key = {"type": "string", "pattern": KEY_PATTERN.pattern, "description": "An experiment or variant key."}
    probability = {"type": "number", "minimum": 0, "maximum": 1}
    interval = _nullable({"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2,
                          "description": "95% interval (low, high)."})
    number_or_null = {"type": ["number", "null"]}
    p_value = _nullable(probability)
    reason = {"type": ["string", "null"], "description": "Why a null number could not be computed."}

    feature_name = {"type": "string", "minLength": 1, "maxLength": MAX_NAME_LENGTH, "pattern": FEATURE_NAME_PATTERN}

    def feature(kind: str, params: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
        return _obj({"name": feature_name, "type": {"const": kind}, **params}, ("name", "type", *required))

    features = {
        "categorical": feature("categorical", {"levels": {
            "type": "array", "minItems": 1, "maxItems": MAX_LEVELS, "uniqueItems": True,
            "items": {"type": "string", "minLength": 1, "maxLength": MAX_LEVEL_CHARS}}}, ("levels",)),
        "boolean": feature("boolean", {}),
        "numeric": feature("numeric", {"min": {"type": "number", "default": 0}, "max": {"type": "number"}}, ("max",)),
        "cyclic": feature("cyclic", {"period": {"type": "number", "exclusiveMinimum": 0}}, ("period",)),
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
        "Error": _obj({"error": _obj({"code": {"type": "string"}, "message": {"type": "string"}})},
                      description="Every error: a stable `code` and a message naming the field."),
        "ContextFeature": {
            "description": "A declared context feature (see bandits/encoding.py); `name` must be unique.",
            "oneOf": [features[kind] for kind in FEATURE_TYPES]},
        "Context": _nullable({
            "type": "object", "maxProperties": context_keys,
            "propertyNames": {"minLength": 1, "maxLength": MAX_CONTEXT_KEY_CHARS, **printable},
            "additionalProperties": context_value,
            "description": "A flat object: strings, finite numbers, booleans or null.",
        }),
        "ExperimentDefinition": {
            **_obj({
                "key": {**key, "not": {"enum": sorted(RESERVED_KEYS)},
                        "description": "The experiment key; `new` is reserved by the report pages."},
                "name": {"type": "string", "minLength": 1, "maxLength": MAX_NAME_CHARS, **printable,
                         "description": "Defaults to key."},
                "mode": {"enum": list(MODES), "default": "bandit"},
                "variants": {"type": "array", "minItems": MIN_VARIANTS, "maxItems": MAX_VARIANTS,
                             "description": "Variant keys must be unique.",
                             "items": {"anyOf": [key, _obj({"key": key, "payload": {"type": "object"}}, ("key",))]}},
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
                "context": _nullable({"type": "array", "maxItems": MAX_FEATURES,
                                      "items": {"anyOf": [_ref("ContextFeature"),
                                                          {"type": "string", "minLength": 1,
                                                           "maxLength": MAX_NAME_LENGTH}]},
                                      "description": "Required (non-empty) for mode contextual. A name alone is "
                                                     "the short form: known names (device, hour, weekday, "
                                                     "returning, visits, source) get their encoding, any other "
                                                     "name is hashed into 16 buckets."}),
                "decay": _nullable({**_obj({"half_life_s": {"type": "number", "minimum": MIN_HALF_LIFE_S,
                                                            "maximum": MAX_HALF_LIFE_S}}),
                                    "description": "Mode contextual only."}),
                "allowed_origins": {"type": "array", "items": {"type": "string", "maxLength": MAX_ORIGIN_CHARS,
                                                               **printable}},
                "max_abs_value": _nullable({"type": "number", "exclusiveMinimum": 0, "maximum": MAX_ABS_VALUE_CEILING,
                                            "description": "Reward numeric only: a bound on |value| tighter than "
                                                           "LEVER_MAX_ABS_VALUE (the smaller of the two holds)."}),
                "crosses": {"type": "array", "maxItems": 8, "description": "Mode contextual only: pairs of declared "
                            "features whose combinations the policy learns, e.g. [[\"device\", \"hour\"]].",
                            "items": {"type": "array", "minItems": 2, "maxItems": 2, "items": {"type": "string"}}},
                "reward_delay_s": _nullable({"type": "number", "minimum": 1, "maximum": MAX_REWARD_WINDOW_S,
                                             "description": "Mode contextual only: typical seconds from assignment "
                                                            "to conversion; recent decisions are not yet counted "
                                                            "as failures."}),
                "planned_visitors": _nullable({"type": "integer", "minimum": 4, "maximum": MAX_PLANNED_VISITORS,
                                               "description": "Mode ab only: total visitors planned before "
                                                              "launch (GET /api/v1/sample-size); the fixed-horizon "
                                                              "test then decides at that size and not before."}),
            }, ("key", "variants")),
            "example": {"key": "homepage-hero", "name": "Homepage hero", "mode": "bandit",
                        "variants": [{"key": "control", "payload": {"headline": "A"}},
                                     {"key": "b", "payload": {"headline": "B"}}],
                        "control": "control", "holdout": 0.1},
        },
        "Experiment": _obj({
            "key": key,
            "name": {"type": "string"},
            "mode": {"enum": list(MODES)},
            "reward": {"enum": list(REWARD_TYPES)},
            "variants": {"type": "array", "items": _obj({"key": key, "payload": {"type": "object"}})},
            "control": key,
            "holdout": {"type": "number"},
            "min_share": {"type": "number"},
            "reward_window_s": {"type": "integer"},
            "sticky": {"type": "boolean"},
            "weights": _nullable({"type": "object", "additionalProperties": {"type": "number"},
                                  "description": "Normalised weights (mode ab)."}),
            "context": {"type": "array", "items": {"type": "object"}},
            "decay_half_life_s": number_or_null,
            "allowed_origins": {"type": "array", "items": {"type": "string"}},
            "max_abs_value": number_or_null,
            "planned_visitors": {"type": ["integer", "null"]},
            "crosses": {"type": "array", "items": {"type": "array", "items": {"type": "string"}}},
            "reward_delay_s": number_or_null,
            "status": {"enum": list(STATUSES)},
            "winner": {"type": ["string", "null"]},
            "created_at": {"type": "number"},
            "updated_at": {"type": "number"},
        }),
        "ExperimentList": _obj({"experiments": {"type": "array", "items": _ref("Experiment")}}),
        "ExperimentUpdate": {**_obj({"status": {"enum": list(STATUSES)}, "winner": {"type": ["string", "null"]}}, ()),
                             "minProperties": 1,
                             "description": "A winner must be a variant key and goes with status stopped."},
        "AssignRequest": {"oneOf": [
            _obj({"experiment": key, "visitor": visitor, "context": _ref("Context")}, ("experiment", "visitor")),
            _obj({"experiments": {"type": "array", "minItems": 1, "maxItems": batch, "uniqueItems": True,
                                  "items": key},
                  "visitor": visitor, "context": _ref("Context")}, ("experiments", "visitor")),
        ]},
        "Assignment": _obj({
            "assignment": {"type": ["string", "null"],
                           "description": "Signed token for rewards; null when the experiment is not running."},
            "experiment": key,
            "variant": key,
            "payload": {"type": "object"},
            "propensity": _nullable({**probability, "exclusiveMinimum": 0}),
            "holdout": {"type": "boolean"},
            "model_version": {"type": ["integer", "null"], "minimum": 0},
            "status": {"enum": list(STATUSES)},
            "sticky": {"type": "boolean", "description": "True when a stored assignment came back."},
            "control": {**key, "description": "The experiment's control: what a client serves when it cannot "
                                              "reach Lever."},
            "explanation": _obj({
                "predicted": {"type": "object", "additionalProperties": {"type": "number"}},
                "uncertainty": {"type": "object", "additionalProperties": {"type": "number"}},
                "ignored_context_keys": {"type": "array", "items": {"type": "string"}},
            }, (), closed=False, description="Contextual mode, new assignments only."),
        }, ("assignment", "experiment", "variant", "payload", "propensity", "holdout", "model_version", "status",
            "sticky", "control")),
        "BatchAssignment": _obj({"visitor": {"type": "string"},
                                 "assignments": {"type": "array", "items": _ref("Assignment")}}),
        "RewardRequest": {"oneOf": [
            _obj({"assignment": {"type": "string", "minLength": 1, "description": "The token from assign."},
                  "value": value, "event_id": _ref("EventId")}, ("assignment",)),
            _obj({"experiment": key, "visitor": visitor,
                  "value": value, "event_id": _ref("EventId")}, ("experiment", "visitor")),
        ], "description": "Binary experiments take value 1 or 0; numeric ones a finite number with |value| at most "
                          f"LEVER_MAX_ABS_VALUE ({max_abs:g}) and the experiment's max_abs_value."},
        "EventId": {"type": ["string", "null"], "minLength": 1, "maxLength": MAX_EVENT_ID_CHARS, **printable,
                    "description": "Makes retries safe: one event id is counted once."},
        "RewardResult": _obj({
            "experiment": key,
            "assignment_id": {"type": "integer"},
            "counted": {"type": "boolean"},
            "reason": {"enum": [None, "duplicate", "zero_value"]},
            "reward_total": {"type": "number", "description": "Absent for a binary value 0 (nothing recorded)."},
        }, ("experiment", "assignment_id", "counted", "reason")),
        "Uplift": _nullable(_obj({
            "absolute": number_or_null, "ci_absolute": interval, "relative": number_or_null, "ci_relative": interval,
            "p_value": p_value, "p_value_adjusted": p_value, "always_valid_p_value": p_value,
            "se_absolute": number_or_null, "se_relative": number_or_null, "test": {"type": ["string", "null"]},
            "reason": reason,
        }, ("absolute", "ci_absolute", "relative", "ci_relative", "p_value", "p_value_adjusted",
            "always_valid_p_value", "reason"), closed=False)),
        "Estimate": _obj({"value": number_or_null, "ci": interval, "se": number_or_null,
                          "method": {"type": ["string", "null"]}, "reason": reason},
                         ("value", "ci", "reason"), closed=False),
        "ArmSummary": _obj({"key": {"type": "string"}, "visitors": {"type": "integer", "minimum": 0},
                            "conversions": {"type": "integer", "minimum": 0}, "rate": _nullable(probability),
                            "mean": number_or_null, "ci": interval},
                           ("visitors", "conversions", "rate", "mean", "ci"), closed=False),
        "VariantStats": _obj({
            "key": key,
            "visitors": {"type": "integer", "minimum": 0},
            "conversions": {"type": "integer", "minimum": 0},
            "rate": _nullable(probability),
            "mean": number_or_null,
            "ci": interval,
            "uplift": _ref("Uplift"),
            "chance_to_be_best": p_value,
            "expected_loss": number_or_null,
            "credible_interval_relative": interval,
            "allocation": p_value,
            "visitors_total": {"type": "integer", "minimum": 0},
            "conversions_total": {"type": "integer", "minimum": 0},
            "ips": _ref("Estimate"),
            "snips": _ref("Estimate"),
            "dr": _ref("Estimate"),
            "reason": reason,
        }, closed=False),
        "PolicyValue": _obj({"value": number_or_null, "ci": interval, "se": number_or_null,
                             "method": {"type": "string"}, "ips": _ref("Estimate"), "snips": _ref("Estimate"),
                             "dr": _ref("Estimate"), "reason": reason}, ("value", "ci", "ips", "snips", "dr"),
                            closed=False),
        "Stats": _obj({
            "experiment": key,
            "mode": {"enum": list(MODES)},
            "reward": {"enum": list(REWARD_TYPES)},
            "control": key,
            "status": {"enum": list(STATUSES)},
            "model_version": {"type": "integer", "minimum": 0},
            "analysis_slice": {"enum": ["all", "holdout"]},
            "variants": {"type": "array", "items": _ref("VariantStats")},
            "srm": _nullable(_obj({
                "p_value": p_value, "ok": {"type": ["boolean", "null"]},
                "expected": {"type": "object", "additionalProperties": {"type": "number"}},
                "observed": {"type": "object", "additionalProperties": {"type": "integer"}},
                "method": {"type": "string"}, "reason": reason,
            }, ("p_value", "ok", "expected", "observed", "method"), closed=False)),
            "personalisation": _nullable(_obj({
                "policy": _ref("ArmSummary"), "holdout": _ref("ArmSummary"), "control_holdout": _ref("ArmSummary"),
                "vs_holdout": _ref("Uplift"), "vs_control_holdout": _ref("Uplift"), "reason": reason,
            }, ("vs_holdout", "vs_control_holdout"), closed=False)),
            "off_policy": _nullable(_obj({
                "uniform_random": _ref("PolicyValue"),
                "variants": {"type": "object", "additionalProperties": _ref("PolicyValue")},
                "current_policy": _ref("PolicyValue"),
                "decisions": {"type": "integer", "minimum": 0},
                "reason": reason,
            }, ("uniform_random", "variants", "current_policy"), closed=False)),
            "segments": {"type": "array", "items": _obj({
                "feature": {"type": "string"}, "level": {"type": "string"},
                "variants": {"type": "array", "items": _obj({
                    "key": key, "visitors": {"type": "integer", "minimum": 0},
                    "conversions": {"type": "integer", "minimum": 0}, "rate": _nullable(probability),
                    "mean": number_or_null, "ci": interval, "uplift": _ref("Uplift"),
                }, closed=False)},
            }, closed=False)},
            "bayesian": {"type": "object"},
            "allocation_source": {"type": ["string", "null"]},
            "warnings": {"type": "array", "items": _obj({"code": {"type": "string"}, "message": {"type": "string"}})},
            "reason": reason,
        }, ("experiment", "mode", "reward", "control", "status", "model_version", "analysis_slice", "variants",
            "srm", "personalisation", "off_policy", "segments", "warnings"), closed=False,
            description="Every statistic of the experiment (README, Statistics). Numbers that cannot be "
                        "computed are null beside a reason code; nothing is NaN."),
        "Policy": _obj({
            "experiment": key,
            "mode": {"enum": list(MODES)},
            "worker": {"type": "integer"},
            "model_version": {"type": "integer", "minimum": 0},
            "refreshed_at": {"type": "number"},
            "allocation": _nullable({"type": "object", "additionalProperties": probability}),
            "posterior": _nullable({"type": "object", "additionalProperties": _obj({
                "mean": {"type": "number"},
                "interval": {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2}})}),
            "contextual": {"type": "object", "description": "Contextual mode: average_allocation and predicted "
                           "outcome over the last 500 contexts, coefficients per variant with 95% intervals, and "
                           "the learned combinations ({segment, variant, versus, lift_pp, share, contexts, text})."},
        }, ("experiment", "mode", "worker", "model_version", "refreshed_at", "allocation", "posterior")),
        "VisitorEvents": _obj({"visitor": {"type": "string"}, "assignments": {"type": "array", "items": _obj({
            "id": {"type": "integer"}, "experiment": key, "variant": key, "context": {"type": "object"},
            "propensity": number_or_null, "holdout": {"type": "boolean"}, "model_version": {"type": ["integer", "null"]},
            "created_at": {"type": "number"}, "reward_total": {"type": "number"},
            "reward_count": {"type": "integer", "minimum": 0},
            "rewards": {"type": "array", "items": _obj({"value": {"type": "number"},
                                                        "event_id": {"type": ["string", "null"]},
                                                        "created_at": {"type": "number"}})},
        }, closed=False)}}),
        "VisitorErased": _obj({"visitor": {"type": "string"}, "erased_assignments": {"type": "integer", "minimum": 0}}),
        "Health": _obj({"status": {"const": "ok"}, "worker": {"type": "integer"}}),
        **_webhook_schemas(),
    }

    admin = [{"bearerAuth": []}]
    key_param = {"name": "key", "in": "path", "required": True, "schema": key, "example": "homepage-hero"}
    cors_headers = {name: {"schema": {"type": "string"}} for name in (
        "Access-Control-Allow-Origin", "Access-Control-Allow-Methods", "Access-Control-Allow-Headers")}

    def body(schema_name: str, example: Any = None) -> dict[str, Any]:
        content: dict[str, Any] = {"schema": _ref(schema_name)}
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
            "post": {"summary": "Create an experiment", "operationId": "create_experiment", "tags": ["admin"],
                     "security": admin, "requestBody": body("ExperimentDefinition"),
                     "responses": {"201": _json(_ref("Experiment"), "The stored experiment."),
                                   **_errors(400, 401, 409, 413, 503)}},
            "get": {"summary": "List experiments", "operationId": "list_experiments", "tags": ["admin"],
                    "security": admin,
                    "responses": {"200": _json(_ref("ExperimentList"), "Every experiment."), **_errors(401, 503)}},
        },
        "/api/v1/experiments/{key}": {
            "parameters": [key_param],
            "get": {"summary": "One experiment", "operationId": "get_experiment", "tags": ["admin"], "security": admin,
                    "responses": {"200": _json(_ref("Experiment"), "The experiment."), **_errors(401, 404, 503)}},
            "patch": {"summary": "Change status (and winner)", "operationId": "update_experiment", "tags": ["admin"],
                      "security": admin,
                      "requestBody": body("ExperimentUpdate", {"status": "stopped", "winner": "b"}),
                      "responses": {"200": _json(_ref("Experiment"), "The updated experiment."),
                                    **_errors(400, 401, 404, 413, 503)}},
        },
        "/api/v1/experiments/{key}/stats": {
            "parameters": [key_param],
            "get": {"summary": "Every statistic of the experiment", "operationId": "experiment_stats",
                    "tags": ["admin"], "security": admin,
                    "responses": {"200": _json(_ref("Stats"), "The statistics."), **_errors(401, 404, 503)}},
        },
        "/api/v1/sample-size": {
            "get": {"summary": "Visitors needed to detect a minimum effect", "operationId": "sample_size",
                    "tags": ["admin"], "security": admin,
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
                    "responses": {"200": _json({"type": "object"}, "Per rule (fixed_horizon, anytime_valid): "
                                               "visitors per variant and in total; planned_visitors to declare."),
                                  **_errors(400, 401, 503)}},
        },
        "/api/v1/experiments/{key}/policy": {
            "parameters": [key_param],
            "get": {"summary": "This worker's policy", "operationId": "policy", "tags": ["admin"], "security": admin,
                    "responses": {"200": _json(_ref("Policy"), "Model version, allocation and posterior."),
                                  **_errors(401, 404, 503)}},
        },
        "/api/v1/experiments/{key}/events.csv": {
            "parameters": [key_param],
            "get": {"summary": "Events export", "operationId": "events_csv", "tags": ["admin"], "security": admin,
                    "responses": {"200": {"description": "One row per assignment with its reward total and count.",
                                          "content": {"text/csv": {"schema": {"type": "string"}}}},
                                  **_errors(401, 404, 503)}},
        },
        "/api/v1/visitors/{visitor}": {
            "parameters": [{"name": "visitor", "in": "path", "required": True, "schema": visitor, "example": "v-42"}],
            "get": {"summary": "Everything stored about one visitor", "operationId": "export_visitor",
                    "tags": ["admin"], "security": admin,
                    "responses": {"200": _json(_ref("VisitorEvents"), "The visitor's assignments and rewards."),
                                  **_errors(400, 401, 503)}},
            "delete": {"summary": "Erase a visitor everywhere, counters included", "operationId": "erase_visitor",
                       "tags": ["admin"], "security": admin,
                       "responses": {"200": _json(_ref("VisitorErased"), "How many assignments were erased."),
                                     **_errors(400, 401, 409, 503)}},
        },
        "/api/v1/assign": {
            "post": {"summary": "Assign a visitor", "operationId": "assign", "tags": ["public"], "security": [],
                     "requestBody": body("AssignRequest", {"experiment": "homepage-hero", "visitor": "v-123",
                                                           "context": {"device": "mobile", "hour": 14}}),
                     "responses": {"200": {**_json({"oneOf": [_ref("Assignment"), _ref("BatchAssignment")]},
                                                   "One assignment, or {visitor, assignments} for `experiments`."),
                                           "headers": cors_headers},
                                   **_errors(400, 403, 404, 409, 413, 429, 503)}},
            "options": preflight("assign preflight"),
        },
        "/api/v1/reward": {
            "post": {"summary": "Report a conversion or a numeric reward", "operationId": "reward",
                     "tags": ["public"], "security": [],
                     "requestBody": body("RewardRequest", {"experiment": "homepage-hero", "visitor": "v-123",
                                                           "value": 1}),
                     "responses": {"202": {**_json(_ref("RewardResult"), "Accepted (or a duplicate, not counted)."),
                                           "headers": cors_headers},
                                   **_errors(400, 403, 404, 409, 413, 422, 429, 503)}},
            "options": preflight("reward preflight"),
        },
        **_webhook_paths(admin, body),
        "/api/v1/openapi.json": {
            "get": {"summary": "This document", "operationId": "openapi", "tags": ["meta"], "security": [],
                    "responses": {"200": _json({"type": "object"}, "The OpenAPI document.")}},
        },
        "/healthz": {
            "get": {"summary": "Health check (database)", "operationId": "healthz", "tags": ["meta"], "security": [],
                    "responses": {"200": _json(_ref("Health"), "The database answers."),
                                  "503": _error("The database does not answer (`database_unavailable`).")}},
        },
    }

    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Lever",
            "version": API_VERSION,
            "description": "Self-hosted experimentation and bandit optimisation. Errors are always "
                           '`{"error": {"code", "message"}}`. Admin endpoints need '
                           "`Authorization: Bearer <LEVER_ADMIN_TOKEN>`; assign and reward are public and answer "
                           "CORS preflights.",
        },
        "tags": [{"name": "admin"}, {"name": "public"}, {"name": "meta"}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "responses": {str(status): _error(text) for status, text in _ERROR_RESPONSES.items()},
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer",
                                               "description": "LEVER_ADMIN_TOKEN"}},
        },
    }
