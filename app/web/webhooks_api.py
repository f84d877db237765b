"""The webhooks API (admin): register, list, delete, and each webhook's delivery log.

Nothing here sends anything: deliveries are rows a worker process sends
(``flask --app app deliver``, see ``app.service.webhooks``).
"""
from __future__ import annotations

import time

from flask import Blueprint, current_app, jsonify

from ..domain.webhooks import parse_allowed_hosts, parse_webhook
from ..service import webhooks
from ..service.permissions import SETTINGS_MANAGE
from .auth import current_actor, require
from .http import json_body, services

bp = Blueprint("webhooks", __name__)


def allowed_hosts() -> frozenset[str]:
    return parse_allowed_hosts(current_app.config["LEVER_WEBHOOK_ALLOWED_HOSTS"])


@bp.post("/webhooks")
@require(SETTINGS_MANAGE)
def create():
    spec = parse_webhook(json_body(), allowed_hosts())
    webhook = webhooks.create_webhook(services().storage, spec, time.time(), current_actor())
    return jsonify(webhooks.webhook_json(webhook)), 201


@bp.get("/webhooks")
@require(SETTINGS_MANAGE)
def list_webhooks():
    return jsonify({"webhooks": [webhooks.webhook_json(w) for w in services().storage.list_webhooks()]})


@bp.delete("/webhooks/<webhook_id>")
@require(SETTINGS_MANAGE)
def delete(webhook_id: str):
    number = webhooks.webhook_id_of(webhook_id)
    webhooks.delete_webhook(services().storage, number, current_actor(), time.time())
    return jsonify({"id": number, "deleted": True})


@bp.get("/webhooks/<webhook_id>/deliveries")
@require(SETTINGS_MANAGE)
def deliveries(webhook_id: str):
    """Newest first, at most ``DELIVERY_LOG_LIMIT``."""
    number = webhooks.webhook_id_of(webhook_id)
    return jsonify({"webhook": number, "deliveries": webhooks.delivery_log(services().storage, number)})
