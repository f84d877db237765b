"""The team part of the OpenAPI document: API keys, users and invitations, the audit log.

Merged into ``openapi.build_spec``. Every admin operation of the document states the
permission its view declares (``x-lever-permission``; ``tests/test_teams_roles.py`` checks
they agree with ``auth.require``), and the roles holding it (``x-lever-roles``).
"""
from __future__ import annotations

from typing import Any, Callable

from ..domain.audit import ACTIONS
from ..service.accounts import EMAIL_CHARS, KEY_NAME_CHARS, KEY_PREFIX, MAX_ID
from ..service.audit import MAX_PAGE
from ..service.permissions import (
    ACCOUNT_ROLES,
    ACCOUNTS_MANAGE,
    AUDIT_READ,
    KEY_ROLES,
    KEYS_MANAGE,
    roles_with,
)

Helpers = dict[str, Callable[..., Any]]


def permission(name: str) -> dict[str, Any]:
    """The operation fields that state who may call it."""
    return {"x-lever-permission": name, "x-lever-roles": list(roles_with(name))}


def team_document(h: Helpers) -> tuple[dict[str, Any], dict[str, Any]]:
    """(schemas, paths) of the team API; ``h`` holds the document's helpers (obj, ref, json, errors, body)."""
    obj, ref, json, errors, body = h["obj"], h["ref"], h["json"], h["errors"], h["body"]
    timestamp = {"type": "number", "description": "Unix time, seconds."}
    maybe_time = {"type": ["number", "null"]}
    actor = {"type": "string", "description": "An account's email, `key:<name>`, `admin-token`, `cli` or `system`."}
    change = {"type": ["object", "null"]}
    schemas = {
        "ApiKeyRequest": obj({"name": {"type": "string", "minLength": 1, "maxLength": KEY_NAME_CHARS},
                              "role": {"enum": list(KEY_ROLES)}}),
        "ApiKey": obj({
            "id": {"type": "integer"}, "name": {"type": "string"}, "role": {"enum": list(KEY_ROLES)},
            "prefix": {"type": "string", "description": f"`{KEY_PREFIX}` and the secret's first characters."},
            "created_by": actor, "created_at": timestamp, "last_used_at": {
                **maybe_time, "description": "Updated at most once a minute."},
            "revoked_at": maybe_time}),
        "ApiKeyList": obj({"api_keys": {"type": "array", "items": ref("ApiKey")}}),
        "User": obj({"id": {"type": "integer"}, "email": {"type": "string"}, "role": {"enum": list(ACCOUNT_ROLES)},
                     "active": {"type": "boolean"}, "created_at": timestamp, "updated_at": timestamp,
                     "last_login_at": maybe_time}),
        "Invitation": obj({"id": {"type": "integer"}, "email": {"type": "string"}, "role": {"enum": list(ACCOUNT_ROLES)},
                           "created_by": actor, "created_at": timestamp, "expires_at": timestamp,
                           "accepted_at": maybe_time}),
        "UserList": obj({"users": {"type": "array", "items": ref("User")},
                         "invitations": {"type": "array", "items": ref("Invitation"),
                                         "description": "Pending invitations (not used, not expired)."}}),
        "InvitationRequest": obj({"email": {"type": "string", "minLength": 3, "maxLength": EMAIL_CHARS},
                                  "role": {"enum": list(ACCOUNT_ROLES)}}),
        "UserUpdate": {**obj({"role": {"enum": list(ACCOUNT_ROLES)}, "active": {"type": "boolean"}}, ()),
                       "minProperties": 1,
                       "description": "Deactivating ends every session of the account at once."},
        "AuditEntry": obj({"id": {"type": "integer"}, "at": timestamp, "actor": actor,
                           "action": {"enum": sorted(ACTIONS)},
                           "experiment": {"type": ["string", "null"]}, "target": {"type": ["string", "null"]},
                           "before": change, "after": change}),
        "AuditPage": obj({"entries": {"type": "array", "items": ref("AuditEntry")},
                          "next_before": {"type": ["integer", "null"],
                                          "description": "Pass as `before` for the next (older) page."}}),
    }
    security = [{"bearerAuth": []}]

    def op(summary: str, operation_id: str, needs: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
        return {"summary": summary, "operationId": operation_id, "tags": ["admin", "team"], "security": security,
                **permission(needs), **extra, "responses": responses}

    id_param = {"in": "path", "required": True, "schema": {"type": "integer", "minimum": 0},
                "description": f"Ids past {MAX_ID} are no row's (404)."}
    paths = {
        "/api/v1/api-keys": {
            "post": op("Create an API key (the secret is in this answer only)", "create_api_key", KEYS_MANAGE,
                       {"201": json(obj({**schemas["ApiKey"]["properties"], "secret": {
                           "type": "string", "pattern": f"^{KEY_PREFIX}",
                           "description": "Send as `Authorization: Bearer <secret>`; never shown again."}}),
                           "The key and its secret."), **errors(400, 401, 403, 413, 503)},
                       requestBody=body("ApiKeyRequest", {"name": "checkout-backend", "role": "ingest"})),
            "get": op("List API keys (never their secrets)", "list_api_keys", KEYS_MANAGE,
                      {"200": json(ref("ApiKeyList"), "Every key, revoked ones included."), **errors(401, 403, 503)}),
        },
        "/api/v1/api-keys/{key_id}": {
            "parameters": [{"name": "key_id", **id_param}],
            "delete": op("Revoke an API key (every worker refuses it within a second)", "revoke_api_key",
                         KEYS_MANAGE, {"200": json(ref("ApiKey"), "The revoked key."),
                                       **errors(401, 403, 404, 503)}),
        },
        "/api/v1/users": {
            "get": op("List accounts and pending invitations", "list_users", ACCOUNTS_MANAGE,
                      {"200": json(ref("UserList"), "Accounts and invitations."), **errors(401, 403, 503)}),
        },
        "/api/v1/users/invitations": {
            "post": op("Invite a person: a one-time link that expires", "invite_user", ACCOUNTS_MANAGE,
                       {"201": json(obj({**schemas["Invitation"]["properties"], "url": {
                           "type": "string", "description": "The one-time link to send (shown once)."}}),
                           "The invitation and its link."), **errors(400, 401, 403, 409, 413, 503)},
                       requestBody=body("InvitationRequest", {"email": "ana@example.com", "role": "viewer"})),
        },
        "/api/v1/users/invitations/{invitation_id}": {
            "parameters": [{"name": "invitation_id", **id_param}],
            "delete": op("Revoke a pending invitation (its link stops working at once)", "revoke_invitation",
                         ACCOUNTS_MANAGE, {"200": json(ref("Invitation"), "The revoked invitation."),
                                           **errors(401, 403, 404, 410, 503)}),
        },
        "/api/v1/users/{account_id}": {
            "parameters": [{"name": "account_id", **id_param}],
            "patch": op("Change an account's role or deactivate it", "update_user", ACCOUNTS_MANAGE,
                        {"200": json(ref("User"), "The account."), **errors(400, 401, 403, 404, 413, 503)},
                        requestBody=body("UserUpdate", {"role": "editor"})),
        },
        "/api/v1/audit": {
            "get": op("The audit log, newest first", "audit_log", AUDIT_READ,
                      {"200": json(ref("AuditPage"), "One page of entries."), **errors(400, 401, 403, 503)},
                      parameters=[
                          {"name": "experiment", "in": "query", "schema": {"type": "string"},
                           "description": "Only this experiment's entries."},
                          {"name": "before", "in": "query", "schema": {"type": "integer", "minimum": 1,
                                                                       "maximum": 2 ** 62},
                           "description": "Only entries with a smaller id (the previous page's `next_before`)."},
                          {"name": "limit", "in": "query",
                           "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 50}},
                      ]),
        },
    }
    return schemas, paths
