"""The non-contextual bandit: Thompson sampling as probability matching.

At each refresh the allocation vector (win probabilities with the ``min_share`` floor)
is computed once from a generator seeded with (experiment id, model version), so two
workers that read the same counters compute the same allocation, bit for bit; each
decision then samples from it, and its propensity is exactly that vector's entry.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from bandits import THOMPSON_BY_REWARD, ArmStatistics, Decision, decide

from ...domain.experiments import Experiment
from ...storage import LearningSnapshot
from .. import counters
from .base import FittedPolicy, Mode


def arm_statistics(experiment: Experiment, snapshot: LearningSnapshot) -> list[ArmStatistics]:
    """Per-variant outcome statistics over all traffic (holdout decisions are data too), as sums
    of y - K with K = ``counters.snapshot_shift`` (0 for binary rewards)."""
    shift = counters.snapshot_shift(snapshot.totals)
    return [counters.arm_statistics([t for t in snapshot.totals if t.variant_id == v.id], shift)
            for v in experiment.variants]


class ThompsonPolicy(FittedPolicy):
    def __init__(self, allocation: np.ndarray, posterior_mean: np.ndarray, posterior_interval: np.ndarray) -> None:
        self.allocation = allocation
        self.posterior_mean = posterior_mean
        self.posterior_interval = posterior_interval

    def select(self, experiment: Experiment, visitor: str, features: Any, rng: np.random.Generator) -> Decision:
        return decide(self.allocation, rng)

    def describe(self, experiment: Experiment, recent_contexts: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
        keys = experiment.variant_keys
        return {
            "allocation": dict(zip(keys, map(float, self.allocation))),
            "posterior": {k: {"mean": float(m), "interval": [float(lo), float(hi)]}
                          for k, m, (lo, hi) in zip(keys, self.posterior_mean, self.posterior_interval)},
        }


class BanditMode(Mode):
    name = "bandit"

    def fit(self, experiment: Experiment, snapshot: LearningSnapshot, now: float, draws: int) -> FittedPolicy:
        policy_class = THOMPSON_BY_REWARD[experiment.reward]
        policy = policy_class(n_arms=len(experiment.variants), min_share=experiment.min_share, draws=draws)
        policy.fit(arm_statistics(experiment, snapshot))
        rng = np.random.default_rng([experiment.id, snapshot.model_version])
        # fitted on y - K: win probabilities do not move with K, the posterior's location does
        shift = counters.snapshot_shift(snapshot.totals)
        return ThompsonPolicy(policy.allocation(rng), policy.posterior_mean() + shift,
                              policy.posterior_interval() + shift)
