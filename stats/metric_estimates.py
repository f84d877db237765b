"""Per-metric-type estimators: an arm's value with its variance, and treatment - control.

``KINDS[metric_type]`` holds the functions for one type. They are vectorised: the
fields of the ``MetricSlice`` they receive may be numpy arrays of any common shape
(a simulation passes thousands of experiments at once); undefined entries are NaN,
and ``metric_analysis`` turns them into reason codes.

* conversion: rate x / n, variance p (1 - p) / n, Wilson interval, pooled z-test
  (``stats.proportions``).
* count, sum: mean S / n, variance s^2 / n, t interval, Welch t-test (``stats.means``).
* ratio: R = sum a / sum b = mean(a) / mean(b) over visitors. The visitor is the
  randomisation unit, so the (a_i, b_i) pairs are i.i.d. but the events inside a
  visitor are not; the delta method (Deng, Knoblich & Lu 2018, "Applying the delta
  method in metric analytics") linearises R around (mu_a, mu_b):

      Var(R) ~= (s_aa - 2 R s_ab + R^2 s_bb) / (n mu_b^2),

  with s_aa, s_bb, s_ab the per-visitor sample (co)variances. Difference
  R_t - R_c with Var(R_t) + Var(R_c), normal z-test and interval.

Every ``Difference`` also carries the always-valid confidence sequence on the
absolute difference (``stats.anytime``, unpooled SE, n = visitors in both arms) and
its dual p-value, as ``stats.proportions`` / ``stats.means`` compute them for the
experiment report, so both reports decide alike.

Relative change, every type (``relative``): the reported point is
r = (m_t - m_c) / |m_c| (= m_t / m_c - 1 for a positive control). Its interval is
built on the *log-ratio* scale when both means are positive: L = ln(m_t / m_c),
Var(L) ~= Var(m_t)/m_t^2 + Var(m_c)/m_c^2 (delta method), interval exp(L +- q se) - 1,
which stays above -100% and is less skewed for small effects' ratios. Otherwise
(a zero or negative mean) it falls back to the delta method on the linear scale,
Var(r) ~= Var(m_t)/m_c^2 + m_t^2 Var(m_c)/m_c^4. ``log_scale`` tells which.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from scipy import stats as st

from stats import anytime, means, proportions
from stats.metric_inputs import CONVERSION, COUNT, RATIO, SUM, MetricReason, MetricSlice, reshift
from stats.results import ALPHA, Comparison, Reason

MIN_VISITORS = 2  # per arm: below this no variance can be estimated


class ArmEstimate(NamedTuple):
    value: Any  # rate, mean per visitor or ratio
    variance: Any  # variance of ``value`` (squared standard error)
    ci_low: Any
    ci_high: Any


class Difference(NamedTuple):
    absolute: Any  # value_t - value_c
    se: Any  # standard error of the difference (unpooled)
    statistic: Any  # z (pooled for conversion) or Welch t
    dof: Any  # inf for z-tests
    p_value: Any  # two-sided, fixed horizon
    ci_always_valid_low: Any  # confidence sequence on the difference (stats.anytime)
    ci_always_valid_high: Any
    always_valid_p_value: Any  # its dual: <= alpha exactly when the CS excludes 0


class Relative(NamedTuple):
    relative: Any  # (m_t - m_c) / |m_c|
    log_scale: Any  # True: estimate/se are ln(m_t/m_c); False: the linear relative change
    estimate: Any
    se: Any
    ci_low: Any  # relative change (back-transformed when log_scale)
    ci_high: Any


@dataclass(frozen=True)
class MetricKind:
    """How one metric type is estimated."""

    test: str  # "z_pooled" | "welch_t" | "delta_z": the fixed-horizon test
    arm: Callable[[MetricSlice, float], ArmEstimate]
    difference: Callable[[MetricSlice, MetricSlice, float], Difference]
    cuped: bool  # whether CUPED is offered
    undefined: str  # reason code when an arm with visitors has no value


def _f(x):
    return np.asarray(x, dtype=float)


# ---------------------------------------------------------------- conversion


def conversion_arm(s: MetricSlice, alpha: float = ALPHA) -> ArmEstimate:
    n, x = _f(s.visitors), _f(s.value_sum)
    with np.errstate(all="ignore"):
        p = np.where(n > 0, x / n, np.nan)
        var = np.where(n >= MIN_VISITORS, p * (1 - p) / n, np.nan)
    low, high = proportions.wilson_interval(x, n, alpha)
    return ArmEstimate(p, var, low, high)


def conversion_difference(c: MetricSlice, t: MetricSlice, alpha: float = ALPHA) -> Difference:
    r = proportions.compare(c.value_sum, c.visitors, t.value_sum, t.visitors, alpha)
    return _difference(r)


# ---------------------------------------------------------------- count and sum


def mean_arm(s: MetricSlice, alpha: float = ALPHA) -> ArmEstimate:
    """Sums of (y - K): the variance is shift-invariant, the mean and interval add K back."""
    n, shift = _f(s.visitors), _f(s.value_shift)
    mean, var = means.moments(n, s.value_sum, s.value_sumsq)
    low, high = means.t_interval(n, s.value_sum, s.value_sumsq, alpha)
    with np.errstate(all="ignore"):
        return ArmEstimate(mean + shift, var / n, low + shift, high + shift)


def mean_difference(c: MetricSlice, t: MetricSlice, alpha: float = ALPHA) -> Difference:
    if not np.all(_f(c.value_shift) == _f(t.value_shift)):  # one shift for both arms
        c = reshift(c, value_shift=t.value_shift, pre_shift=t.pre_shift)
    r = means.compare(
        c.visitors, c.value_sum, c.value_sumsq, t.visitors, t.value_sum, t.value_sumsq, alpha, t.value_shift
    )
    return _difference(r)


def _difference(r: Comparison) -> Difference:
    return Difference(
        r.absolute, r.se_absolute, r.statistic, r.dof, r.p_value,
        r.ci_always_valid_low, r.ci_always_valid_high, r.always_valid_p_value,
    )


# ---------------------------------------------------------------- ratio


def ratio_arm(s: MetricSlice, alpha: float = ALPHA) -> ArmEstimate:
    """Ratio of sums with its delta-method variance and normal interval."""
    n = _f(s.visitors)
    da, db = _f(s.numerator_sum), _f(s.denominator_sum)  # Σ(a - Ka), Σ(b - Kb)
    with np.errstate(all="ignore"):
        a, b = da + n * _f(s.numerator_shift), db + n * _f(s.denominator_shift)  # Σa, Σb
        ratio = np.where(b != 0, a / b, np.nan)
        mu_b = b / n
        # per-visitor sample (co)variances from the shifted sums (shift-invariant)
        s_aa = np.maximum((_f(s.numerator_sumsq) - da * da / n) / (n - 1), 0.0)
        s_bb = np.maximum((_f(s.denominator_sumsq) - db * db / n) / (n - 1), 0.0)
        s_ab = (_f(s.cross_sum) - da * db / n) / (n - 1)
        var = np.maximum(s_aa - 2 * ratio * s_ab + ratio**2 * s_bb, 0.0) / (n * mu_b**2)
        var = np.where(n >= MIN_VISITORS, var, np.nan)
        half = st.norm.ppf(1 - alpha / 2) * np.sqrt(var)
    return ArmEstimate(ratio, var, ratio - half, ratio + half)


def ratio_difference(c: MetricSlice, t: MetricSlice, alpha: float = ALPHA) -> Difference:
    arm_c, arm_t = ratio_arm(c, alpha), ratio_arm(t, alpha)
    with np.errstate(all="ignore"):
        diff = arm_t.value - arm_c.value
        var = arm_t.variance + arm_c.variance
        se = np.where(var > 0, np.sqrt(var), np.nan)
        z = diff / se
        p = 2 * st.norm.sf(np.abs(z))
    n = _f(c.visitors) + _f(t.visitors)
    low, high = anytime.confidence_sequence_arrays(diff, se, n, alpha)
    dof = np.where(np.isfinite(z), np.inf, np.nan)
    return Difference(diff, se, z, dof, p, low, high, anytime.p_value_arrays(diff, se, n))


KINDS: dict[str, MetricKind] = {
    CONVERSION: MetricKind("z_pooled", conversion_arm, conversion_difference, True, Reason.NON_FINITE_INPUT),
    COUNT: MetricKind("welch_t", mean_arm, mean_difference, True, Reason.NON_FINITE_INPUT),
    SUM: MetricKind("welch_t", mean_arm, mean_difference, True, Reason.NON_FINITE_INPUT),
    RATIO: MetricKind("delta_z", ratio_arm, ratio_difference, False, MetricReason.DENOMINATOR_ZERO),
}


# ---------------------------------------------------------------- relative change


def to_relative(log_scale, value):
    """Back-transform a value on the test scale to a relative change."""
    with np.errstate(all="ignore"):
        return np.where(log_scale, np.expm1(value), value)


def relative(c: ArmEstimate, t: ArmEstimate, quantile) -> Relative:
    """Relative change of t over c with its interval at ``quantile`` (see module doc)."""
    m_c, m_t = _f(c.value), _f(t.value)
    v_c, v_t = _f(c.variance), _f(t.variance)
    with np.errstate(all="ignore"):
        log_scale = (m_c > 0) & (m_t > 0)
        sign = np.sign(m_c)  # (m_t - m_c)/|m_c| = sign(m_c) (m_t/m_c - 1)
        linear = sign * (m_t / m_c - 1)
        se_linear = np.sqrt(v_t / m_c**2 + m_t**2 * v_c / m_c**4)
        log_ratio = np.log(m_t / m_c)
        se_log = np.sqrt(v_t / m_t**2 + v_c / m_c**2)
        defined = (m_c != 0) & np.isfinite(m_c) & np.isfinite(m_t)
        estimate = np.where(log_scale, log_ratio, linear)
        se = np.where(log_scale, se_log, se_linear)
        se = np.where(defined & (se > 0), se, np.nan)
        low = to_relative(log_scale, estimate - quantile * se)
        high = to_relative(log_scale, estimate + quantile * se)
    nan = np.nan
    return Relative(
        relative=np.where(defined, linear, nan),
        log_scale=log_scale,
        estimate=np.where(defined, estimate, nan),
        se=se,
        ci_low=low,
        ci_high=high,
    )


def quantile(dof, alpha: float = ALPHA):
    """Two-sided critical value of the metric's test: Student t (inf dof = normal)."""
    with np.errstate(all="ignore"):
        return st.t.ppf(1 - alpha / 2, _f(dof))
