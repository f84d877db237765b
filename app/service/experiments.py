"""Operator actions on experiments: create, look up, change status (one place for each,
shared by the API, the report's forms and the CLI)."""
from __future__ import annotations

from ..domain.errors import Conflict, NotFound, ValidationError
from ..domain.experiments import STATUSES, Experiment, ExperimentSpec
from ..storage import DuplicateKey, Storage
from .metrics import resolve_spec
from .policy_cache import LearningCache


def create_experiment(storage: Storage, spec: ExperimentSpec, now: float) -> Experiment:
    """Metrics are checked against the catalogue (and give the reward type) before anything is written."""
    spec = resolve_spec(storage, spec)
    try:
        return storage.create_experiment(spec, now)
    except DuplicateKey:
        raise Conflict(f"experiment {spec.key!r} exists already", code="duplicate_key") from None


def experiment_or_404(storage: Storage, key: str) -> Experiment:
    experiment = storage.get_experiment(key)
    if experiment is None:
        raise NotFound(f"no experiment {key!r}", code="experiment_not_found")
    return experiment


def set_status(storage: Storage, cache: LearningCache, experiment: Experiment, status: str, winner: str | None,
               now: float) -> Experiment:
    """Pause, resume or stop (with the winner everyone then sees)."""
    if status not in STATUSES:
        raise ValidationError(f"status must be one of {', '.join(STATUSES)}")
    if winner is not None and (status != "stopped" or winner not in experiment.variant_keys):
        raise ValidationError("winner must be a variant key and goes with status stopped")
    updated = storage.set_status(experiment.key, status, winner, now)
    cache.invalidate(experiment.key)
    if updated is None:
        raise NotFound(f"no experiment {experiment.key!r}", code="experiment_not_found")
    return updated
