"""Allocations that do not learn: fixed weights (A/B tests) and the uniform holdout."""
from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np

from .base import Decision, PolicyConfigError

_UNIT_SCALE = float(2**64)


def hash_unit(*parts: str) -> float:
    """A deterministic, uniform number in [0, 1) for a tuple of strings.

    SHA-256 of the parts joined by NUL, first 8 bytes as an unsigned integer. The same
    (experiment, visitor) gives the same number in every worker, process and restart,
    which is what makes a bucket sticky without storing it.
    """
    digest = hashlib.sha256("\x00".join(parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / _UNIT_SCALE


class FixedWeights:
    """Allocate by configured weights from a deterministic unit number (A/B/n tests)."""

    name = "fixed"

    def __init__(self, weights: Sequence[float]) -> None:
        weights = np.asarray(weights, dtype=float)
        if weights.ndim != 1 or weights.size < 1 or np.any(~np.isfinite(weights)) or np.any(weights < 0):
            raise PolicyConfigError("weights must be finite and non-negative")
        if weights.sum() <= 0:
            raise PolicyConfigError("at least one weight must be positive")
        self.probabilities = weights / weights.sum()
        self._cumulative = np.cumsum(self.probabilities)
        self.n_arms = weights.size

    def select_unit(self, unit: float) -> Decision:
        """Choose by a uniform number in [0,1): the bucket whose cumulative weight covers it."""
        arm = int(np.searchsorted(self._cumulative, unit * self._cumulative[-1], side="right"))
        arm = min(arm, self.n_arms - 1)
        return Decision(arm=arm, propensity=float(self.probabilities[arm]), probabilities=self.probabilities)

    def select(self, rng: np.random.Generator, context: np.ndarray | None = None) -> Decision:
        return self.select_unit(float(rng.random()))


class Uniform(FixedWeights):
    """Every arm with probability 1/K: the random holdout's allocation."""

    name = "uniform"

    def __init__(self, n_arms: int) -> None:
        super().__init__(np.ones(n_arms))
