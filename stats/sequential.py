"""Always-valid inference: the mixture sequential probability ratio test (mSPRT).

Johari, Koomen, Pekelis & Walsh (2017, "Peeking at A/B tests"; Operations Research
2022 "Always valid inference"). Let D be the estimated difference of means with
(estimated) variance V; approximately D ~ N(delta, V). Mixing the likelihood ratio of
delta against 0 over a normal prior delta ~ N(0, tau^2) gives

    Lambda = sqrt(V / (V + tau^2)) * exp( tau^2 D^2 / (2 V (V + tau^2)) ).

Under H0 (delta = 0) Lambda is a nonnegative martingale with mean 1 as data accrue,
so by Ville's inequality P(sup_n Lambda_n >= 1/alpha) <= alpha: the p-value
p_n = min(1, 1/Lambda_n) (and its running minimum) is valid at *any* stopping time,
however often someone looks. The fixed-horizon p-value is valid only at one
pre-planned look.

Choice of tau (the mixing standard deviation). tau sets at which sample size the
test is most powerful. We follow Howard et al. (2021) / Waudby-Smith et al. (2023,
eq. 161) as GrowthBook does: tau^2 = rho^2 * s^2, with s^2 = N * V the per-unit
variance of the difference (N = total units in both arms) and

    rho^2 = (-2 ln alpha + ln(-2 ln alpha + 1)) / N*,

which makes the matching confidence sequence tightest at N = N* total units
(default 5,000, GrowthBook's default tuning). Expressing tau on the per-unit scale
makes the test unit-free (rates, revenue), and because N * V is stable while data
accrue under a fixed split, tau^2 is effectively a constant. With that substitution
the formula is exactly GrowthBook's sequential p-value (tests cross-check it).
"""
from __future__ import annotations

import numpy as np

from stats.results import ALPHA

DEFAULT_N_STAR = 5_000.0  # total units at which the confidence sequence is tightest


def mixing_rho_squared(alpha: float = ALPHA, n_star: float = DEFAULT_N_STAR) -> float:
    """rho^2 of Waudby-Smith et al. (2023) eq. 161: optimal for a CS at ``n_star`` units."""
    log_term = -2 * np.log(alpha)
    return float((log_term + np.log(log_term + 1)) / n_star)


def msprt_p_value(diff, variance, n_total, alpha: float = ALPHA, n_star: float = DEFAULT_N_STAR):
    """Always-valid p-value min(1, 1/Lambda) of the normal-mixture SPRT (vectorised).

    ``diff``: estimated difference of means; ``variance``: its variance V;
    ``n_total``: units in both arms. NaN where V <= 0 or N == 0 (undefined).
    Computed in log space so huge evidence cannot overflow to inf.
    """
    d = np.asarray(diff, dtype=float)
    v = np.asarray(variance, dtype=float)
    n = np.asarray(n_total, dtype=float)
    rho2 = mixing_rho_squared(alpha, n_star)
    with np.errstate(all="ignore"):
        growth = 1 + n * rho2  # (V + tau^2) / V with tau^2 = rho^2 N V
        log_lambda = -0.5 * np.log(growth) + rho2 * n * d**2 / (2 * v * growth)
        p = np.exp(np.minimum(0.0, -log_lambda))
    return np.where((v > 0) & (n > 0) & np.isfinite(log_lambda), p, np.nan)


def running_min(p_values, axis: int = -1):
    """Running minimum over looks (NaN looks are skipped): the p-value an analyst who
    stops at the first significant look effectively uses. Still always valid."""
    filled = np.where(np.isnan(p_values), 1.0, p_values)
    return np.minimum.accumulate(filled, axis=axis)
