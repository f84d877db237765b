"""Operator actions on experiments: create, look up, change status (one place for each,
shared by the API, the report's forms and the CLI). Every change carries its audit entry
into the storage transaction that makes it (``actor``: who, see ``app.web.auth.current_actor``)."""
from __future__ import annotations

from typing import Any

from ..domain.audit import SYSTEM_ACTOR, AuditEntry
from ..domain.errors import Conflict, NotFound, ValidationError
from ..domain.experiments import STATUSES, Experiment, ExperimentSpec
from ..storage import DuplicateKey, Storage
from .metrics import resolve_spec
from .policy_cache import LearningCache
from .webhooks import experiment_stopped

#: the audit action of a status change (stopping with a winner declares it)
STATUS_ACTIONS = {"running": "experiment.resumed", "paused": "experiment.paused", "stopped": "experiment.stopped"}


def spec_summary(spec: ExperimentSpec) -> dict[str, Any]:
    """What the audit log keeps of a new experiment's definition."""
    return {"key": spec.key, "name": spec.name, "mode": spec.mode, "reward": spec.reward,
            "variants": list(spec.variant_keys), "control": spec.control, "holdout": spec.holdout,
            "sticky": spec.sticky, "weights": list(spec.weights) if spec.weights else None,
            "allowed_origins": list(spec.allowed_origins),
            "metrics": spec.metrics.to_dict() if spec.metrics is not None else None}


def create_experiment(storage: Storage, spec: ExperimentSpec, now: float, actor: str = SYSTEM_ACTOR) -> Experiment:
    """Metrics are checked against the catalogue (and give the reward type) before anything is written."""
    spec = resolve_spec(storage, spec)
    entry = AuditEntry(actor=actor, action="experiment.created", experiment_key=spec.key,
                       after=spec_summary(spec), at=now)
    try:
        return storage.create_experiment(spec, now, audit=entry)
    except DuplicateKey:
        raise Conflict(f"experiment {spec.key!r} exists already", code="duplicate_key") from None


def experiment_or_404(storage: Storage, key: str) -> Experiment:
    experiment = storage.get_experiment(key)
    if experiment is None:
        raise NotFound(f"no experiment {key!r}", code="experiment_not_found")
    return experiment


def set_status(storage: Storage, cache: LearningCache, experiment: Experiment, status: str, winner: str | None,
               now: float, actor: str = SYSTEM_ACTOR) -> Experiment:
    """Pause, resume or stop (with the winner everyone then sees); stopping raises ``experiment.stopped``."""
    if status not in STATUSES:
        raise ValidationError(f"status must be one of {', '.join(STATUSES)}")
    if winner is not None and (status != "stopped" or winner not in experiment.variant_keys):
        raise ValidationError("winner must be a variant key and goes with status stopped")
    action = "experiment.winner_declared" if winner is not None else STATUS_ACTIONS[status]
    entry = AuditEntry(actor=actor, action=action, experiment_key=experiment.key,
                       before={"status": experiment.status, "winner": experiment.winner},
                       after={"status": status, "winner": winner}, at=now)
    if status == "stopped":  # raises experiment.stopped in the same transaction, once per stop
        updated = storage.set_status_raising(experiment.key, status, winner, now,  # type: ignore[attr-defined]
                                             experiment_stopped(experiment, winner, now), audit=entry)
    else:
        updated = storage.set_status(experiment.key, status, winner, now, audit=entry)
    cache.invalidate(experiment.key)
    if updated is None:
        raise NotFound(f"no experiment {experiment.key!r}", code="experiment_not_found")
    return updated
