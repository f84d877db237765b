"""Variants a guardrail stopped: allocation over the others, with exact propensities.

Any fitted policy (A/B, bandit, contextual, the holdout's uniform) decides with an
allocation vector p for this request. With the set S of variants still served and
P = Σ_{i∈S} p_i, the wrapper keeps the inner decision when its arm is in S and otherwise
redraws from q_i = p_i / P over S. Then

    P(serve i) = p_i + (1 - P) · p_i / P = p_i / P = q_i     for i in S, and 0 outside S,

so the logged propensity q_i (and the logged vector q) is exactly the probability the
served variant had: the inner policy's choice is kept wherever it is still allowed (a
hashed A/B visitor keeps their bucket) and the stopped variants' share is spread
proportionally over the rest. The redraw uses a hash of the visitor (a returning
non-sticky visitor of a stopped bucket is redrawn the same way each time), independent
of the inner draw.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from bandits import Decision, hash_unit

from ...domain.experiments import Experiment
from ...storage import ModelUpdate, StoredAssignment
from .base import FittedPolicy


def served_mask(experiment: Experiment) -> np.ndarray:
    """True for every variant still allocated (the control always is)."""
    stopped = set(experiment.stopped_variants) - {experiment.control}
    return np.array([key not in stopped for key in experiment.variant_keys])


def restrict(probabilities: np.ndarray, mask: np.ndarray) -> np.ndarray:
    kept = np.where(mask, np.asarray(probabilities, dtype=float), 0.0)
    total = kept.sum()
    if total <= 0:  # every allowed variant had probability 0: fall back to equal shares of the allowed
        kept = mask.astype(float)
        total = kept.sum()
    return kept / total


class WithoutStopped(FittedPolicy):
    """``inner`` restricted to the variants of ``mask`` (module docstring)."""

    def __init__(self, inner: FittedPolicy, mask: np.ndarray) -> None:
        self.inner = inner
        self.mask = mask
        self.allocation = None if inner.allocation is None else restrict(inner.allocation, mask)

    def features(self, context: Any) -> Any:
        return self.inner.features(context)

    def select(self, experiment: Experiment, visitor: str, features: Any, rng: np.random.Generator) -> Decision:
        decision = self.inner.select(experiment, visitor, features, rng)
        q = restrict(decision.probabilities, self.mask)
        arm = decision.arm
        if not self.mask[arm]:
            cumulative = np.cumsum(q)
            unit = hash_unit("stopped-redraw", experiment.key, visitor)
            arm = min(int(np.searchsorted(cumulative, unit * cumulative[-1], side="right")), len(q) - 1)
            while not self.mask[arm]:  # a zero-width bucket at the boundary: step back to an allowed one
                arm -= 1
        return Decision(arm=arm, propensity=float(q[arm]), probabilities=q, scores=decision.scores)

    def decision_update(self, features: Any, now: float) -> ModelUpdate | None:
        return self.inner.decision_update(features, now)

    def reward_update(self, assignment: StoredAssignment, value: float, now: float) -> ModelUpdate | None:
        return self.inner.reward_update(assignment, value, now)

    def explain(self, features: Any) -> dict[str, Any] | None:
        return self.inner.explain(features)

    def describe(self, experiment: Experiment) -> dict[str, Any]:
        described = self.inner.describe(experiment)
        if self.allocation is not None:
            described["allocation"] = dict(zip(experiment.variant_keys, map(float, self.allocation)))
        return {**described, "stopped_variants": list(experiment.stopped_variants)}
