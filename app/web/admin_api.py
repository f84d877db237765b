"""The admin API: experiments, their statistics, policy and event export, visitors
(data-subject access and erasure). Every view declares the permission it needs
(``app.web.auth.require``; the role table is ``app.service.permissions``)."""
from __future__ import annotations

import os
import time

from flask import Blueprint, Response, jsonify, request, stream_with_context

from ..domain.errors import NotFound, ValidationError
from ..domain.experiments import parse_experiment
from ..domain.requests import visitor_id
from ..service import exports, privacy
from ..service.analysis import experiment_stats
from ..service.experiments import create_experiment, experiment_or_404, set_status
from ..service.metrics import update_experiment_metrics
from ..service.permissions import (
    EVENTS_EXPORT,
    EXPERIMENTS_WRITE,
    REPORTS_READ,
    VISITORS_MANAGE,
)
from ..service.planning import PlanRequest, plan
from ..service.policy_cache import PolicyEntry
from .auth import current_actor, require
from .http import json_body, limits, services

bp = Blueprint("admin", __name__)


# -- experiments -------------------------------------------------------------------------

@bp.post("/experiments")
@require(EXPERIMENTS_WRITE)
def create():
    experiment = create_experiment(services().storage, parse_experiment(json_body()), time.time(),
                                   actor=current_actor())
    return jsonify(experiment.to_dict()), 201


@bp.get("/experiments")
@require(REPORTS_READ)
def list_experiments():
    return jsonify({"experiments": [e.to_dict() for e in services().storage.list_experiments()]})


@bp.get("/experiments/<key>")
@require(REPORTS_READ)
def get_experiment(key: str):
    return jsonify(experiment_or_404(services().storage, key).to_dict())


@bp.patch("/experiments/<key>")
@require(EXPERIMENTS_WRITE)
def update_experiment(key: str):
    svc = services()
    experiment = experiment_or_404(svc.storage, key)
    body = json_body()
    if not isinstance(body, dict) or not body or set(body) - {"status", "winner", "metrics"}:
        raise ValidationError("PATCH takes status and, with status stopped, winner; or metrics")
    if "metrics" in body:
        if set(body) != {"metrics"}:
            raise ValidationError("PATCH metrics on its own (secondary and guardrails; the primary stays)")
        updated = update_experiment_metrics(svc.storage, svc.cache, experiment, body["metrics"], time.time(),
                                            current_actor())
        return jsonify(updated.to_dict())
    updated = set_status(svc.storage, svc.cache, experiment, body.get("status", experiment.status),
                         body.get("winner"), time.time(), actor=current_actor())
    return jsonify(updated.to_dict())


def fresh_entry(key: str, fresh: bool = True) -> PolicyEntry:
    svc = services()
    entry = svc.cache.get(svc.storage, key, fresh=fresh)
    if entry is None:
        raise NotFound(f"no experiment {key!r}", code="experiment_not_found")
    return entry


@bp.get("/experiments/<key>/stats")
@require(REPORTS_READ)
def stats(key: str):
    """Every statistic of the experiment (see README, "Statistics")."""
    svc = services()
    return jsonify(experiment_stats(fresh_entry(key), svc.storage, svc.cache))


def describe_policy(entry: PolicyEntry) -> dict:
    return {"experiment": entry.experiment.key, "mode": entry.experiment.mode, "worker": os.getpid(),
            **entry.describe(services().storage)}


@bp.get("/experiments/<key>/policy")
@require(REPORTS_READ)
def policy(key: str):
    """This worker's current view of the experiment's policy ("is it learning?")."""
    return jsonify(describe_policy(fresh_entry(key, fresh=False)))


def events_csv_response(key: str) -> Response:
    storage = services().storage
    experiment = experiment_or_404(storage, key)
    return Response(stream_with_context(exports.events_csv(storage, experiment)), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{key}-events.csv"'})


@bp.get("/experiments/<key>/events.csv")
@require(EVENTS_EXPORT)
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
@require(REPORTS_READ)
def sample_size():
    """Visitors needed to detect a minimum effect, fixed-horizon and always-valid."""
    return jsonify(plan(plan_request(request.args)))


# -- visitors (privacy) ------------------------------------------------------------------------

def _stored_visitor(visitor: str) -> str:
    return services().visitor_ids.stored(visitor_id(visitor, limits()))


@bp.get("/visitors/<path:visitor>")
@require(VISITORS_MANAGE)
def export_visitor(visitor: str):
    """Everything Lever stores about one visitor (data-subject access)."""
    storage, stored = services().storage, _stored_visitor(visitor)
    return jsonify({"visitor": visitor, "assignments": storage.visitor_events(stored),
                    "events": storage.visitor_event_log(stored)})


@bp.delete("/visitors/<path:visitor>")
@require(VISITORS_MANAGE)
def erase_visitor(visitor: str):
    """Right to be forgotten: erase the visitor everywhere, counters included."""
    erased = privacy.erase_visitor(services().storage, _stored_visitor(visitor), current_actor(), time.time())
    return jsonify({"visitor": visitor, "erased_assignments": erased})
