"""HTTP API v1: experiments (admin), assign and reward (public, CORS), events export."""
from __future__ import annotations

import csv
import io
import json
import time
from typing import Any, Iterator

from flask import Blueprint, Response, current_app, jsonify, request, stream_with_context

from . import decisions
from .auth import admin_required
from .errors import Conflict, LeverError, NotFound, ValidationError
from .experiments import STATUSES, Experiment, parse_experiment
from .inputs import Limits, parse_assign, parse_reward
from .storage import DuplicateKey, get_storage

bp = Blueprint("api", __name__)

PUBLIC_ENDPOINTS = {"api.assign", "api.reward"}


def _json_body() -> Any:
    # sendBeacon posts text/plain, so the body is parsed as JSON whatever its content type.
    # Refused like malformed JSON: nesting deeper than the parser's recursion limit and lone
    # surrogates ("\ud800": no UTF-8 form, storage cannot encode them). NaN and Infinity parse,
    # and the field validators refuse them by name.
    data = request.get_data()
    try:
        body = json.loads(data)
        if b"\\u" in data or not data.isascii():  # the only ways a lone surrogate gets in: an
            # escape, or raw in a UTF-16/32 body (json decodes those with surrogatepass)
            json.dumps(body, ensure_ascii=False).encode()
    except (ValueError, RecursionError):
        raise ValidationError("the body must be valid JSON", code="invalid_json") from None
    return body


def _limits() -> Limits:
    return Limits.from_config(current_app.config)


def _info() -> decisions.RequestInfo:
    return decisions.RequestInfo(now=time.time(), user_agent=request.headers.get("User-Agent", "")[:512],
                                 origin=request.headers.get("Origin"))


def _check_origin(experiment: Experiment) -> None:
    origin = request.headers.get("Origin")
    if origin and experiment.allowed_origins and origin.rstrip("/") not in experiment.allowed_origins:
        raise LeverError(f"origin {origin} is not allowed for experiment {experiment.key}",
                         code="origin_not_allowed", status=403)


_CORS_HEADERS = (("Access-Control-Allow-Methods", "POST, OPTIONS"), ("Access-Control-Allow-Headers", "Content-Type"),
                 ("Access-Control-Max-Age", "86400"))


@bp.after_request
def _cors(response: Response) -> Response:
    """Public endpoints may be called from any page; admin endpoints never get CORS headers."""
    if request.endpoint in PUBLIC_ENDPOINTS:
        headers = response.headers
        headers["Access-Control-Allow-Origin"] = request.headers.get("Origin") or "*"
        headers.extend(_CORS_HEADERS)  # none of them is set before: append, no search
        headers["Vary"] = "Origin"
    return response


# -- experiments (admin) ---------------------------------------------------------------

@bp.post("/experiments")
@admin_required
def create_experiment():
    spec = parse_experiment(_json_body())
    try:
        experiment = get_storage().create_experiment(spec, time.time())
    except DuplicateKey:
        raise Conflict(f"experiment {spec.key!r} exists already", code="duplicate_key") from None
    return jsonify(experiment.to_dict()), 201


@bp.get("/experiments")
@admin_required
def list_experiments():
    return jsonify({"experiments": [e.to_dict() for e in get_storage().list_experiments()]})


def _experiment_or_404(key: str) -> Experiment:
    experiment = get_storage().get_experiment(key)
    if experiment is None:
        raise NotFound(f"no experiment {key!r}", code="experiment_not_found")
    return experiment


@bp.get("/experiments/<key>")
@admin_required
def get_experiment(key: str):
    return jsonify(_experiment_or_404(key).to_dict())


@bp.patch("/experiments/<key>")
@admin_required
def update_experiment(key: str):
    experiment = _experiment_or_404(key)
    body = _json_body()
    if not isinstance(body, dict) or not body or set(body) - {"status", "winner"}:
        raise ValidationError("PATCH takes status and, with status stopped, winner")
    status = body.get("status", experiment.status)
    winner = body.get("winner")
    if status not in STATUSES:
        raise ValidationError(f"status must be one of {', '.join(STATUSES)}")
    if winner is not None and (status != "stopped" or winner not in experiment.variant_keys):
        raise ValidationError("winner must be a variant key and goes with status stopped")
    updated = get_storage().set_status(key, status, winner, time.time())
    current_app.extensions["lever.learning"].invalidate(key)
    return jsonify(updated.to_dict())


