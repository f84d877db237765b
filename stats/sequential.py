"""The mixture SPRT view of ``stats.anytime`` (kept for callers of the mSPRT name).

Johari, Koomen, Pekelis & Walsh (2017, "Peeking at A/B tests"): let D be the
estimated difference with variance V, approximately D ~ N(delta, V). Mixing the
likelihood ratio of delta against 0 over delta ~ N(0, tau^2) gives

    Lambda = sqrt(V / (V + tau^2)) * exp( tau^2 D^2 / (2 V (V + tau^2)) ),

a nonnegative martingale with mean 1 under H0, so by Ville's inequality
p_n = min(1, 1/Lambda_n) is valid at any stopping time. With tau^2 = rho^2 N V
(N total units, rho^2 of ``anytime.rho_squared``) this is exactly the p-value dual
to Lever's confidence sequence, and exactly GrowthBook's sequential p-value for the
same tuning (tests cross-check both). There is one always-valid method in the
package: this module delegates to ``stats.anytime``.
"""
from __future__ import annotations

import numpy as np

from stats import anytime

DEFAULT_N_STAR = float(anytime.TUNING_N)  # total units at which the confidence sequence is tightest


def mixing_rho_squared(n_star: float = DEFAULT_N_STAR) -> float:
    """rho^2 of Waudby-Smith et al. (2023) eq. 161, tuned at alpha = 0.05 for ``n_star`` units."""
    return anytime.rho_squared(n_star)


def msprt_p_value(diff, variance, n_total, n_star: float = DEFAULT_N_STAR):
    """Always-valid p-value min(1, 1/Lambda) (vectorised); NaN where V <= 0 or N <= 0."""
    with np.errstate(all="ignore"):
        se = np.sqrt(np.asarray(variance, dtype=float))
    return anytime.p_value_arrays(diff, se, n_total, n_star)


def running_min(p_values, axis: int = -1):
    """Running minimum over looks (NaN looks are skipped): the p-value an analyst who
    stops at the first significant look effectively uses. Still always valid."""
    filled = np.where(np.isnan(p_values), 1.0, p_values)
    return np.minimum.accumulate(filled, axis=axis)
