"""The metric catalogue: ``POST``/``GET /api/v1/metrics``, ``GET``/``PATCH /api/v1/metrics/<key>``
(editors write, viewers read). A metric is defined once and used by many experiments (``app.domain.metrics``)."""
from __future__ import annotations

import time

from flask import Blueprint, jsonify

from ..domain.metrics import parse_metric
from ..service import metrics
from ..service.permissions import METRICS_WRITE, REPORTS_READ
from .auth import current_actor, require
from .http import json_body, services

bp = Blueprint("metrics", __name__)


@bp.post("/metrics")
@require(METRICS_WRITE)
def create():
    definition = metrics.create_metric(services().storage, parse_metric(json_body()), time.time(), current_actor())
    return jsonify(definition.to_dict()), 201


@bp.get("/metrics")
@require(REPORTS_READ)
def list_metrics():
    return jsonify({"metrics": [d.to_dict() for d in services().storage.list_metrics()]})


@bp.get("/metrics/<key>")
@require(REPORTS_READ)
def get_metric(key: str):
    return jsonify(metrics.metric_or_404(services().storage, key).to_dict())


@bp.patch("/metrics/<key>")
@require(METRICS_WRITE)
def update_metric(key: str):
    return jsonify(metrics.update_metric(services().storage, key, json_body(), time.time(),
                                         current_actor()).to_dict())
