"""The webhook part of the OpenAPI document: subscriptions and their delivery logs."""
from __future__ import annotations

from typing import Any, Callable

from ..domain.webhooks import (
    EVENT_TYPES,
    FORMATS,
    MAX_SECRET_CHARS,
    MAX_URL_CHARS,
    MIN_SECRET_CHARS,
    URL_SCHEMES,
)
from ..service.permissions import SETTINGS_MANAGE
from ..service.webhooks import DELIVERY_LOG_LIMIT, MAX_WEBHOOK_ID
from ..storage.webhooks import DELIVERED, FAILED, PENDING
from .openapi_schema import errors, json, obj, ref
from .openapi_team import permission


def webhook_schemas() -> dict[str, Any]:
    event_type = {"enum": list(EVENT_TYPES)}
    webhook = obj({
        "id": {"type": "integer"},
        "url": {"type": "string"},
        "events": {"type": "array", "items": event_type, "description": "Sorted."},
        "format": {"enum": list(FORMATS)},
        "secret_prefix": {"type": "string", "description": "The secret's first characters; never the secret."},
        "created_at": {"type": "number"},
    })
    return {
        "WebhookDefinition": {
            **obj({
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
        "WebhookList": obj({"webhooks": {"type": "array", "items": ref("Webhook")}}),
        "WebhookDeleted": obj({"id": {"type": "integer"}, "deleted": {"const": True}}),
        "DeliveryLog": obj({"webhook": {"type": "integer"}, "deliveries": {
            "type": "array", "maxItems": DELIVERY_LOG_LIMIT, "description": "Newest first.", "items": obj({
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


def webhook_paths(admin: list, body: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
    webhook_id = {"name": "webhook_id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 0, "maximum": MAX_WEBHOOK_ID}, "example": 1}
    return {
        "/api/v1/webhooks": {
            "post": {"summary": "Register a webhook", "operationId": "create_webhook", **permission(SETTINGS_MANAGE), "tags": ["admin"],
                     "security": admin, "requestBody": body("WebhookDefinition"),
                     "responses": {"201": json(ref("Webhook"), "The webhook (the secret only as a prefix)."),
                                   **errors(400, 401, 413, 503)}},
            "get": {"summary": "List webhooks", "operationId": "list_webhooks", **permission(SETTINGS_MANAGE), "tags": ["admin"], "security": admin,
                    "responses": {"200": json(ref("WebhookList"), "Every webhook."), **errors(401, 503)}},
        },
        "/api/v1/webhooks/{webhook_id}": {
            "parameters": [webhook_id],
            "delete": {"summary": "Delete a webhook (pending deliveries stop)", "operationId": "delete_webhook", **permission(SETTINGS_MANAGE),
                       "tags": ["admin"], "security": admin,
                       "responses": {"200": json(ref("WebhookDeleted"), "Deleted, with its delivery log."),
                                     **errors(401, 404, 503)}},
        },
        "/api/v1/webhooks/{webhook_id}/deliveries": {
            "parameters": [webhook_id],
            "get": {"summary": "A webhook's delivery log", "operationId": "webhook_deliveries", **permission(SETTINGS_MANAGE), "tags": ["admin"],
                    "security": admin,
                    "responses": {"200": json(ref("DeliveryLog"), "Status, attempts and last error per delivery."),
                                  **errors(401, 404, 503)}},
        },
    }
