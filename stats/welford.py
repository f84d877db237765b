"""Numerically stable moments from shifted sums (issue #16): Chan's parallel merge, and the
reward counters' rewarded-only shifted sums turned into sums over every assignment.

Why. The one-pass variance (Σy² − (Σy)²/n)/(n − 1) subtracts two numbers of size n·ȳ²
to get one of size n·s². For rewards like 1e9 + N(0, 1), Σy² ≈ n·1e18 carries a rounding
error of about n·1e18·1e-16 = n·100, a hundred times the spread: the variance is garbage
(0, negative, or off by orders of magnitude). Sums of (y − K) for a K near the values
keep every term small, and variances and covariances do not depend on K.

The reward counters (``arm_stats``, ``segment_stats``) hold, per experiment with shift K
(``experiments.reward_shift``, the experiment's first numeric reward), sums over the
*rewarded* assignments r only (an assignment without a reward has y = 0 exactly and
adds nothing, so an assignment's counters never need K before its first reward):

    S_r = Σ_r (y − K),  Q_r = Σ_r (y − K)²,  n_r = rewarded assignments (``conversions``),
    and with w = 1/p:  I_r = Σ_r (y − K) w,  J_r = Σ_r (y − K)² w²,  X_r = Σ_r (y − K) w²,
    W_r = Σ_r w,  U_r = Σ_r w²   (W = Σ w and U = Σ w² run over every assignment).

The n0 = n − n_r unrewarded assignments are a group of values all equal to 0, i.e. all
equal to −K after the shift. Chan, Golub & LeVeque's parallel merge of a group A
(n_a, mean_a, M2_a) with a group B (n_b, mean_b, M2_b) is

    n = n_a + n_b,  δ = mean_b − mean_a,  mean = mean_a + δ n_b / n,
    M2 = M2_a + M2_b + δ² n_a n_b / n                                (``chan_merge``)

and with B = n0 zeros (M2_b = 0) it gives the variance of all n assignments without ever
forming Σy² (``with_zeros``). The statistics engine, though, wants sums it can add across
slices, hours and segments, so ``over_all`` returns the same information as sums of
(y − K) over *all* n assignments, which stay additive (every slice of one experiment has
the same K):

    S = S_r − n0 K,   Q = Q_r + n0 K²,
    I = I_r − K (W − W_r),  J = J_r + K² (U − U_r),  X = X_r − K (U − U_r).

These are exact identities. They are also stable: when every assignment is rewarded
(n0 = 0) they are the shifted sums themselves; when n0 > 0 the true M2 contains
δ² n_r n0 / n ≈ K² n_r n0 / n, so the rounding of the K² terms (relative 1e-16) stays
tiny against the quantity computed (``tests/test_stats_welford.py`` checks both cases
against numpy's two-pass variance, and the equality with ``chan_merge``).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Mapping

from stats.inputs import SliceAggregate


@dataclass(frozen=True)
class Moments:
    """Count, mean and M2 = Σ(y − mean)² of a group of values."""

    n: float
    mean: float
    m2: float

    @property
    def variance(self) -> float:
        """Unbiased sample variance (NaN below 2 values)."""
        return self.m2 / (self.n - 1) if self.n >= 2 else float("nan")


def from_shifted(n: float, shifted_sum: float, shifted_sumsq: float, shift: float) -> Moments:
    """Moments of n values from S = Σ(y − K) and Q = Σ(y − K)²: mean = K + S/n, M2 = Q − S²/n
    (stable when K is near the values: every term is of the size of the spread)."""
    if n <= 0:
        return Moments(0.0, float("nan"), 0.0)
    return Moments(float(n), shift + shifted_sum / n, max(shifted_sumsq - shifted_sum * shifted_sum / n, 0.0))


def chan_merge(a: Moments, b: Moments) -> Moments:
    """The moments of the union of two disjoint groups (Chan, Golub & LeVeque 1979)."""
    n = a.n + b.n
    if a.n <= 0:
        return b
    if b.n <= 0:
        return a
    delta = b.mean - a.mean
    return Moments(n, a.mean + delta * b.n / n, a.m2 + b.m2 + delta * delta * a.n * b.n / n)


def with_zeros(n: float, rewarded: float, shifted_sum: float, shifted_sumsq: float, shift: float) -> Moments:
    """Moments of n outcomes of which ``rewarded`` have the shifted sums given and the rest are 0."""
    return chan_merge(from_shifted(rewarded, shifted_sum, shifted_sumsq, shift),
                      Moments(float(n - rewarded), 0.0, 0.0))


#: the counter fields that hold rewarded-only sums of (y − K), and what ``over_all`` makes of them
_SHIFTED_FIELDS = ("reward_sum", "reward_sumsq", "ips_reward_sum", "ips_reward_sumsq", "ips_cross_sum")


def over_all(counters: Mapping[str, float], shift: float) -> dict[str, float]:
    """The counters with their rewarded-only shifted sums (module docstring) replaced by the sums
    of (y − K) over all assignments: the form ``SliceAggregate`` documents. ``counters`` holds the
    ``SliceAggregate`` field names plus ``rewarded_inv_sum`` (W_r) and ``rewarded_inv_sumsq`` (U_r);
    segment counters without propensity sums may leave those out. With K = 0 nothing changes."""
    out = {name: value for name, value in counters.items() if name not in ("rewarded_inv_sum", "rewarded_inv_sumsq")}
    if shift == 0.0:  # raw sums are sums over all assignments already (an unrewarded y adds 0)
        return out
    unrewarded = float(counters.get("assignments", 0)) - float(counters.get("conversions", 0))
    out["reward_sum"] = counters.get("reward_sum", 0.0) - unrewarded * shift
    out["reward_sumsq"] = counters.get("reward_sumsq", 0.0) + unrewarded * shift * shift
    if "inv_propensity_sum" in counters:
        w0 = counters["inv_propensity_sum"] - counters.get("rewarded_inv_sum", 0.0)  # Σ w over the unrewarded
        u0 = counters.get("inv_propensity_sumsq", 0.0) - counters.get("rewarded_inv_sumsq", 0.0)
        out["ips_reward_sum"] = counters.get("ips_reward_sum", 0.0) - shift * w0
        out["ips_reward_sumsq"] = counters.get("ips_reward_sumsq", 0.0) + shift * shift * u0
        out["ips_cross_sum"] = counters.get("ips_cross_sum", 0.0) - shift * u0
    return out


def slice_from_counters(variant: str, holdout: bool, counters: Mapping[str, float], shift: float) -> SliceAggregate:
    """A ``SliceAggregate`` (sums of (y − shift) over all assignments) from stored counters."""
    fields = {name: value for name, value in over_all(counters, shift).items()
              if name in SliceAggregate.__dataclass_fields__ and name not in ("variant", "holdout", "reward_shift")}
    return SliceAggregate(variant=variant, holdout=holdout, reward_shift=shift, **fields)


def reshift(s: SliceAggregate, shift: float) -> SliceAggregate:
    """The same assignments' sums about another shift: with d = K_old − K_new (so y − K_new =
    (y − K_old) + d), S' = S + n d, Q' = Q + 2 d S + n d², I' = I + d W, J' = J + 2 d X + d² U,
    X' = X + d U."""
    d = s.reward_shift - shift
    if d == 0.0:
        return s
    n = float(s.assignments)
    return dataclasses.replace(
        s, reward_shift=shift, reward_sum=s.reward_sum + n * d,
        reward_sumsq=s.reward_sumsq + 2 * d * s.reward_sum + n * d * d,
        ips_reward_sum=s.ips_reward_sum + d * s.inv_propensity_sum,
        ips_reward_sumsq=s.ips_reward_sumsq + 2 * d * s.ips_cross_sum + d * d * s.inv_propensity_sumsq,
        ips_cross_sum=s.ips_cross_sum + d * s.inv_propensity_sumsq,
    )