# -- assign and reward (public) -----------------------------------------------------------

@bp.route("/assign", methods=["POST", "OPTIONS"])
def assign():
    if request.method == "OPTIONS":
        return Response(status=204)
    parsed = parse_assign(_json_body(), _limits())
    results = decisions.assign(
        parsed, _info(), get_storage(), current_app.extensions["lever.learning"],
        current_app.extensions["lever.signer"], current_app.extensions["lever.rng"],
        current_app.extensions["lever.visitor_ids"], _check_origin,
    )
    if parsed.batched:
        return jsonify({"visitor": parsed.visitor, "assignments": results})
    return jsonify(results[0])


@bp.route("/reward", methods=["POST", "OPTIONS"])
def reward():
    if request.method == "OPTIONS":
        return Response(status=204)
    parsed = parse_reward(_json_body(), _limits())
    result = decisions.reward(parsed, _info(), get_storage(), current_app.extensions["lever.learning"],
                              current_app.extensions["lever.signer"], current_app.extensions["lever.visitor_ids"],
                              _check_origin)
    return jsonify(result), 202


# -- privacy (admin) ---------------------------------------------------------------------------

def _visitor_param(visitor: str) -> str:
    from .inputs import visitor_id

    return current_app.extensions["lever.visitor_ids"].stored(visitor_id(visitor, _limits()))


@bp.get("/visitors/<path:visitor>")
@admin_required
def export_visitor(visitor: str):
    """Everything Lever stores about one visitor (data-subject access)."""
    events = get_storage().visitor_events(_visitor_param(visitor))
    return jsonify({"visitor": visitor, "assignments": events})


@bp.delete("/visitors/<path:visitor>")
@admin_required
def erase_visitor(visitor: str):
    """Right to be forgotten: erase the visitor everywhere, counters included."""
    from .privacy import model_removal

    storage = get_storage()
    erased = storage.erase_visitor(_visitor_param(visitor), model_removal(storage))
    return jsonify({"visitor": visitor, "erased_assignments": erased})


# -- exports (admin) -------------------------------------------------------------------------

EVENT_COLUMNS = ("id", "visitor", "variant", "context", "propensity", "holdout", "model_version", "created_at",
                 "reward_total", "reward_count")


@bp.get("/experiments/<key>/events.csv")
@admin_required
def events_csv(key: str):
    experiment = _experiment_or_404(key)
    storage = get_storage()

    def rows() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(EVENT_COLUMNS)
        for event in storage.iter_events(experiment.id):
            writer.writerow([event[c] for c in EVENT_COLUMNS])
            if buffer.tell() > 64_000:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()

    return Response(stream_with_context(rows()), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{key}-events.csv"'})


@bp.get("/experiments/<key>/stats")
@admin_required
def experiment_stats(key: str):
    """Every statistic of the experiment (see README, "Statistics")."""
    from .analysis import experiment_stats as compute

    storage = get_storage()
    entry = current_app.extensions["lever.learning"].get(storage, key, fresh=True)
    if entry is None:
        raise NotFound(f"no experiment {key!r}", code="experiment_not_found")
    return jsonify(compute(entry.experiment, entry, storage))


@bp.get("/experiments/<key>/policy")
@admin_required
def policy(key: str):
    """This worker's current view of the experiment's policy ("is it learning?")."""
    entry = current_app.extensions["lever.learning"].get(get_storage(), key)
    if entry is None:
        raise NotFound(f"no experiment {key!r}", code="experiment_not_found")
    return jsonify(describe_policy(entry))


def describe_policy(entry) -> dict[str, Any]:
    import os

    experiment = entry.experiment
    keys = experiment.variant_keys
    body: dict[str, Any] = {
        "experiment": experiment.key,
        "mode": experiment.mode,
        "worker": os.getpid(),
        "model_version": entry.model_version,
        "refreshed_at": entry.refreshed_at,
        "allocation": dict(zip(keys, map(float, entry.allocation))) if entry.allocation is not None else None,
        "posterior": None,
    }
    if entry.posterior_mean is not None:
        body["posterior"] = {
            k: {"mean": float(m), "interval": [float(lo), float(hi)]}
            for k, m, (lo, hi) in zip(keys, entry.posterior_mean, entry.posterior_interval)
        }
    return body
