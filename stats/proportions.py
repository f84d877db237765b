"""Binary outcomes: Wilson interval for a rate, pooled two-proportion z-test.

All functions are vectorised: counts may be numpy arrays of any (broadcastable)
shape, so a simulation can analyse thousands of experiments in one call. Undefined
entries come back as NaN; ``metrics`` turns them into reason codes.
"""
from __future__ import annotations

import numpy as np
from scipy import stats as st

from stats import anytime
from stats.ratio import fieller_interval
from stats.results import ALPHA, Comparison


def wilson_interval(conversions, visitors, alpha: float = ALPHA):
    """Wilson score interval for a binomial rate (Wilson 1927).

    It inverts the score test |p_hat - p| <= z sqrt(p (1 - p) / n), solving the
    quadratic in p:  centre = (p_hat + z^2/2n) / (1 + z^2/n),
    half = z / (1 + z^2/n) * sqrt(p_hat (1 - p_hat) / n + z^2 / 4n^2).
    Unlike the Wald interval it stays inside [0, 1] and keeps close to nominal
    coverage for small n or rates near 0/1. Matches statsmodels
    ``proportion_confint(method="wilson")``.
    """
    x = np.asarray(conversions, dtype=float)
    n = np.asarray(visitors, dtype=float)
    z = st.norm.ppf(1 - alpha / 2)
    with np.errstate(all="ignore"):
        p = x / n
        denom = 1 + z**2 / n
        centre = (p + z**2 / (2 * n)) / denom
        half = z / denom * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    valid = n > 0
    return np.where(valid, centre - half, np.nan), np.where(valid, centre + half, np.nan)


def compare(x_c, n_c, x_t, n_t, alpha: float = ALPHA) -> Comparison:
    """Treatment (t) vs control (c) conversion rates.

    * Test: two-proportion z-test with the *pooled* variance under H0: p_t = p_c,
      z = (p_t - p_c) / sqrt(p_bar (1 - p_bar) (1/n_t + 1/n_c)), p_bar = (x_t + x_c) /
      (n_t + n_c); identical to statsmodels ``proportions_ztest``.
    * Absolute interval: Wald with the *unpooled* variance p_t(1-p_t)/n_t +
      p_c(1-p_c)/n_c (the variance is not assumed equal away from H0); identical to
      statsmodels ``confint_proportions_2indep(method="wald", compare="diff")``. Test
      and interval can therefore disagree at the margin (documented, standard).
    * Relative uplift r = p_t/p_c - 1: Fieller interval (``stats.ratio``) with the
      unpooled variances, asymmetric like the ratio; ``se_relative`` stays the
      delta-method standard error Var(p_t/p_c) ~= Var(p_t)/p_c^2 + p_t^2 Var(p_c)/p_c^4.
    * Anytime-valid: confidence sequence on the difference with the unpooled SE and
      its dual p-value (``stats.anytime``; n = n_c + n_t), so p <= alpha exactly
      when the always-valid interval excludes 0.
    """
    x_c, n_c, x_t, n_t = (np.asarray(a, dtype=float) for a in (x_c, n_c, x_t, n_t))
    z_crit = st.norm.ppf(1 - alpha / 2)
    with np.errstate(all="ignore"):
        p_c, p_t = x_c / n_c, x_t / n_t
        var_c, var_t = p_c * (1 - p_c), p_t * (1 - p_t)  # per-unit Bernoulli variances
        diff = p_t - p_c
        se_diff = np.sqrt(var_t / n_t + var_c / n_c)
        p_bar = (x_c + x_t) / (n_c + n_t)
        var_pooled = p_bar * (1 - p_bar) * (1 / n_c + 1 / n_t)
        z = diff / np.sqrt(var_pooled)
        p_value = 2 * st.norm.sf(np.abs(z))

        rel = p_t / p_c - 1
        se_rel = np.sqrt(var_t / (n_t * p_c**2) + p_t**2 * var_c / (n_c * p_c**4))
        ratio_low, ratio_high = fieller_interval(p_t, var_t / n_t, p_c, var_c / n_c, z_crit)
        av_low, av_high = anytime.confidence_sequence_arrays(diff, se_diff, n_c + n_t, alpha)
        av_p = anytime.p_value_arrays(diff, se_diff, n_c + n_t)

    with np.errstate(all="ignore"):  # undefined entries are masked to NaN below
        enough = (n_c >= 2) & (n_t >= 2)
        tested = enough & (var_pooled > 0)
        has_rel = enough & (p_c > 0)
        nan = np.nan
        return Comparison(
            absolute=np.where(enough, diff, nan),
            se_absolute=np.where(enough, se_diff, nan),
            ci_absolute_low=np.where(enough, diff - z_crit * se_diff, nan),
            ci_absolute_high=np.where(enough, diff + z_crit * se_diff, nan),
            relative=np.where(has_rel, rel, nan),
            se_relative=np.where(has_rel, se_rel, nan),
            ci_relative_low=np.where(has_rel, ratio_low - 1, nan),
            ci_relative_high=np.where(has_rel, ratio_high - 1, nan),
            statistic=np.where(tested, z, nan),
            dof=np.where(tested, np.inf, nan),
            p_value=np.where(tested, p_value, nan),
            always_valid_p_value=np.where(tested, av_p, nan),
            ci_always_valid_low=np.where(tested, av_low, nan),
            ci_always_valid_high=np.where(tested, av_high, nan),
        )
