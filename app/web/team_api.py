"""The team API: API keys, users (accounts and invitations) and the audit log.

``POST /api/v1/api-keys`` answers the key's secret once (``lever_sk_…``); lists never show
it. ``DELETE`` revokes at once: this worker forgets it immediately, every other worker and
instance within ``accounts.KEY_CACHE_TTL_S``.
"""
from __future__ import annotations

import time

from flask import Blueprint, jsonify, request

from ..domain.errors import ValidationError
from ..service import accounts, audit
from ..service.permissions import ACCOUNTS_MANAGE, AUDIT_READ, KEYS_MANAGE
from .auth import current_actor, key_resolver, require
from .db import get_storage
from .http import json_body
from .team_pages import invitation_url

bp = Blueprint("team_api", __name__)


def _object(allowed: frozenset[str], required: frozenset[str] = frozenset()) -> dict:
    body = json_body()
    if not isinstance(body, dict):
        raise ValidationError("the body must be a JSON object")
    unknown, missing = set(body) - allowed, required - set(body)
    if unknown:
        raise ValidationError(f"unknown field(s): {', '.join(sorted(unknown))}")
    if missing:
        raise ValidationError(f"missing field(s): {', '.join(sorted(missing))}")
    return body


# -- API keys ------------------------------------------------------------------------------

@bp.post("/api-keys")
@require(KEYS_MANAGE)
def create_api_key():
    body = _object(frozenset({"name", "role"}), frozenset({"name", "role"}))
    key, secret = accounts.create_api_key(get_storage(), body["name"], body["role"], current_actor(), time.time())
    return jsonify({**key.to_dict(), "secret": secret}), 201


@bp.get("/api-keys")
@require(KEYS_MANAGE)
def list_api_keys():
    return jsonify({"api_keys": [key.to_dict() for key in get_storage().list_api_keys()]})


@bp.delete("/api-keys/<int:key_id>")
@require(KEYS_MANAGE)
def revoke_api_key(key_id: int):
    key = accounts.revoke_api_key(get_storage(), key_id, current_actor(), time.time())
    key_resolver().forget()
    return jsonify(key.to_dict())


# -- users -----------------------------------------------------------------------------------

@bp.get("/users")
@require(ACCOUNTS_MANAGE)
def list_users():
    storage = get_storage()
    now = time.time()
    return jsonify({"users": [a.to_dict() for a in storage.list_accounts()],
                    "invitations": [i.to_dict() for i in storage.list_invitations() if i.pending(now)]})


@bp.post("/users/invitations")
@require(ACCOUNTS_MANAGE)
def invite_user():
    body = _object(frozenset({"email", "role"}), frozenset({"email", "role"}))
    invitation, token = accounts.invite(get_storage(), body["email"], body["role"], current_actor(), time.time())
    return jsonify({**invitation.to_dict(), "url": invitation_url(token)}), 201


@bp.delete("/users/invitations/<int:invitation_id>")
@require(ACCOUNTS_MANAGE)
def revoke_invitation(invitation_id: int):
    invitation = accounts.revoke_invitation(get_storage(), invitation_id, current_actor(), time.time())
    return jsonify(invitation.to_dict())


@bp.patch("/users/<int:account_id>")
@require(ACCOUNTS_MANAGE)
def update_user(account_id: int):
    body = _object(frozenset({"role", "active"}))
    if not body:
        raise ValidationError("PATCH takes role and/or active")
    if "active" in body and not isinstance(body["active"], bool):
        raise ValidationError("active must be true or false")
    storage, actor, now = get_storage(), current_actor(), time.time()
    account = accounts.account_or_404(storage, account_id)
    if "role" in body and body["role"] != account.role:
        account = accounts.change_role(storage, account_id, body["role"], actor, now)
    if "active" in body and body["active"] != account.active:
        account = accounts.set_active(storage, account_id, body["active"], actor, now)
    return jsonify(account.to_dict())


# -- the audit log --------------------------------------------------------------------------

def _int_arg(name: str, default: int | None, low: int, high: int) -> int | None:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValidationError(f"{name} must be an integer") from None
    if not low <= value <= high:
        raise ValidationError(f"{name} must be between {low} and {high}")
    return value


@bp.get("/audit")
@require(AUDIT_READ)
def audit_log():
    """Entries newest first; ``before`` (an entry id) pages back, ``next_before`` is the next page's."""
    limit = _int_arg("limit", 50, 1, audit.MAX_PAGE)
    before = _int_arg("before", None, 1, 2 ** 62)
    entries = audit.history(get_storage(), request.args.get("experiment"), before, limit)
    return jsonify({"entries": [e.to_dict() for e in entries],
                    "next_before": entries[-1].id if len(entries) == limit else None})
