"""Operator actions on experiments: create, look up, change status (one place for each,
shared by the API, the report's forms and the CLI)."""
from __future__ import annotations

from ..domain.errors import Conflict, NotFound, ValidationError
from ..domain.experiments import STATUSES, Experiment, ExperimentSpec
from ..storage import DuplicateKey, Storage
from .policy_cache import LearningCache
from .webhooks import experiment_stopped


def create_experiment(storage: Storage, spec: ExperimentSpec, now: float) -> Experiment:
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
    """Pause, resume or stop (with the winner everyone then sees); stopping raises ``experiment.stopped``."""
    if status not in STATUSES:
        raise ValidationError(f"status must be one of {', '.join(STATUSES)}")
    if winner is not None and (status != "stopped" or winner not in experiment.variant_keys):
        raise ValidationError("winner must be a variant key and goes with status stopped")
    if status == "stopped":  # raises experiment.stopped in the same transaction, once per stop
        updated = storage.set_status_raising(experiment.key, status, winner, now,  # type: ignore[attr-defined]
                                             experiment_stopped(experiment, winner, now))
    else:
        updated = storage.set_status(experiment.key, status, winner, now)
    cache.invalidate(experiment.key)
    if updated is None:
        raise NotFound(f"no experiment {experiment.key!r}", code="experiment_not_found")
    return updated
