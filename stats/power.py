"""Power and sample-size calculator for the create form (pure, no I/O).

A comparison of one variant with the control, n visitors in each, a true difference
delta and per-visitor standard deviations s_c, s_t has standard error
se(n) = sqrt((s_c^2 + s_t^2) / n). A two-sided test that rejects when
|D| > c * se rejects with probability

    power(n) = Phi(delta / se - c) + Phi(-delta / se - c),

with c = z_{1 - alpha/2} for the fixed-horizon test at its single planned look, and
c = the confidence-sequence multiplier of ``stats.anytime`` at N = 2n units for
the anytime-valid rule (the chance that the sequence already excludes 0 at n; a
test that is watched can stop earlier, so this is the power *by* n, a lower
bound). ``required_visitors`` solves power(n) = target for the smallest integer n.

Inputs: binary metrics give ``baseline_rate`` (s^2 = p (1 - p) per arm, treatment at
p (1 + mde)); numeric metrics give ``baseline_mean`` and ``sd`` (equal sds). ``mde``
is relative (0.05 = +5%) unless ``relative=False``. With several variants the
decision is Holm-adjusted; plan with alpha / (variants - 1) to be safe (Bonferroni).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import optimize
from scipy import stats as st

from stats import anytime
from stats.results import ALPHA, Reason, jsonable

RULES = ("fixed_horizon", "anytime_valid")
MAX_VISITORS = 10**9  # per variant: beyond this the plan is reported as unreachable


@dataclass(frozen=True)
class Plan:
    """Visitors needed for ``power`` at ``alpha`` against ``mde`` under ``rule``."""

    rule: str
    per_variant: int | None
    total: int | None  # per_variant x variants: what ``planned_visitors`` expects
    difference: float | None  # absolute difference the plan detects
    alpha: float
    power: float
    reason: str | None = None

    def to_dict(self) -> dict:
        return jsonable(self)


def _effect(baseline_rate, baseline_mean, sd, mde, relative) -> tuple[float, float] | None:
    """(absolute difference, s_c^2 + s_t^2) or None when the inputs make no sense."""
    values = [v for v in (baseline_rate, baseline_mean, sd, mde) if v is not None]
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values) or mde is None:
        return None
    if baseline_rate is not None:
        p_c = float(baseline_rate)
        p_t = p_c * (1 + mde) if relative else p_c + mde
        if not (0 < p_c < 1 and 0 < p_t < 1) or p_t == p_c:
            return None
        return p_t - p_c, p_c * (1 - p_c) + p_t * (1 - p_t)
    if baseline_mean is None or sd is None or sd <= 0:
        return None
    delta = baseline_mean * mde if relative else mde
    return (delta, 2 * sd**2) if delta != 0 else None


def _critical(rule: str, n, alpha: float) -> float:
    if rule == "fixed_horizon":
        return float(st.norm.ppf(1 - alpha / 2))
    return float(anytime.half_width_multiplier(2 * n, alpha))


def power_at(n_per_variant: float, difference: float, variance_sum: float, rule: str = "fixed_horizon",
             alpha: float = ALPHA) -> float:
    """Probability the rule decides by ``n_per_variant`` visitors per arm (see module doc)."""
    se = math.sqrt(variance_sum / n_per_variant)
    c = _critical(rule, n_per_variant, alpha)
    shift = abs(difference) / se
    return float(st.norm.cdf(shift - c) + st.norm.cdf(-shift - c))


def required_visitors(mde: float, baseline_rate: float | None = None, baseline_mean: float | None = None,
                      sd: float | None = None, alpha: float = ALPHA, power: float = 0.8,
                      rule: str = "fixed_horizon", variants: int = 2, relative: bool = True) -> Plan:
    """Smallest visitors per variant with ``power`` to detect ``mde`` (reason code if impossible)."""
    effect = _effect(baseline_rate, baseline_mean, sd, mde, relative)
    ok = rule in RULES and 0 < alpha < 1 and 0 < power < 1 and variants >= 2 and effect is not None
    if not ok:
        return Plan(rule, None, None, None, alpha, power, Reason.UNSUPPORTED)
    difference, variance_sum = effect

    def gap(n: float) -> float:
        return power_at(n, difference, variance_sum, rule, alpha) - power

    if gap(MAX_VISITORS) < 0:
        return Plan(rule, None, None, difference, alpha, power, Reason.NOT_ENOUGH_DATA)
    low = 2.0
    if gap(low) >= 0:
        n = 2
    else:
        root = optimize.brentq(gap, low, MAX_VISITORS, xtol=1e-6)
        n = math.ceil(root - 1e-9)
        n = n if gap(n) >= 0 else n + 1
    return Plan(rule, n, n * variants, difference, alpha, power)
