"""Inverse-propensity estimators and off-policy evaluation from logged sums.

Setting: N logged decisions i (all traffic, both slices); decision i served a_i with
logged probability p_i and produced outcome y_i. The value of a non-contextual target
policy pi (a probability vector over variants) is V(pi) = sum_k pi_k E[y | k].
Writing w_i = pi(a_i) / p_i, every estimator is a mean of per-decision terms whose
first two moments are linear in the per-variant sums of ``SliceAggregate``:

* IPS (Horvitz-Thompson): V_ips = (1/N) sum_i w_i y_i. Unbiased whenever p_i > 0 for
  every variant pi plays, because E[w_i y_i | past] = V(pi) even if p_i depends on
  the history (bandits): the terms minus V form a martingale difference sequence.
  SE from the sample variance of the terms:
  sum z = sum_k pi_k S_k,  sum z^2 = sum_k pi_k^2 Q_k  (S_k = sum y/p, Q_k = sum y^2/p^2
  over decisions that served k; a decision serves one variant, so no cross terms).
* SNIPS (self-normalised): V_sn = sum w_i y_i / sum w_i, a ratio estimator; biased
  O(1/N) but bounded by the range of y and usually much less variable. Delta method
  (linearisation): Var ~= sum (w_i y_i - V_sn w_i)^2 / (sum w_i)^2, with
  sum (w y - V w)^2 = sum w^2 y^2 - 2 V sum w^2 y + V^2 sum w^2, all logged sums
  (sum w^2 y = sum_k pi_k^2 ips_cross_sum_k, sum w^2 = sum_k pi_k^2 inv_propensity_sumsq_k).
* DR (doubly robust) with the per-variant mean model mu_k = reward_sum_k / n_k:
  z_i = sum_k pi_k mu_k + w_i (y_i - mu_{a_i}). Unbiased if the propensities are right
  whatever mu is (mu is treated as fixed; estimating it on the same data adds an
  O(1/N) bias), and lower-variance than IPS when mu is close to the truth.
  With c = sum_k pi_k mu_k and r_i = w_i (y_i - mu_{a_i}):
  sum z = N c + sum_k pi_k (S_k - mu_k W_k),
  sum z^2 = N c^2 + 2 c sum r + sum_k pi_k^2 (Q_k - 2 mu_k X_k + mu_k^2 U_k)
  (W_k = sum 1/p, U_k = sum 1/p^2, X_k = sum y/p^2).

Shifted outcomes (``SliceAggregate.reward_shift``, ``stats.welford``): the sums may be of
y' = y - K over every decision. SNIPS and DR are shift-equivariant: with y' the SNIPS
residuals w (y - V) and the DR residuals w (y - mu) are unchanged and both values move by
K (DR: by K sum_k pi_k, which is K for a policy), so they run on the shifted sums and add
K back. IPS is not (sum w y = sum w y' + K sum w), so its variance is taken apart into
pieces that are each small: with A = sum w y', B = sum w,
  M2 = sum (w y)^2 - (sum w y)^2 / N
     = [sum w^2 y'^2 - A^2/N] + 2K [sum w^2 y' - A B/N] + K^2 [sum w^2 - B^2/N],
the spread of w y', the covariance of w y' with w, and the spread of w (which is real
variance, K^2 Var(w), and never a difference of two huge sums of y).

Intervals are normal: value +- z_{0.975} SE (martingale CLT for adaptive logs). All
cores are vectorised over leading axes: per-variant sums have shape (..., K).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy import stats as st

from stats import slices
from stats.inputs import ExperimentAggregate, SliceAggregate
from stats.results import ALPHA, Estimate, Reason, finite, interval, jsonable
from stats.welford import reshift


class ArmSums(NamedTuple):
    """Per-variant logged sums over all traffic, arrays of shape (..., K)."""

    n: np.ndarray  # assignments
    reward: np.ndarray  # sum y
    inv: np.ndarray  # W: sum 1/p
    inv_sq: np.ndarray  # U: sum 1/p^2
    ips: np.ndarray  # S: sum y/p
    ips_sq: np.ndarray  # Q: sum y^2/p^2
    cross: np.ndarray  # X: sum y/p^2
    #: K: reward, ips, ips_sq and cross are sums of (y - K) (module docstring); one K for every
    #: arm, given as a scalar, per leading index (...), or repeated per arm like the sums (..., K)
    shift: np.ndarray | float = 0.0

    def common_shift(self) -> np.ndarray:
        """K per leading index (shape (...)), whichever way ``shift`` was given."""
        k = np.asarray(self.shift, dtype=float)
        return k[..., 0] if k.ndim and k.ndim == np.ndim(self.n) else k

    @classmethod
    def from_slices(cls, arms: Sequence[SliceAggregate]) -> "ArmSums":
        shift = float(arms[0].reward_shift) if arms else 0.0
        arms = [reshift(a, shift) for a in arms]

        def col(name: str) -> np.ndarray:
            return np.array([getattr(a, name) for a in arms], dtype=float)

        return cls(
            n=col("assignments"),
            reward=col("reward_sum"),
            inv=col("inv_propensity_sum"),
            inv_sq=col("inv_propensity_sumsq"),
            ips=col("ips_reward_sum"),
            ips_sq=col("ips_reward_sumsq"),
            cross=col("ips_cross_sum"),
            shift=shift,
        )


class Estimates(NamedTuple):
    value: np.ndarray
    se: np.ndarray
    low: np.ndarray
    high: np.ndarray


def _mean_of_terms(total, total_sq, n_decisions, alpha: float, m2=None, offset=0.0) -> Estimates:
    """Mean of N per-decision terms from their sum and sum of squares (or their M2 =
    sum (z - mean)^2 when given), plus ``offset``, normal CI."""
    n = np.asarray(n_decisions, dtype=float)
    with np.errstate(all="ignore"):
        value = total / n + offset
        spread = total_sq - total**2 / n if m2 is None else m2
        var = np.maximum(spread / (n - 1), 0.0)
        se = np.sqrt(var / n)
    z = st.norm.ppf(1 - alpha / 2)
    ok = n >= 2
    value, se = np.where(ok, value, np.nan), np.where(ok, se, np.nan)
    return Estimates(value, se, value - z * se, value + z * se)


def ips(sums: ArmSums, policy, n_decisions, alpha: float = ALPHA) -> Estimates:
    """Horvitz-Thompson IPS value of ``policy`` (probabilities over the K variants)."""
    pi = np.asarray(policy, dtype=float)
    a = np.sum(pi * sums.ips, axis=-1)  # sum w y'
    aa = np.sum(pi**2 * sums.ips_sq, axis=-1)  # sum w^2 y'^2
    k = sums.common_shift()
    if not np.any(k):
        return _mean_of_terms(a, aa, n_decisions, alpha)
    n = np.asarray(n_decisions, dtype=float)
    b = np.sum(pi * sums.inv, axis=-1)  # sum w
    with np.errstate(all="ignore"):  # the three pieces of M2 (module docstring)
        m2 = ((aa - a**2 / n) + 2 * k * (np.sum(pi**2 * sums.cross, axis=-1) - a * b / n)
              + k * k * (np.sum(pi**2 * sums.inv_sq, axis=-1) - b**2 / n))
    return _mean_of_terms(a + k * b, None, n, alpha, m2=m2)


def snips(sums: ArmSums, policy, alpha: float = ALPHA) -> Estimates:
    """Self-normalised IPS value of ``policy`` with a delta-method standard error."""
    pi = np.asarray(policy, dtype=float)
    y = np.sum(pi * sums.ips, axis=-1)  # sum w y
    w = np.sum(pi * sums.inv, axis=-1)  # sum w
    yy = np.sum(pi**2 * sums.ips_sq, axis=-1)  # sum w^2 y^2
    yw = np.sum(pi**2 * sums.cross, axis=-1)  # sum w^2 y
    ww = np.sum(pi**2 * sums.inv_sq, axis=-1)  # sum w^2
    with np.errstate(all="ignore"):
        value = y / w  # of the shifted outcomes: the residuals, so the SE, are the same
        residual_sq = np.maximum(yy - 2 * value * yw + value**2 * ww, 0.0)
        se = np.sqrt(residual_sq) / w
        value = value + sums.common_shift()
    z = st.norm.ppf(1 - alpha / 2)
    ok = w > 0
    value, se = np.where(ok, value, np.nan), np.where(ok, se, np.nan)
    return Estimates(value, se, value - z * se, value + z * se)


def doubly_robust(sums: ArmSums, policy, n_decisions, alpha: float = ALPHA) -> Estimates:
    """DR value of ``policy`` with the per-variant mean model mu_k = reward_k / n_k."""
    pi = np.asarray(policy, dtype=float)
    n = np.asarray(n_decisions, dtype=float)
    with np.errstate(all="ignore"):
        mu = np.where(sums.n > 0, sums.reward / sums.n, 0.0)
    c = np.sum(pi * mu, axis=-1)
    r_sum = np.sum(pi * (sums.ips - mu * sums.inv), axis=-1)
    r_sq = np.sum(pi**2 * (sums.ips_sq - 2 * mu * sums.cross + mu**2 * sums.inv_sq), axis=-1)
    # shifted sums: every term z_i moves by -K sum_k pi_k, its spread does not
    return _mean_of_terms(n * c + r_sum, n * c**2 + 2 * c * r_sum + r_sq, n, alpha,
                          offset=sums.common_shift() * np.sum(pi, axis=-1))


# ----------------------------------------------------------------------- results


@dataclass(frozen=True)
class PolicyValue:
    """Estimated value (mean outcome per decision) of one target policy.

    ``value``/``ci``/``se`` repeat the estimator named by ``method`` (SNIPS); the three
    estimators are also reported individually.
    """

    value: float | None
    ci: tuple[float, float] | None
    se: float | None
    method: str
    ips: Estimate
    snips: Estimate
    dr: Estimate
    reason: str | None = None

    def to_dict(self) -> dict:
        return jsonable(self)


@dataclass(frozen=True)
class OffPolicy:
    uniform_random: PolicyValue
    variants: dict[str, PolicyValue]
    current_policy: PolicyValue
    decisions: int  # N: logged decisions used (all traffic)
    reason: str | None = None

    def to_dict(self) -> dict:
        return jsonable(self)


def _estimate(e: Estimates, method: str, reason: str | None) -> Estimate:
    value, se = finite(np.asarray(e.value)), finite(np.asarray(e.se))
    ci = interval(np.asarray(e.low), np.asarray(e.high))
    if reason is None and value is None:
        reason = Reason.NOT_ENOUGH_DATA
    if reason is not None:
        return Estimate(None, None, None, method, reason)
    return Estimate(value, ci, se, method)


def _support_reason(sums: ArmSums, pi: np.ndarray, n_decisions: float) -> str | None:
    if n_decisions < 2:
        return Reason.NOT_ENOUGH_DATA
    played = pi > 0
    if np.any(played & (sums.n > 0) & (sums.inv <= 0)):
        return Reason.NO_PROPENSITIES  # served but no inverse propensities logged
    if np.any(played & (sums.n == 0)):
        return Reason.NO_SUPPORT
    return None


def policy_value(sums: ArmSums, policy, alpha: float = ALPHA, reason: str | None = None) -> PolicyValue:
    """IPS, SNIPS and DR value of ``policy`` (K probabilities) from per-variant sums."""
    pi = np.asarray(policy, dtype=float)
    n = float(np.sum(sums.n))
    reason = reason or _support_reason(sums, pi, n)
    est = {
        "ips": _estimate(ips(sums, pi, n, alpha), "ips", reason),
        "snips": _estimate(snips(sums, pi, alpha), "snips_delta", reason),
        "dr": _estimate(doubly_robust(sums, pi, n, alpha), "dr_mean_model", reason),
    }
    main = est["snips"]
    return PolicyValue(
        value=main.value,
        ci=main.ci,
        se=main.se,
        method="snips",
        ips=est["ips"],
        snips=est["snips"],
        dr=est["dr"],
        reason=main.reason,
    )


def _allocation_reason(agg: ExperimentAggregate) -> str | None:
    a = agg.current_allocation
    if a is None:
        return Reason.NO_CURRENT_ALLOCATION
    if len(a) != len(agg.variants) or any(x < 0 for x in a) or abs(sum(a) - 1) > 1e-6:
        return Reason.INVALID_ALLOCATION
    return None


def evaluate(agg: ExperimentAggregate, alpha: float = ALPHA) -> OffPolicy:
    """Off-policy values over all logged traffic: uniform random, each fixed variant
    and the current allocation (reason code when it is missing or invalid)."""
    arms = [slices.pick(agg.slices, v, slices.ALL) for v in agg.variants]
    sums = ArmSums.from_slices(arms)
    k = len(agg.variants)
    uniform = policy_value(sums, np.full(k, 1 / k), alpha)
    per_variant = {v: policy_value(sums, np.eye(k)[i], alpha) for i, v in enumerate(agg.variants)}
    allocation_reason = _allocation_reason(agg)
    allocation = agg.current_allocation if allocation_reason is None else np.full(k, 1 / k)
    current = policy_value(sums, allocation, alpha, reason=allocation_reason)
    n = int(np.sum(sums.n))
    return OffPolicy(
        uniform_random=uniform,
        variants=per_variant,
        current_policy=current,
        decisions=n,
        reason=None if n >= 2 else Reason.NOT_ENOUGH_DATA,
    )
