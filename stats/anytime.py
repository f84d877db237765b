"""Anytime-valid inference: asymptotic confidence sequences and their p-values.

A confidence sequence (CS) is a sequence of intervals C_n that covers the true
difference delta *simultaneously at every n* with probability >= 1 - alpha, so a
dashboard can be watched after every visitor and a decision taken at the first look
where C_n excludes 0, without inflating the error rate. A fixed-horizon interval
covers at one pre-planned n only (looking every 100 visitors at an A/A test shows
"significant" in about 30% of runs).

Construction (Waudby-Smith, Arnold, Wu, Ramdas & Howard 2023/2024, "Time-uniform
central limit theory and asymptotic confidence sequences", Thm 2.2 / eq. (9); the
form GrowthBook uses; Howard et al. 2021 for the normal mixture boundary). Let D_n
be the estimated difference after n units with standard error se_n, so
sigma_n^2 = n se_n^2 is the per-unit variance of the difference. Mixing the
Gaussian likelihood ratio over a N(0, 1/rho^2) prior gives the boundary

    |D_n - delta| <= se_n * sqrt( 2 (x + 1) / x * ln( sqrt(x + 1) / alpha ) ),
    x = n rho^2,

valid uniformly over n asymptotically (it is exactly valid for Gaussian data with
known variance, by Ville's inequality on the mixture martingale). For martingale
differences (adaptive allocation, AIPW scores) the same boundary holds with n the
number of decisions and se_n the martingale standard error (Waudby-Smith et al.
2022, "Anytime-valid off-policy inference for contextual bandits").

Tuning. rho^2 = (-2 ln a + ln(1 - 2 ln a)) / TUNING_N with a = 0.05 makes the CS
tightest at n = TUNING_N total units (eq. 161 of the paper). At its best the 95% CS
is 3.04 standard errors wide on each side instead of 1.96: that is the price of
being allowed to look at any time. The price rises slowly away from TUNING_N: with
TUNING_N = 10,000 total units (5,000 per arm in a two-arm test) the multiplier is
3.86 at 1,000 units, 3.36 at 2,000, 3.12 at 4,000, 3.06 at 20,000, 3.13 at 40,000,
3.21 at 80,000 and 3.34 at 200,000: within 3% of the optimum from 4,000 to 40,000
units, the sizes Lever experiments usually reach (the previous mSPRT default,
5,000, is within 3% from 2,000 to 20,000 but costs more on large tests). rho is tuned once at alpha = 0.05 and kept for every alpha, so the p-value
below is the exact dual of the CS: p <= alpha iff 0 is outside the level-alpha CS.

Every function here is vectorised over numpy arrays (NaN where undefined); the
scalar wrappers return ``None`` instead of NaN for the JSON-bound results.
"""
from __future__ import annotations

import math

import numpy as np

from stats.results import ALPHA, finite

TUNING_N: int = 10_000  # total units (all arms) at which the 95% CS is tightest
TUNING_ALPHA = 0.05  # level the mixture is tuned for (kept for every alpha: CS <-> p duality)

BETTER, WORSE, INCONCLUSIVE = "better", "worse", "inconclusive"


def rho_squared(tuning_n: float = TUNING_N) -> float:
    """Mixture precision rho^2 making the 95% CS tightest at ``tuning_n`` units."""
    log_term = -2 * math.log(TUNING_ALPHA)
    return (log_term + math.log(log_term + 1)) / tuning_n


def half_width_multiplier(n, alpha: float = ALPHA, tuning_n: float = TUNING_N):
    """Half-width of the CS in standard errors: sqrt(2 (x+1)/x ln(sqrt(x+1)/alpha)),
    x = n rho^2 (vectorised; NaN for n <= 0). Compare z_{0.975} = 1.96."""
    x = np.asarray(n, dtype=float) * rho_squared(tuning_n)
    with np.errstate(all="ignore"):
        m = np.sqrt(2 * (x + 1) / x * (0.5 * np.log1p(x) - math.log(alpha)))
    return np.where(x > 0, m, np.nan)


