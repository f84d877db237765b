"""Treatment-vs-control contrasts that use *every* visitor of an adaptive experiment.

Under a bandit the policy slice is not a randomised experiment with fixed
probabilities, so plain arm means are biased; but every decision i logged the
probability p_i with which its variant was served, and that makes each decision an
unbiased (conditionally on the past) measurement of every arm. For variant k vs
control c the augmented inverse-propensity (AIPW, doubly robust) score is

    D_i = (mu_k - mu_c) + 1{a_i = k} (y_i - mu_k) / p_i - 1{a_i = c} (y_i - mu_c) / p_i,

with mu an outcome model fitted on *earlier* data only. E[D_i | past] = delta whatever
mu is, so D_i - delta is a martingale difference sequence (Robins et al. 1994;
Hadad, Hirshberg, Zhan, Wager & Athey 2021, PNAS "Confidence intervals for policy
evaluation in adaptive experiments"). A decision serves one variant, so the group
sums of D and D^2 are linear in the logged counters (S = sum y/p, W = sum 1/p,
Q = sum y^2/p^2, X = sum y/p^2, U = sum 1/p^2 per variant):

    sum D   = N d + R_k - R_c,                  R = S - mu W,   d = mu_k - mu_c,
    sum D^2 = N d^2 + 2 d (R_k - R_c) + RR_k + RR_c,   RR = Q - 2 mu X + mu^2 U.

Adaptive weighting. Plain AIPW averages the D_i with equal weights; its variance is
driven by the decisions with tiny p (min_share 0.01 gives 1/p = 100), which is why
it was no more powerful than the holdout alone. Following Hadad et al. (2021) the
scores are averaged with *predictable* weights h_g, fixed per group g of decisions
before the group was served, here groups = (hour period, slice):

    delta_hat = sum_g h_g sum_{i in g} D_i / sum_g h_g N_g,
    Var_hat   = sum_g h_g^2 sum_{i in g} (D_i - delta_hat)^2 / (sum_g h_g N_g)^2.

``WEIGHTINGS`` holds the choices: "stabilised" uses h_g = 1 / sd_g, the inverse of
the predicted conditional sd of a score, sd_g^2 = s_k^2 / p_gk + s_c^2 / p_gc
(Hadad's variance-stabilising weights for a contrast, Luedtke & van der Laan 2016):
every group then contributes the same conditional variance, so the martingale CLT
holds even when the allocation never converges (equal arms); "uniform" (h = 1) is
plain AIPW. Predicted inputs come only from earlier periods: p_gk is the policy
slice's average propensity of the previous period (expected_assignments / N),
1/K for the holdout slice, and mu, s^2 are cumulative arm means and variances up
to the previous period. Without per-period sums the whole log is one group (plain
AIPW with the full-sample mean model: an O(1/N) bias, as in ``ipw``).

Shifted sums (``stats.welford``): D_i depends on y only through y - mu and mu_k - mu_c, so
sums of y - K give the same scores (and their spread without the cancellation of raw sums of
huge values): the groups run on them as they come, with the no-history prediction mu = 0
written as -K.

Anytime validity: S_n = sum h (D - delta) is a martingale, so the normal-mixture
confidence sequence of ``stats.anytime`` applies with n = decisions (Waudby-Smith,
Pekelis, Ramdas et al. 2022, "Anytime-valid off-policy inference for contextual
bandits"; the asymptotic CS only needs the cumulative variance to diverge). For the
contextual mode the same counters give the context-free contrast (marginal
propensities), which stays unbiased; a per-context outcome model would need
per-context sums.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy import stats as st

from stats import anytime, slices
from stats.inputs import ExperimentAggregate, PeriodAggregate, SliceAggregate
from stats.results import ALPHA, Reason, finite, interval, jsonable
from stats.welford import reshift

MIN_PROPENSITY = 1e-3  # predicted propensities are floored here (weights stay bounded)


class GroupSums(NamedTuple):
    """Counters of G groups of decisions x K variants: arrays of shape (..., G, K).

    ``decisions`` (shape (..., G)) is N_g, the decisions of every variant in group g;
    ``propensity`` the *predicted* probability of each variant in the group (known
    before the group was served); ``mu``/``var`` the predicted outcome mean/variance.
    """

    decisions: np.ndarray
    n: np.ndarray
    inv: np.ndarray  # W
    inv_sq: np.ndarray  # U
    ips: np.ndarray  # S
    ips_sq: np.ndarray  # Q
    cross: np.ndarray  # X
    propensity: np.ndarray
    mu: np.ndarray
    var: np.ndarray
    #: the policy slice's average allocation *during* the group's period (expected_assignments / N;
    #: the last known one for a period the policy did not serve): the "policy as deployed"
    deployed: np.ndarray


class Contrast(NamedTuple):
    value: np.ndarray
    se: np.ndarray
    decisions: np.ndarray


def _uniform(g: GroupSums, k: int, c: int) -> np.ndarray:
    return np.ones_like(g.decisions, dtype=float)


def _stabilised(g: GroupSums, k: int, c: int) -> np.ndarray:
    p = np.maximum(g.propensity, MIN_PROPENSITY)
    with np.errstate(all="ignore"):
        var = g.var[..., k] / p[..., k] + g.var[..., c] / p[..., c]
        h = 1 / np.sqrt(var)
    return np.where(np.isfinite(h) & (var > 0), h, 0.0)


WEIGHTINGS: dict[str, Callable[[GroupSums, int, int], np.ndarray]] = {
    "stabilised": _stabilised,
    "uniform": _uniform,
}


def contrast(g: GroupSums, k: int, c: int, weighting: str = "stabilised") -> Contrast:
    """Adaptively weighted AIPW estimate of mean_k - mean_c (vectorised, NaN if undefined)."""
    h = WEIGHTINGS[weighting](g, k, c)
    mu_k, mu_c = g.mu[..., k], g.mu[..., c]
    d = mu_k - mu_c
    r_k = g.ips[..., k] - mu_k * g.inv[..., k]
    r_c = g.ips[..., c] - mu_c * g.inv[..., c]
    rr_k = g.ips_sq[..., k] - 2 * mu_k * g.cross[..., k] + mu_k**2 * g.inv_sq[..., k]
    rr_c = g.ips_sq[..., c] - 2 * mu_c * g.cross[..., c] + mu_c**2 * g.inv_sq[..., c]
    n = g.decisions
    total = n * d + r_k - r_c
    total_sq = n * d**2 + 2 * d * (r_k - r_c) + rr_k + rr_c
    with np.errstate(all="ignore"):
        weight = np.sum(h * n, axis=-1)
        value = np.sum(h * total, axis=-1) / weight
        v = value[..., None]
        dev_sq = np.maximum(total_sq - 2 * v * total + n * v**2, 0.0)
        se = np.sqrt(np.sum(h**2 * dev_sq, axis=-1)) / weight
    n_all = np.sum(n, axis=-1)
    ok = (weight > 0) & (n_all >= 2)
    return Contrast(np.where(ok, value, np.nan), np.where(ok, se, np.nan), n_all)


# ------------------------------------------------------------- groups from aggregates


_NAMES = ("assignments", "reward_sum", "reward_sumsq", "expected_assignments", "inv_propensity_sum",
          "inv_propensity_sumsq", "ips_reward_sum", "ips_reward_sumsq", "ips_cross_sum")


def _columns(arms: Sequence[SliceAggregate]) -> dict[str, np.ndarray]:
    return {name: np.array([float(getattr(a, name)) for a in arms]) for name in _NAMES}


def _period_columns(period: PeriodAggregate, index: dict[str, int]) -> dict[bool, dict[str, np.ndarray]]:
    """``_columns`` of the holdout (True) and policy (False) slices of one period in one pass
    (what ``slices.pick`` per variant gives; slices of unknown variants are ignored)."""
    cols = np.zeros((2, len(_NAMES), len(index)))
    for s in period.slices:
        i = index.get(s.variant)
        if i is not None:
            cols[0 if s.holdout else 1, :, i] += [float(getattr(s, name)) for name in _NAMES]
    return {holdout: dict(zip(_NAMES, cols[0 if holdout else 1])) for holdout in (True, False)}


def groups(agg: ExperimentAggregate) -> GroupSums:
    """(period, slice) groups with predictions from earlier periods only; one group
    of all traffic (full-sample mean model) when no per-period sums were given."""
    k = len(agg.variants)
    if not agg.periods:
        c = _columns([slices.pick(agg.slices, v, slices.ALL) for v in agg.variants])
        with np.errstate(all="ignore"):
            mu = np.where(c["assignments"] > 0, c["reward_sum"] / c["assignments"], 0.0)
        return GroupSums(
            decisions=np.array([c["assignments"].sum()]),
            n=c["assignments"][None], inv=c["inv_propensity_sum"][None],
            inv_sq=c["inv_propensity_sumsq"][None], ips=c["ips_reward_sum"][None],
            ips_sq=c["ips_reward_sumsq"][None], cross=c["ips_cross_sum"][None],
            propensity=np.full((1, k), 1 / k), mu=mu[None], var=np.ones((1, k)),
            deployed=np.full((1, k), 1 / k),
        )
    return period_groups(agg.variants, agg.periods, agg)


def period_groups(variants: Sequence[str], periods: Sequence[PeriodAggregate],
                  fallback: ExperimentAggregate | None = None) -> GroupSums:
    """The (period, slice) groups of ``groups`` from per-period slices (any outcome whose
    per-visitor sums fill the ``SliceAggregate`` fields, e.g. a catalogue metric); with no
    non-empty period: ``groups(fallback)``, or zero groups without a fallback."""
    k = len(variants)
    index = {v: i for i, v in enumerate(variants)}
    rows: dict[str, list] = {f: [] for f in GroupSums._fields}
    seen_n, seen_s, seen_q = np.zeros(k), np.zeros(k), np.zeros(k)
    last_policy = np.full(k, 1 / k)
    # Sums of y - K (``SliceAggregate.reward_shift``): the scores only see mu_k - mu_c and the
    # residuals y - mu, so they do not move with K, provided the prediction before any data is
    # still mu = 0 on the raw scale (-K here). One K for every slice: re-centred on the first.
    shift = next((s.reward_shift for p in periods for s in p.slices), 0.0)
    periods = [dataclasses.replace(p, slices=tuple(reshift(s, shift) for s in p.slices)) for p in periods]
    for period in sorted(periods, key=lambda p: p.period):
        with np.errstate(all="ignore"):
            mu = np.where(seen_n > 0, seen_s / seen_n, -shift)
            var = np.where(seen_n >= 2, (seen_q - seen_s**2 / seen_n) / (seen_n - 1), np.nan)
        pooled = np.nanmean(var) if np.any(np.isfinite(var)) else 1.0
        var = np.where(np.isfinite(var) & (var > 0), var, pooled if pooled > 0 else 1.0)
        by_slice = _period_columns(period, index)
        expected = by_slice[False]["expected_assignments"]
        deployed = expected / expected.sum() if expected.sum() > 0 else last_policy
        for holdout, c in by_slice.items():
            n_g = c["assignments"].sum()
            if n_g <= 0:
                continue
            rows["decisions"].append(n_g)
            for name, col in (("n", "assignments"), ("inv", "inv_propensity_sum"),
                              ("inv_sq", "inv_propensity_sumsq"), ("ips", "ips_reward_sum"),
                              ("ips_sq", "ips_reward_sumsq"), ("cross", "ips_cross_sum")):
                rows[name].append(c[col])
            rows["propensity"].append(np.full(k, 1 / k) if holdout else last_policy)
            rows["mu"].append(mu)
            rows["var"].append(var)
            rows["deployed"].append(deployed)
        last_policy = deployed
        for c in by_slice.values():  # the period's totals over both slices
            seen_n += c["assignments"]
            seen_s += c["reward_sum"]
            seen_q += c["reward_sumsq"]
    if not rows["decisions"]:  # periods given but empty: the one all-traffic group
        if fallback is not None:
            return groups(dataclasses.replace(fallback, periods=()))
        empty = np.zeros((0, k))
        return GroupSums(np.zeros(0), *([empty] * (len(GroupSums._fields) - 1)))
    return GroupSums(**{name: np.array(values, dtype=float) for name, values in rows.items()})


# ---------------------------------------------------------------------- results


@dataclass(frozen=True)
class AdaptiveUplift:
    """Variant - control on all traffic (adaptive-valid), next to the holdout test."""

    absolute: float | None
    se: float | None
    ci: tuple[float, float] | None  # fixed-level normal interval (valid at one look)
    ci_always_valid: tuple[float, float] | None  # confidence sequence
    always_valid_p_value: float | None
    decisions: int  # logged decisions used (all traffic)
    method: str  # "aipw_stabilised" | "aipw_uniform"
    reason: str | None = None

    def to_dict(self) -> dict:
        return jsonable(self)


def uplifts(agg: ExperimentAggregate, alpha: float = ALPHA, weighting: str = "stabilised",
            tuning_n: float = anytime.TUNING_N) -> list[AdaptiveUplift | None]:
    """One AdaptiveUplift per variant (None for the control), from all logged traffic."""
    control = agg.variants.index(agg.control)
    totals = [slices.pick(agg.slices, v, slices.ALL) for v in agg.variants]
    g = groups(agg)
    z = st.norm.ppf(1 - alpha / 2)
    method = f"aipw_{weighting}"
    out: list[AdaptiveUplift | None] = []
    for k, arm in enumerate(totals):
        if k == control:
            out.append(None)
            continue
        reason = _reason(totals[control], arm)
        c = contrast(g, k, control, weighting)
        value, se, n = finite(c.value), finite(c.se), float(c.decisions)
        if reason is None and (value is None or se is None):
            reason = Reason.NOT_ENOUGH_DATA
        if reason is None and se == 0:
            reason = Reason.ZERO_VARIANCE
        if reason is not None:
            out.append(AdaptiveUplift(None, None, None, None, None, int(n), method, reason))
            continue
        out.append(AdaptiveUplift(
            absolute=value,
            se=se,
            ci=interval(value - z * se, value + z * se),
            ci_always_valid=anytime.confidence_sequence(value, se, n, alpha, tuning_n),
            always_valid_p_value=anytime.always_valid_p_value(value, se, n, tuning_n),
            decisions=int(n),
            method=method,
        ))
    return out


def _reason(control: SliceAggregate, arm: SliceAggregate) -> str | None:
    if control.assignments == 0:
        return Reason.NO_CONTROL_DATA
    if min(control.assignments, arm.assignments) < 2:
        return Reason.NOT_ENOUGH_DATA
    if min(control.inv_propensity_sum, arm.inv_propensity_sum) <= 0:
        return Reason.NO_PROPENSITIES
    return None
