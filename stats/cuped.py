"""CUPED: variance reduction with the pre-period value of the same metric.

Deng, Xu, Kohavi & Walker (2013), "Improving the sensitivity of online controlled
experiments by utilizing pre-experiment data". For visitor i, y_i is the metric in
the experiment and x_i the same metric over the pre-period window (0 when the
visitor had none). Because x is measured before exposure it is independent of the
assignment, so for any fixed theta

    Y_adj,k = mean_k(y) - theta (mean_k(x) - mean(x))

is an unbiased estimate of arm k's mean (mean(x) is the grand mean over all arms),
and the variance of mean_k(y - theta x) is smallest at theta = cov(y, x) / var(x).

theta here is pooled over all the experiment's visitors (every variant of the
analysed traffic) using *within-arm* centring:

    theta = sum_k S_xy,k / sum_k S_xx,k,   S_xy,k = sum_i (x_i - xbar_k)(y_i - ybar_k).

That is exactly the slope of the OLS regression y ~ arm indicators + x, so the
CUPED difference Y_adj,t - Y_adj,c = (ybar_t - ybar_c) - theta (xbar_t - xbar_c)
equals the regression's treatment coefficient (tests check this against
statsmodels), and a treatment effect on y cannot leak into theta through the
arm means.

Variance: theta is treated as known (its estimation error is O(1/n), negligible at
the sample sizes where CUPED matters, as in Deng et al.), so arm k's adjusted values
y - theta x have sample variance s_adj,k^2 = (S_yy,k - 2 theta S_xy,k + theta^2 S_xx,k)
/ (n_k - 1), and the adjusted difference is tested with Welch's t on those values,
for every metric type (a conversion's adjusted values are no longer binary, so the
pooled z-test does not apply; at CUPED sample sizes Welch's t is the z-test).
variance_reduction = 1 - Var(adjusted difference) / Var(raw difference), both with
the same unpooled sample variances; about rho^2, the squared correlation of x and y.

Everything is vectorised over numpy fields of the ``MetricSlice`` arguments.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
from scipy import stats as st

from stats.means import welch_dof
from stats.metric_inputs import CONVERSION, MetricReason, MetricSlice, raw_sumsq
from stats.results import ALPHA


class CupedFit(NamedTuple):
    theta: Any  # pooled within-arm regression slope of y on x
    pre_mean: Any  # grand mean of x over every analysed visitor


class CupedComparison(NamedTuple):
    absolute: Any  # adjusted treatment mean - adjusted control mean
    se: Any
    ci_low: Any
    ci_high: Any
    statistic: Any  # Welch t on the adjusted values
    dof: Any
    p_value: Any
    variance_reduction: Any  # 1 - Var_adj / Var_raw of the difference
    adjusted_control: Any  # Y_adj of the control
    adjusted_treatment: Any  # Y_adj of the treatment


def _f(x):
    return np.asarray(x, dtype=float)


def _centred(s: MetricSlice, metric_type: str):
    """(n, ybar, xbar, S_yy, S_xx, S_xy): within-arm centred sums from one-pass sums."""
    n = _f(s.visitors)
    sy, sx = _f(s.value_sum), _f(s.pre_sum)  # Σ(y - K), Σ(x - L): centred sums are shift-invariant
    syy = sy if metric_type == CONVERSION else _f(s.value_sumsq)  # y in {0, 1} (K = 0): y^2 = y
    with np.errstate(all="ignore"):
        s_yy = np.maximum(syy - sy * sy / n, 0.0)
        s_xx = np.maximum(_f(s.pre_sumsq) - sx * sx / n, 0.0)
        s_xy = _f(s.pre_cross_sum) - sx * sy / n
        return n, _f(s.value_shift) + sy / n, _f(s.pre_shift) + sx / n, s_yy, s_xx, s_xy


def fit(arms: Sequence[MetricSlice], metric_type: str) -> CupedFit:
    """theta and the grand pre-period mean, pooled over ``arms`` (all variants)."""
    parts = [_centred(s, metric_type) for s in arms]
    n = sum(p[0] for p in parts)
    with np.errstate(all="ignore"):
        pre_mean = sum(_f(s.pre_sum) + _f(s.visitors) * _f(s.pre_shift) for s in arms) / n
        theta = sum(p[5] for p in parts) / sum(p[4] for p in parts)
    return CupedFit(theta, pre_mean)


def reason(arms: Sequence[MetricSlice], metric_type: str) -> str | None:
    """Why CUPED cannot run on these arms (scalar fields), or None."""
    if sum(float(raw_sumsq(s.visitors, s.pre_sum, s.pre_sumsq, s.pre_shift)) for s in arms) <= 0:
        return MetricReason.NO_PRE_PERIOD_DATA
    if sum(float(_centred(s, metric_type)[4]) for s in arms if s.visitors > 0) <= 0:
        return MetricReason.ZERO_COVARIATE_VARIANCE
    return None


def compare(
    fitted: CupedFit, c: MetricSlice, t: MetricSlice, metric_type: str, alpha: float = ALPHA
) -> CupedComparison:
    """CUPED-adjusted treatment - control with Welch's t on the adjusted values."""
    theta, pre_mean = _f(fitted.theta), _f(fitted.pre_mean)
    n_c, y_c, x_c, syy_c, sxx_c, sxy_c = _centred(c, metric_type)
    n_t, y_t, x_t, syy_t, sxx_t, sxy_t = _centred(t, metric_type)
    with np.errstate(all="ignore"):
        adj_c = y_c - theta * (x_c - pre_mean)
        adj_t = y_t - theta * (x_t - pre_mean)
        diff = adj_t - adj_c
        # sample variance of y - theta x within each arm
        var_c = np.maximum(syy_c - 2 * theta * sxy_c + theta**2 * sxx_c, 0.0) / (n_c - 1)
        var_t = np.maximum(syy_t - 2 * theta * sxy_t + theta**2 * sxx_t, 0.0) / (n_t - 1)
        var_adj = var_t / n_t + var_c / n_c
        var_raw = syy_t / (n_t - 1) / n_t + syy_c / (n_c - 1) / n_c
        se = np.sqrt(var_adj)
        dof = welch_dof(var_c, n_c, var_t, n_t)
        t_crit = st.t.ppf(1 - alpha / 2, dof)
        stat = diff / se
        p = 2 * st.t.sf(np.abs(stat), dof)
        reduction = 1 - var_adj / var_raw
    valid = (n_c >= 2) & (n_t >= 2) & (var_adj > 0) & np.isfinite(theta)
    nan = np.nan
    return CupedComparison(
        absolute=np.where(valid, diff, nan),
        se=np.where(valid, se, nan),
        ci_low=np.where(valid, diff - t_crit * se, nan),
        ci_high=np.where(valid, diff + t_crit * se, nan),
        statistic=np.where(valid, stat, nan),
        dof=np.where(valid, dof, nan),
        p_value=np.where(valid, p, nan),
        variance_reduction=np.where(valid & (var_raw > 0), reduction, nan),
        adjusted_control=np.where(valid, adj_c, nan),
        adjusted_treatment=np.where(valid, adj_t, nan),
    )
