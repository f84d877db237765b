"""Fixed allocations: the A/B mode (declared weights, hashed buckets) and the holdout's
uniform allocation. Neither learns: its propensity is the declared weight."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from bandits import Decision, FixedWeights, Uniform, hash_unit

from ...domain.experiments import Experiment
from ...storage import LearningSnapshot
from .base import FittedPolicy, Mode


class FixedPolicy(FittedPolicy):
    """Weights per variant; a sticky experiment hashes the visitor into a bucket so every
    worker and every restart gives the same visitor the same variant."""

    def __init__(self, weights: FixedWeights, bucket_salt: str, always_hashed: bool) -> None:
        self.weights = weights
        self.allocation = weights.probabilities
        self.bucket_salt = bucket_salt
        self.always_hashed = always_hashed

    def select(self, experiment: Experiment, visitor: str, features: Any, rng: np.random.Generator) -> Decision:
        if self.always_hashed or experiment.sticky:
            return self.weights.select_unit(hash_unit(self.bucket_salt, experiment.key, visitor))
        return self.weights.select(rng)

    def describe(self, experiment: Experiment, recent_contexts: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
        return {"allocation": dict(zip(experiment.variant_keys, map(float, self.allocation))), "posterior": None}


class ABMode(Mode):
    name = "ab"

    def fit(self, experiment: Experiment, snapshot: LearningSnapshot, now: float, draws: int) -> FittedPolicy:
        weights = experiment.weights or tuple(1.0 for _ in experiment.variants)
        return FixedPolicy(FixedWeights(weights), "bucket", always_hashed=True)


def holdout_policy(experiment: Experiment) -> FixedPolicy:
    """The holdout slice: every variant equally likely (hashed when sticky, random when not)."""
    return FixedPolicy(Uniform(len(experiment.variants)), "holdout-bucket", always_hashed=False)


def in_holdout(experiment: Experiment, visitor: str) -> bool:
    return experiment.holdout > 0 and hash_unit("holdout", experiment.key, visitor) < experiment.holdout