def confidence_sequence_arrays(difference, standard_error, n, alpha: float = ALPHA,
                               tuning_n: float = TUNING_N):
    """(low, high) of the two-sided CS, element-wise; NaN where se <= 0, n <= 0 or
    any input is not finite."""
    d = np.asarray(difference, dtype=float)
    se = np.asarray(standard_error, dtype=float)
    nn = np.asarray(n, dtype=float)
    with np.errstate(all="ignore"):
        half = se * half_width_multiplier(nn, alpha, tuning_n)
        ok = np.isfinite(d) & np.isfinite(se) & np.isfinite(nn) & (se > 0) & (nn > 0)
        ok &= np.isfinite(half)
    return np.where(ok, d - half, np.nan), np.where(ok, d + half, np.nan)


def p_value_arrays(difference, standard_error, n, tuning_n: float = TUNING_N):
    """Always-valid p-value min(1, 1/Lambda_n) of the mixture martingale (vectorised).

    ln Lambda = -ln(1 + x)/2 + x/(1 + x) * z^2/2 with z = D/se, x = n rho^2; this is
    the mSPRT of Johari et al. (2017) with mixing variance tau^2 = rho^2 n se^2, and
    p <= alpha exactly when 0 is outside the level-alpha CS. Log space: no overflow.
    """
    d = np.asarray(difference, dtype=float)
    se = np.asarray(standard_error, dtype=float)
    x = np.asarray(n, dtype=float) * rho_squared(tuning_n)
    with np.errstate(all="ignore"):
        z = d / se
        log_lambda = -0.5 * np.log1p(x) + x / (1 + x) * z**2 / 2
        p = np.exp(np.minimum(0.0, -log_lambda))
        ok = np.isfinite(d) & (se > 0) & np.isfinite(se) & (x > 0) & np.isfinite(x)
        ok &= ~np.isnan(log_lambda)
    return np.where(ok, p, np.nan)


def confidence_sequence(difference: float, standard_error: float, n: float, alpha: float = ALPHA,
                        tuning_n: float = TUNING_N) -> tuple[float, float] | None:
    """Two-sided always-valid (1 - alpha) interval for a difference after ``n`` total
    units; ``None`` when se <= 0, n <= 0 or anything is not finite."""
    if not _valid(difference, standard_error, n, alpha, tuning_n):
        return None
    low, high = confidence_sequence_arrays(difference, standard_error, n, alpha, tuning_n)
    lo, hi = finite(low), finite(high)
    return None if lo is None or hi is None else (lo, hi)


def always_valid_p_value(difference: float, standard_error: float, n: float,
                         tuning_n: float = TUNING_N) -> float | None:
    """Always-valid p-value (dual of the CS); ``None`` when it is undefined."""
    if not _valid(difference, standard_error, n, ALPHA, tuning_n):
        return None
    return finite(p_value_arrays(difference, standard_error, n, tuning_n))


def decide(ci_always_valid: tuple[float, float] | None, higher_is_better: bool = True) -> str:
    """"better" when the CS lies entirely on the good side of 0, "worse" when entirely
    on the bad side, else "inconclusive" (also for a missing interval)."""
    if ci_always_valid is None:
        return INCONCLUSIVE
    low, high = ci_always_valid
    if not (math.isfinite(low) and math.isfinite(high)):
        return INCONCLUSIVE
    if low > 0:
        return BETTER if higher_is_better else WORSE
    if high < 0:
        return WORSE if higher_is_better else BETTER
    return INCONCLUSIVE


def decide_from_p(p_value: float | None, difference: float | None, alpha: float = ALPHA,
                  higher_is_better: bool = True) -> str:
    """Decision from a (multiplicity-adjusted) p-value and the sign of the estimate."""
    if p_value is None or difference is None or not p_value <= alpha or difference == 0:
        return INCONCLUSIVE
    up = difference > 0
    return BETTER if up == higher_is_better else WORSE


def _valid(difference, standard_error, n, alpha, tuning_n) -> bool:
    try:
        values = [float(v) for v in (difference, standard_error, n, alpha, tuning_n)]
    except (TypeError, ValueError, OverflowError):
        return False
    if not all(math.isfinite(v) for v in values):
        return False
    _, se, nn, a, t = values
    return se > 0 and nn > 0 and 0 < a < 1 and t > 0
