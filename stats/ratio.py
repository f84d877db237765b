"""Interval for a ratio of two independent means: Fieller's theorem (vectorised).

The relative uplift r = m_t / m_c - 1 is a ratio, and its sampling distribution is
skewed: the symmetric delta-method interval r +- q se_r undercovers above and
overcovers below (at n = 2,000 per arm and a 5% rate it misses 3.7% above, 1.3%
below). Fieller (1954) inverts the exactly pivotal statistic instead: for the true
ratio R, (m_t - R m_c) / sqrt(V_t + R^2 V_c) is ~N(0, 1) (t for estimated variances),
so the interval is {R : (m_t - R m_c)^2 <= q^2 (V_t + R^2 V_c)}, i.e. the roots of

    a R^2 - 2 m_t m_c R + (m_t^2 - q^2 V_t) = 0,     a = m_c^2 - q^2 V_c,

    R = (m_t m_c +- sqrt(q^2 (m_t^2 V_c + m_c^2 V_t) - q^4 V_t V_c)) / a.

The interval is bounded exactly when a > 0, i.e. when the control mean is itself
significantly different from 0 at the same level; otherwise it is a union of two
rays or the whole line, and we return NaN (``metrics`` reports
``relative_unbounded``). It is asymmetric around the point estimate like the ratio
itself, works for means of any sign, and for large n tends to the delta method.
"""
from __future__ import annotations

import numpy as np


def fieller_interval(mean_t, var_mean_t, mean_c, var_mean_c, quantile):
    """(low, high) of the ratio mean_t / mean_c (variances *of the means*, not per unit)."""
    m_t, v_t = np.asarray(mean_t, dtype=float), np.asarray(var_mean_t, dtype=float)
    m_c, v_c = np.asarray(mean_c, dtype=float), np.asarray(var_mean_c, dtype=float)
    q2 = np.asarray(quantile, dtype=float) ** 2
    with np.errstate(all="ignore"):
        a = m_c**2 - q2 * v_c
        disc = q2 * (m_t**2 * v_c + m_c**2 * v_t) - q2**2 * v_t * v_c
        root = np.sqrt(np.maximum(disc, 0.0))
        low, high = (m_t * m_c - root) / a, (m_t * m_c + root) / a
        ok = (a > 0) & (disc >= 0) & np.isfinite(low) & np.isfinite(high)
    return np.where(ok, low, np.nan), np.where(ok, high, np.nan)
