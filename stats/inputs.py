"""Aggregates the statistics engine consumes: computed in SQL by the storage layer.

Every number here is a sum over logged assignments, so the storage keeps them as
transactional counters (or computes them with one GROUP BY) and no event is ever
loaded into Python. Notation for one assignment i: y_i is its outcome (binary: 1 when
converted, else 0; numeric: the sum of its reward values, 0 when none), p_i the logged
propensity of the variant it was served. The outcome sums may be shifted by a constant
(``SliceAggregate.reward_shift``, ``stats.welford``).
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SliceAggregate:
    """Sums over the assignments of one variant in one traffic slice.

    ``holdout`` tells the slice: True for the uniform-random holdout, False for the
    traffic the policy (fixed weights or bandit) allocated.
    """

    variant: str
    holdout: bool
    assignments: int = 0  # n: number of assignments served this variant
    conversions: int = 0  # assignments with y_i > 0
    reward_sum: float = 0.0  # sum y_i
    reward_sumsq: float = 0.0  # sum y_i^2
    expected_assignments: float = 0.0  # sum over ALL decisions j in the slice of P_j(this variant): SRM baseline
    inv_propensity_sum: float = 0.0  # sum 1/p_i
    inv_propensity_sumsq: float = 0.0  # sum 1/p_i^2
    ips_reward_sum: float = 0.0  # sum y_i/p_i
    ips_reward_sumsq: float = 0.0  # sum y_i^2/p_i^2
    ips_cross_sum: float = 0.0  # sum y_i/p_i^2
    # The outcome sums above (reward_*, ips_*) may be of (y_i - K) instead of y_i, for one
    # constant K per experiment (``stats.welford``: the storage keeps them so, which keeps
    # the variances of large near-constant outcomes exact). Variances, covariances and
    # differences do not depend on K; means add it back. 0 = raw sums.
    reward_shift: float = 0.0


@dataclass(frozen=True)
class SegmentAggregate:
    """The same sums restricted to visitors whose context ``feature`` had ``level``."""

    feature: str
    level: str
    slice: SliceAggregate


@dataclass(frozen=True)
class PeriodAggregate:
    """The slices of one hour ``period`` (epoch seconds of its start): the storage's
    ``arm_stats`` rows of that period summed over shards. Optional: they let the
    adaptive estimators (``stats.adaptive``) weight each period by what was known
    before it (its predecessor's allocation), which strictly keeps the martingale
    structure. The per-period slices must add up to ``ExperimentAggregate.slices``."""

    period: int
    slices: tuple[SliceAggregate, ...]


@dataclass(frozen=True)
class ExperimentAggregate:
    """Everything the engine needs for one experiment's statistics."""

    key: str
    mode: str  # "ab" | "bandit" | "contextual"
    reward: str  # "binary" | "numeric"
    control: str
    variants: tuple[str, ...]  # variant keys in their configured order
    slices: tuple[SliceAggregate, ...]  # one per (variant, holdout) that has data (missing = zeros)
    weights: tuple[float, ...] | None = None  # configured split for "ab" (sums to 1), same order as variants
    holdout_share: float = 0.0
    current_allocation: tuple[float, ...] | None = None  # the policy's allocation now (non-contextual)
    segments: tuple[SegmentAggregate, ...] = field(default_factory=tuple)
    seed: int = 0  # seeds every Monte-Carlo computation so the same data gives the same numbers
    periods: tuple[PeriodAggregate, ...] = field(default_factory=tuple)  # per-hour slices (adaptive modes)
    # fixed horizon declared before launch: total visitors of the analysed traffic (all
    # variants) at which the fixed-horizon test decides ("ab" only; None = anytime-valid)
    planned_visitors: int | None = None
    higher_is_better: bool = True  # direction of the metric: which sign of a difference is "better"
