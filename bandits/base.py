"""Shared vocabulary of every policy: arm statistics in, a decision with its propensity out.

A policy never owns a random generator, a clock or a database: the caller passes an
``np.random.Generator`` to every call that draws, so the service, a benchmark and a
test can all replay the same decisions from the same seed.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


class PolicyConfigError(ValueError):
    """A policy was constructed with hyperparameters that cannot work."""


@dataclass(frozen=True)
class ArmStatistics:
    """Sufficient statistics of one arm's outcomes (one outcome per decision).

    ``decisions`` counts every time the arm was served; ``successes`` the decisions
    with a positive outcome (binary rewards); ``reward_sum`` and ``reward_sumsq`` are
    the sum and sum of squares of per-decision outcomes (0 when no reward arrived).
    A decision whose reward has not arrived yet counts as an outcome of 0: with a
    reward window this is the standard treatment of delayed conversions.
    """

    decisions: float = 0.0
    successes: float = 0.0
    reward_sum: float = 0.0
    reward_sumsq: float = 0.0

    def __post_init__(self) -> None:
        if self.decisions < 0 or self.successes < 0 or self.successes > self.decisions + 1e-9:
            raise PolicyConfigError(
                f"inconsistent arm statistics: {self.successes} successes in {self.decisions} decisions"
            )


@dataclass(frozen=True)
class Decision:
    """What a policy chose, and with which probability.

    ``arm`` indexes the arms in the order the policy was given them; ``propensity`` is
    the probability with which this arm was chosen for this request (what off-policy
    evaluation needs); ``probabilities`` is the whole allocation vector (sums to 1),
    and ``scores`` optionally explains the choice (e.g. the sampled value per arm).
    """

    arm: int
    propensity: float
    probabilities: np.ndarray = field(repr=False)
    scores: np.ndarray | None = field(default=None, repr=False)


def apply_floor(probabilities: np.ndarray, min_share: float) -> np.ndarray:
    """Mix an allocation with the uniform one so that every arm keeps ``min_share``.

    p_floor = min_share + (1 - K * min_share) * p. This keeps the ordering of p,
    sums to 1, and is exactly the allocation the caller samples from, so the logged
    propensity stays exact.
    """
    probabilities = np.asarray(probabilities, dtype=float)
    k = probabilities.size
    if min_share <= 0:
        return probabilities / probabilities.sum()
    if min_share * k > 1 + 1e-12:
        raise PolicyConfigError(f"min_share {min_share} is impossible with {k} arms")
    mixed = min_share + (1.0 - k * min_share) * probabilities
    return mixed / mixed.sum()


def draw_arm(probabilities: np.ndarray, rng: np.random.Generator) -> int:
    """Sample one arm from an allocation vector (inverse CDF on one uniform draw)."""
    u = rng.random()
    # a plain Python loop beats numpy's call overhead for the few arms a page has
    cumulative = 0.0
    for arm, p in enumerate(probabilities.tolist()):
        cumulative += p
        if u < cumulative:
            return arm
    return int(probabilities.size - 1)


def decide(probabilities: np.ndarray, rng: np.random.Generator, scores: np.ndarray | None = None) -> Decision:
    """Draw an arm from ``probabilities`` and return it with its propensity."""
    arm = draw_arm(probabilities, rng)
    return Decision(arm=arm, propensity=float(probabilities[arm]), probabilities=probabilities, scores=scores)


def win_probabilities(samples: np.ndarray) -> np.ndarray:
    """Share of posterior draws in which each arm has the highest value.

    ``samples`` has shape (draws, arms). Ties (possible with discrete posteriors) are
    split evenly so the vector always sums to exactly 1.
    """
    best = samples.max(axis=1, keepdims=True)
    is_best = samples == best
    weights = is_best / is_best.sum(axis=1, keepdims=True)
    return weights.mean(axis=0)
