"""The admin API: experiments, their statistics, policy and event export, visitors
(data-subject access and erasure). Every view needs the admin bearer token."""
from __future__ import annotations

import os
import time

from flask import Blueprint, Response, jsonify, request, stream_with_context

from ..domain.errors import NotFound, ValidationError
from ..domain.experiments import parse_experiment
from ..domain.requests import visitor_id
from ..service import exports
from ..service.analysis import experiment_stats
from ..service.experiments import create_experiment, experiment_or_404, set_status
from ..service.planning import PlanRequest, plan
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
    if not isinstance(body, dict) or not body or set(body) - {"status", "winner"}:
        raise ValidationError("PATCH takes status and, with status stopped, winner")
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
    return jsonify(experiment_stats(fresh_entry(key), services().storage))


def describe_policy(entry: PolicyEntry) -> dict:
    return {"experiment": entry.experiment.key, "mode": entry.experiment.mode, "worker": os.getpid(),
            **entry.describe(services().storage)}


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


# -- planning ----------------------------------------------------------------------------------

_PLAN_FIELDS = {"mde": float, "baseline_rate": float, "baseline_mean": float, "sd": float, "variants": int,
                "alpha": float, "power": float}


def plan_request(args) -> PlanRequest:
    """Query parameters of the sample-size calculator (shared by the API and the create form)."""
    values: dict = {}
    for name, kind in _PLAN_FIELDS.items():
        raw = args.get(name, "").strip()
        if not raw:
            continue
        try:
            value = kind(raw)
        except ValueError:
            raise ValidationError(f"{name} must be a number") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise ValidationError(f"{name} must be a finite number")
        values[name] = value
    if "mde" not in values:
        raise ValidationError("mde (the minimum detectable effect) is required")
    relative = args.get("relative", "true").strip().lower() not in ("false", "0", "no")
    checks = (("mde", values["mde"] > 0), ("variants", 2 <= values.get("variants", 2) <= 50),
              ("alpha", 0 < values.get("alpha", 0.05) < 0.5), ("power", 0.5 <= values.get("power", 0.8) < 1),
              ("baseline_rate", 0 < values.get("baseline_rate", 0.5) < 1))
    for name, ok in checks:
        if not ok:
            raise ValidationError(f"{name} is out of range (see the API documentation)")
    return PlanRequest(relative=relative, **values)


@bp.get("/sample-size")
@admin_required
def sample_size():
    """Visitors needed to detect a minimum effect, fixed-horizon and always-valid."""
    return jsonify(plan(plan_request(request.args)))


# -- visitors (privacy) ------------------------------------------------------------------------

def _stored_visitor(visitor: str) -> str:
    return services().visitor_ids.stored(visitor_id(visitor, limits()))


@bp.get("/visitors/<path:visitor>")
@admin_required
def export_visitor(visitor: str):
    """Everything Lever stores about one visitor (data-subject access)."""
    return jsonify({"visitor": visitor, "assignments": services().storage.visitor_events(_stored_visitor(visitor))})


@bp.delete("/visitors/<path:visitor>")
@admin_required
def erase_visitor(visitor: str):
    """Right to be forgotten: erase the visitor everywhere, counters included."""
    storage = services().storage
    erased = storage.erase_visitor(_stored_visitor(visitor), model_removal(storage))
    return jsonify({"visitor": visitor, "erased_assignments": erased})
