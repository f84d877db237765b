"""The admin API: experiments, their statistics, policy and event export, visitors
(data-subject access and erasure). Every view needs the admin bearer token."""
from __future__ import annotations

import os
import time

from flask import Blueprint, Response, jsonify, stream_with_context

from ..domain.errors import NotFound, ValidationError
from ..domain.experiments import parse_experiment
from ..domain.requests import visitor_id
from ..service import exports
from ..service.analysis import experiment_stats
from ..service.experiments import create_experiment, experiment_or_404, set_status
from ..service.metrics import update_experiment_metrics
from ..service.policy_cache import PolicyEntry
from ..service.privacy import model_removal
from .auth import admin_required
from .http import json_body, limits, services

bp = Blueprint("admin", __name__)


# -- experiments -------------------------------------------------------------------------

@bp.post("/experiments")
@admin_required
def create():
    experiment = create_experiment(services().storage, parse_experiment(json_body()), time.time())
    return jsonify(experiment.to_dict()), 201


@bp.get("/experiments")
@admin_required
def list_experiments():
    return jsonify({"experiments": [e.to_dict() for e in services().storage.list_experiments()]})


@bp.get("/experiments/<key>")
@admin_required
def get_experiment(key: str):
    return jsonify(experiment_or_404(services().storage, key).to_dict())


@bp.patch("/experiments/<key>")
@admin_required
def update_experiment(key: str):
    svc = services()
    experiment = experiment_or_404(svc.storage, key)
    body = json_body()
    if not isinstance(body, dict) or not body or set(body) - {"status", "winner", "metrics"}:
        raise ValidationError("PATCH takes status and, with status stopped, winner; or metrics")
    if "metrics" in body:
        if set(body) != {"metrics"}:
            raise ValidationError("PATCH metrics on its own (secondary and guardrails; the primary stays)")
        updated = update_experiment_metrics(svc.storage, svc.cache, experiment, body["metrics"], time.time())
        return jsonify(updated.to_dict())
    updated = set_status(svc.storage, svc.cache, experiment, body.get("status", experiment.status),
                         body.get("winner"), time.time())
    return jsonify(updated.to_dict())


def fresh_entry(key: str, fresh: bool = True) -> PolicyEntry:
    svc = services()
    entry = svc.cache.get(svc.storage, key, fresh=fresh)
    if entry is None:
        raise NotFound(f"no experiment {key!r}", code="experiment_not_found")
    return entry


@bp.get("/experiments/<key>/stats")
@admin_required
def stats(key: str):
    """Every statistic of the experiment (see README, "Statistics")."""
    svc = services()
    return jsonify(experiment_stats(fresh_entry(key), svc.storage, svc.cache))


def describe_policy(entry: PolicyEntry) -> dict:
    return {"experiment": entry.experiment.key, "mode": entry.experiment.mode, "worker": os.getpid(),
            **entry.describe()}


@bp.get("/experiments/<key>/policy")
@admin_required
def policy(key: str):
    """This worker's current view of the experiment's policy ("is it learning?")."""
    return jsonify(describe_policy(fresh_entry(key, fresh=False)))


def events_csv_response(key: str) -> Response:
    storage = services().storage
    experiment = experiment_or_404(storage, key)
    return Response(stream_with_context(exports.events_csv(storage, experiment)), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{key}-events.csv"'})


@bp.get("/experiments/<key>/events.csv")
@admin_required
def events_csv(key: str):
    return events_csv_response(key)


# -- visitors (privacy) ------------------------------------------------------------------------

def _stored_visitor(visitor: str) -> str:
    return services().visitor_ids.stored(visitor_id(visitor, limits()))


@bp.get("/visitors/<path:visitor>")
@admin_required
def export_visitor(visitor: str):
    """Everything Lever stores about one visitor (data-subject access)."""
    storage, stored = services().storage, _stored_visitor(visitor)
    return jsonify({"visitor": visitor, "assignments": storage.visitor_events(stored),
                    "events": storage.visitor_event_log(stored)})


@bp.delete("/visitors/<path:visitor>")
@admin_required
def erase_visitor(visitor: str):
    """Right to be forgotten: erase the visitor everywhere, counters included."""
    storage = services().storage
    erased = storage.erase_visitor(_stored_visitor(visitor), model_removal(storage))
    return jsonify({"visitor": visitor, "erased_assignments": erased})
