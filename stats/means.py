"""Numeric outcomes from sufficient statistics: t interval for a mean, Welch's t-test.

For one assignment i the outcome y_i is the sum of its reward values (0 when none),
so an arm is summarised by n, S = sum y_i and Q = sum y_i^2:

    mean = S / n,   sample variance s^2 = (Q - S^2 / n) / (n - 1).

The one-pass formula loses precision for huge, nearly-constant values (1e9 + noise), so
S and Q may be sums of (y_i - K) for a constant K near the values (``stats.welford``):
the variance is the same formula on them, and means add K back (``shift`` arguments).
Tiny negative results of rounding are clamped to 0. All functions are vectorised.
"""
from __future__ import annotations

import numpy as np
from scipy import stats as st

from stats import anytime
from stats.ratio import fieller_interval
from stats.results import ALPHA, Comparison


def moments(n, total, total_sq):
    """(mean, unbiased sample variance) from n, sum and sum of squares; NaN if n < 2."""
    n = np.asarray(n, dtype=float)
    total = np.asarray(total, dtype=float)
    total_sq = np.asarray(total_sq, dtype=float)
    with np.errstate(all="ignore"):
        mean = np.where(n > 0, total / n, np.nan)
        var = np.maximum((total_sq - total**2 / n) / (n - 1), 0.0)
    return mean, np.where(n >= 2, var, np.nan)


def t_interval(n, total, total_sq, alpha: float = ALPHA, shift=0.0):
    """mean +- t_{n-1, 1-alpha/2} * s / sqrt(n): the classic interval for a mean
    (exact for normal data, asymptotically valid otherwise by the CLT); ``shift`` as in ``compare``."""
    mean, var = moments(n, total, total_sq)
    mean = mean + shift
    n = np.asarray(n, dtype=float)
    with np.errstate(all="ignore"):
        half = st.t.ppf(1 - alpha / 2, n - 1) * np.sqrt(var / n)
    return mean - half, mean + half


def welch_dof(var_c, n_c, var_t, n_t):
    """Welch-Satterthwaite degrees of freedom of (s_t^2/n_t + s_c^2/n_c)."""
    a, b = var_t / n_t, var_c / n_c
    return (a + b) ** 2 / (a**2 / (n_t - 1) + b**2 / (n_c - 1))


def compare(n_c, s_c, q_c, n_t, s_t, q_t, alpha: float = ALPHA, shift=0.0) -> Comparison:
    """Treatment (t) vs control (c) means with Welch's unequal-variance t-test.

    * Absolute: D = m_t - m_c, SE = sqrt(s_t^2/n_t + s_c^2/n_c), t = D / SE with
      Welch-Satterthwaite dof; interval D +- t_{dof} SE. Identical to
      ``scipy.stats.ttest_ind(equal_var=False)`` on the raw outcomes.
    * Relative r = m_t/m_c - 1: Fieller interval (``stats.ratio``) with the same
      t_{dof} quantile, asymmetric like the ratio; null (reason relative_unbounded)
      when the control mean is not significantly non-zero. ``se_relative`` is the
      delta-method SE: Var ~= s_t^2/(n_t m_c^2) + m_t^2 s_c^2/(n_c m_c^4).
    * Anytime-valid: confidence sequence on D with SE and its dual p-value
      (``stats.anytime``, n = n_c + n_t, normal boundary).

    ``shift``: S and Q may be sums of (y - shift) for both arms (``stats.metric_inputs``).
    """
    n_c, n_t = np.asarray(n_c, dtype=float), np.asarray(n_t, dtype=float)
    m_c, v_c = moments(n_c, s_c, q_c)
    m_t, v_t = moments(n_t, s_t, q_t)
    with np.errstate(all="ignore"):
        # sums of (y - shift): the variances need no change, and the difference is taken
        # before the shift goes back in (1e9 + 0.3 minus 1e9 would keep only 1e-7 of it)
        diff = m_t - m_c
    m_c, m_t = m_c + shift, m_t + shift
    with np.errstate(all="ignore"):
        var_diff = v_t / n_t + v_c / n_c
        se = np.sqrt(var_diff)
        dof = welch_dof(v_c, n_c, v_t, n_t)
        t_crit = st.t.ppf(1 - alpha / 2, dof)
        t_stat = diff / se
        p_value = 2 * st.t.sf(np.abs(t_stat), dof)
        rel = diff / m_c  # = m_t / m_c - 1, without losing the digits of a tiny relative change
        se_rel = np.sqrt(v_t / (n_t * m_c**2) + m_t**2 * v_c / (n_c * m_c**4))
        ratio_low, ratio_high = fieller_interval(m_t, v_t / n_t, m_c, v_c / n_c, t_crit)
        av_low, av_high = anytime.confidence_sequence_arrays(diff, se, n_c + n_t, alpha)
        av_p = anytime.p_value_arrays(diff, se, n_c + n_t)

    with np.errstate(all="ignore"):  # undefined entries are masked to NaN below
        enough = (n_c >= 2) & (n_t >= 2)
        tested = enough & (var_diff > 0)
        has_rel = tested & (m_c != 0)
        nan = np.nan
        return Comparison(
            absolute=np.where(enough, diff, nan),
            se_absolute=np.where(tested, se, nan),
            ci_absolute_low=np.where(tested, diff - t_crit * se, nan),
            ci_absolute_high=np.where(tested, diff + t_crit * se, nan),
            relative=np.where(enough & (m_c != 0), rel, nan),
            se_relative=np.where(has_rel, se_rel, nan),
            ci_relative_low=np.where(has_rel, ratio_low - 1, nan),
            ci_relative_high=np.where(has_rel, ratio_high - 1, nan),
            statistic=np.where(tested, t_stat, nan),
            dof=np.where(tested, dof, nan),
            p_value=np.where(tested, p_value, nan),
            always_valid_p_value=np.where(tested, av_p, nan),
            ci_always_valid_low=np.where(tested, av_low, nan),
            ci_always_valid_high=np.where(tested, av_high, nan),
        )
