"""Every visitor counts for catalogue metrics under a bandit (adaptive-valid estimators).

The experiment report's reward already uses every decision of a bandit through
``stats.adaptive`` (adaptively weighted AIPW, Hadad et al. 2021). A catalogue metric
of type conversion, count or sum is, per exposed visitor i, an outcome y_i of the
decision that exposed i, served with the logged propensity p_i; its per-(hour period,
variant, slice) sums n, Σy, Σy², Σ1/p, Σ1/p², Σy/p, Σy²/p², Σy/p² fill the fields of
``stats.inputs.SliceAggregate`` exactly as the reward counters do
(``MetricAggregate.periods``), so the groups of ``adaptive.period_groups`` and the
same predictable mean model, propensities and stabilised weights apply unchanged.

Linear functionals. Everything here is an AIPW estimate of sum_k c_gk mean_k with
coefficients c_g fixed per group g before it was served. With the outcome model mu_g
(cumulative arm means of earlier periods) each decision's score is

    D_i = c_g . mu_g + c_{g, a_i} (y_i - mu_{g, a_i}) / p_i,          E[D_i | past] = c_g . mean,

and its group sums are linear in the logged sums (R_k = S_k - mu_k W_k, RR_k = Q_k
- 2 mu_k X_k + mu_k^2 U_k as in ``stats.adaptive``):

    sum D = N c.mu + sum_k c_k R_k,   sum D^2 = N (c.mu)^2 + 2 c.mu sum_k c_k R_k + sum_k c_k^2 RR_k.

The estimate is sum_g h_g sum D / sum_g h_g N_g and its (martingale) variance
sum_g h_g^2 sum Var(D | past) / (sum_g h_g N_g)^2 with a plug-in conditional
variance (``linear``: more robust than squared scores when some p_i are tiny). With c = e_k - e_c
this is exactly ``adaptive.contrast``; with c = e_k and the *same* weights it is the
arm's mean m_k, so the arms' variances and their covariance follow from three
functionals: Cov(m_k, m_c) = (V(m_k) + V(m_c) - V(m_k - m_c)) / 2.

Per treatment (``AdaptiveMetricUplift``): absolute = m_k - m_c (stabilised weights
h_g = 1/sd_g of the contrast, as for the reward), normal interval and p (martingale
CLT), the confidence sequence of ``stats.anytime`` with n = decisions and its dual
p-value, ``decision`` from that sequence (``anytime.decide``). Relative change on the
log-ratio scale when both means are positive, L = ln(m_k / m_c) with
Var(L) = V_k/m_k^2 + V_c/m_c^2 - 2 Cov/(m_k m_c) (delta method with the AIPW
covariance); otherwise the linear delta method. Guardrails (``guardrail``): Fieller's
linear form of ``stats.metric_guardrails``, D = m_t - k m_c with the same
one-sided level-2alpha confidence sequence, from the functional c = e_t - k e_c.

Personalisation (``personalisation``): the value of the policy *as deployed* against
the uniform holdout (and against the holdout's control). The deployed policy's IPS
value on its own traffic has weights pi_i(a_i) / p_i = 1: it is the policy slice's
mean, an unbiased estimate of the average over its decisions of E[y_i | past] =
pi_g . mean (pi_g: the allocation the policy served in hour g, its expected_assignments
/ N). Its variance is *not* the i.i.d. one: y_i - E[y_i | past] is a martingale
difference sequence, so Var = sum_i Var(y_i | past) / N^2, estimated by
sum_g sum_{i in g} (y_i - pi_g . m)^2 / (N (N - 1)) with m the all-visitor AIPW arm
means: the squared deviations from each hour's own predicted mean, not from the
overall mean (the i.i.d. form adds the drift of the policy's value over time). The
holdout's allocation never changes, so its mean has the i.i.d. variance; the two
slices' errors are uncorrelated (independent routing), so Var(lift) = V_policy +
V_holdout, with the same intervals, confidence sequence (n = both slices) and
decision as the variants. The "personalisation is hurting" alarm is the guardrail
form D = policy - k holdout of the same two estimates. No inverse weights ever
exceed 1 here (an IPW over every visitor of pi_g - 1/K weighs the control's rare
policy decisions by up to 1/min_share and covered only ~92%).

Ratio metrics: not offered here (``RATIO_NOT_SUPPORTED``); they keep the holdout
analysis. A ratio would need the linearised score (a - R b)/mu_b per arm, i.e. the
a/p, b/p, a^2/p^2, b^2/p^2, ab/p^2, a/p^2, b/p^2 sums per period; documented choice.

Every function needs ``periods`` (``None`` / a reason otherwise) and never raises.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy import stats as st

from stats import adaptive, anytime
from stats import slices as traffic
from stats.metric_guardrails import FAILING, GUARDRAIL_MIN_VISITORS, NOT_ENOUGH_DATA, OK, GuardrailResult
from stats.metric_inputs import RATIO, MetricAggregate, MetricReason, MetricSpec, spec_problem
from stats.results import ALPHA, finite, interval, jsonable

RATIO_NOT_SUPPORTED = "ratio_adaptive_not_supported"
METHOD = "aipw_stabilised"
DEPLOYED_METHOD = "ips_deployed_policy"
ADAPTIVE_MODES = frozenset(mode for mode, which in traffic.ANALYSIS_SLICE.items() if which == traffic.HOLDOUT)


@dataclass(frozen=True)
class AdaptiveMetricUplift:
    """Treatment - control (or policy - holdout) on every visitor, adaptive-valid."""

    absolute: float | None
    se: float | None
    ci: tuple[float, float] | None  # fixed-level normal interval (valid at one look)
    relative: float | None  # (m_t - m_c) / |m_c| of the AIPW means
    ci_relative: tuple[float, float] | None
    relative_scale: str | None  # "log" | "linear"
    p_value: float | None  # two-sided normal test (valid at one look)
    always_valid_p_value: float | None
    ci_always_valid: tuple[float, float] | None  # confidence sequence on ``absolute``
    decision: str  # anytime.decide on ci_always_valid
    treatment_value: float | None  # AIPW mean of the treatment (the deployed policy)
    control_value: float | None  # AIPW mean of the control (uniform random / the control)
    decisions: int  # exposed visitors used (every slice)
    method: str  # "aipw_stabilised" | "ips_deployed_policy"
    reason: str | None = None

    def to_dict(self) -> dict:
        return jsonable(self)


@dataclass(frozen=True)
class AdaptivePersonalisation:
    """The policy as deployed vs uniform random and vs always-control, every visitor."""

    vs_holdout: AdaptiveMetricUplift
    vs_control_holdout: AdaptiveMetricUplift
    guardrail: GuardrailResult  # policy vs uniform random, the "personalisation is hurting" test

    def to_dict(self) -> dict:
        return jsonable(self)


# ---------------------------------------------------------------- the one primitive


def linear(g: adaptive.GroupSums, coef: np.ndarray, h: np.ndarray,
           outcome_var: np.ndarray | None = None) -> tuple[float, float]:
    """(estimate, se) of sum_k c_gk mean_k: the h-weighted AIPW functional (module doc).
    ``coef`` has shape (G, K) or (K,), ``h`` shape (G,); NaN when undefined.

    Without ``outcome_var`` the variance is the empirical one (squared scores, exactly
    ``adaptive.contrast``). With the arms' outcome variances s_k^2 (over every visitor)
    it is the plug-in conditional variance of the scores,

        sum_{i in g} Var(D_i | past) = sum_k c_k^2 (s_k^2 + (m_k - mu_gk)^2) sum_{i: a_i = k} 1/p_i^2
                                       - N_g (c . (m - mu_g))^2,

    (m = the AIPW arm means, sum_{a_i = k} 1/p_i^2 the Horvitz-Thompson estimate of
    sum_{i in g} 1/p_ik): the squared scores of an arm served with p = 0.01 are a few
    huge terms that move *with* the estimate (fewer conversions: lower mean and lower
    variance), which made the empirical 95% interval cover only ~91% in the seeded
    bandit simulation; the plug-in form separates the outcome noise (s_k^2, estimated
    on every visitor) from the design (1/p), and covers 93.5-94% there."""
    c = np.broadcast_to(np.asarray(coef, dtype=float), g.mu.shape)
    n = g.decisions
    with np.errstate(all="ignore"):  # non-finite sums (poisoned values) give NaN, reported by the caller
        base = np.sum(c * g.mu, axis=-1)
        residual = g.ips - g.mu * g.inv  # R_gk
        r = np.sum(c * residual, axis=-1)
        rr = np.sum(c**2 * (g.ips_sq - 2 * g.mu * g.cross + g.mu**2 * g.inv_sq), axis=-1)
        total = n * base + r
        total_sq = n * base**2 + 2 * base * r + rr
        weight = np.sum(h * n)
        value = np.sum(h * total) / weight
        if outcome_var is None:
            dev_sq = np.maximum(total_sq - 2 * value * total + n * value**2, 0.0)
        else:
            means = np.sum(h[:, None] * (n[:, None] * g.mu + residual), axis=0) / weight  # m_k
            off = means - g.mu
            dev_sq = np.maximum(np.sum(c**2 * (np.asarray(outcome_var) + off**2) * g.inv_sq, axis=-1)
                                - n * np.sum(c * off, axis=-1) ** 2, 0.0)
        se = np.sqrt(np.sum(h**2 * dev_sq)) / weight
    if not (weight > 0 and np.sum(n) >= 2):
        return np.nan, np.nan
    return float(value), float(se)


def groups(aggregate: MetricAggregate) -> adaptive.GroupSums | None:
    """The (period, slice) groups of the metric's per-period sums; None without any."""
    if not aggregate.periods:
        return None
    return _groups(aggregate.variants, aggregate.periods)


@functools.lru_cache(maxsize=16)
def _groups(variants: tuple[str, ...], periods: tuple) -> adaptive.GroupSums | None:
    """Cached: uplifts, guardrails and the personalisation lift of one metric share them."""
    g = adaptive.period_groups(variants, periods)
    return g if g.decisions.size else None


def stabilised(g: adaptive.GroupSums, t: int, c: int, s2: np.ndarray) -> np.ndarray:
    """h_g = 1 / sqrt(s_t^2 / p_gt + s_c^2 / p_gc): the stabilising weights of
    ``adaptive`` with the predicted propensities p_g (previous period's allocation) but
    the outcome variances s^2 of every visitor instead of those of earlier periods only:
    before any period has a variance, ``adaptive`` falls back to 1, which for a revenue
    metric (variance ~ 170) gave the first hour's noisiest scores ~13 times the weight
    of any later hour and intervals *wider* than the holdout's. s^2 depends on one hour's
    outcomes only through a 1/N share (the propensities, which carry the adaptivity,
    stay predictable)."""
    p = np.maximum(g.propensity, adaptive.MIN_PROPENSITY)
    with np.errstate(all="ignore"):
        var = s2[t] / p[..., t] + s2[c] / p[..., c]
        h = 1 / np.sqrt(var)
    return np.where(np.isfinite(h) & (var > 0), h, 0.0)


def outcome_variances(aggregate: MetricAggregate) -> np.ndarray:
    """s_k^2: each arm's per-visitor outcome variance over every visitor (pooled over the
    arms where an arm has fewer than 2 visitors or no variance)."""
    arms = [traffic.pick([s for p in aggregate.periods for s in p.slices], v, traffic.ALL)
            for v in aggregate.variants]
    n = np.array([float(a.assignments) for a in arms])
    total = np.array([float(a.reward_sum) for a in arms])
    squares = np.array([float(a.reward_sumsq) for a in arms])
    with np.errstate(all="ignore"):
        var = np.where(n >= 2, np.maximum(squares - total**2 / n, 0.0) / (n - 1), np.nan)
    ok = np.isfinite(var) & (var > 0)
    pooled = float(np.mean(var[ok])) if np.any(ok) else 0.0
    return np.where(ok, var, pooled)


def _totals(aggregate: MetricAggregate, variant: str) -> tuple[float, float]:
    """(visitors, Σ1/p) of a variant over every period and slice."""
    parts = [traffic.pick(p.slices, variant, traffic.ALL) for p in aggregate.periods]
    return float(sum(s.assignments for s in parts)), float(sum(s.inv_propensity_sum for s in parts))


# ---------------------------------------------------------------- building results


def _empty(reason: str, method: str = METHOD, decisions: int = 0) -> AdaptiveMetricUplift:
    return AdaptiveMetricUplift(None, None, None, None, None, None, None, None, None, anytime.INCONCLUSIVE,
                                None, None, decisions, method, reason)


def _relative(m_t: float, m_c: float, v_t: float, v_c: float, cov: float, z: float):
    """(relative, interval, scale) with the AIPW covariance of the two means (module doc)."""
    if not (np.isfinite(m_c) and np.isfinite(m_t)) or m_c == 0:
        return None, None, None
    relative = np.sign(m_c) * (m_t / m_c - 1)
    if m_c > 0 and m_t > 0:
        var = v_t / m_t**2 + v_c / m_c**2 - 2 * cov / (m_t * m_c)
        if not var > 0:
            return finite(relative), None, None
        se = np.sqrt(var)
        low, high = np.expm1(np.log(m_t / m_c) - z * se), np.expm1(np.log(m_t / m_c) + z * se)
        return finite(relative), interval(low, high), "log"
    var = v_t / m_c**2 + m_t**2 * v_c / m_c**4 - 2 * m_t * cov / m_c**3
    if not var > 0:
        return finite(relative), None, None
    half = z * np.sqrt(var)
    return finite(relative), interval(relative - half, relative + half), "linear"


def _build(m_t: float, var_t: float, m_c: float, var_c: float, cov: float, decisions: int,
           higher_is_better: bool, alpha: float, method: str) -> AdaptiveMetricUplift:
    """m_t - m_c with Var = var_t + var_c - 2 cov: interval, relative, p, CS and decision."""
    absolute = m_t - m_c
    var = var_t + var_c - 2 * cov
    if not all(np.isfinite(x) for x in (m_t, m_c, var_t, var_c, cov, var)):
        return _empty(MetricReason.NOT_ENOUGH_DATA, method, decisions)
    if var <= 0:
        return _empty(MetricReason.ZERO_VARIANCE, method, decisions)
    se = float(np.sqrt(var))
    z = st.norm.ppf(1 - alpha / 2)
    relative, ci_relative, scale = _relative(m_t, m_c, var_t, var_c, cov, z)
    cs = anytime.confidence_sequence(absolute, se, decisions, alpha)
    return AdaptiveMetricUplift(
        absolute=finite(absolute), se=finite(se), ci=interval(absolute - z * se, absolute + z * se),
        relative=relative, ci_relative=ci_relative, relative_scale=scale,
        p_value=finite(2 * st.norm.sf(abs(absolute / se))),
        always_valid_p_value=anytime.always_valid_p_value(absolute, se, decisions),
        ci_always_valid=cs, decision=anytime.decide(cs, higher_is_better),
        treatment_value=finite(m_t), control_value=finite(m_c), decisions=decisions, method=method,
    )


def _uplift(g: adaptive.GroupSums, treatment: np.ndarray, control: np.ndarray, h: np.ndarray, s2: np.ndarray,
            higher_is_better: bool, alpha: float, method: str) -> AdaptiveMetricUplift:
    """Functional ``treatment`` - ``control`` (coefficient arrays) with weights h."""
    m_t, se_t = linear(g, treatment, h, s2)
    m_c, se_c = linear(g, control, h, s2)
    _, se = linear(g, treatment - control, h, s2)
    cov = (se_t**2 + se_c**2 - se**2) / 2  # Cov(m_t, m_c) from the three variances
    return _build(m_t, se_t**2, m_c, se_c**2, cov, int(np.sum(g.decisions)), higher_is_better, alpha, method)


def _problem(spec: MetricSpec, aggregate: MetricAggregate) -> str | None:
    problem = spec_problem(spec)
    if problem is not None:
        return problem
    if spec.type == RATIO:
        return RATIO_NOT_SUPPORTED
    if aggregate.control not in aggregate.variants:
        return MetricReason.UNKNOWN_CONTROL
    return None


def _pair_problem(aggregate: MetricAggregate, treatment: str) -> str | None:
    (n_c, w_c), (n_t, w_t) = _totals(aggregate, aggregate.control), _totals(aggregate, treatment)
    if n_c == 0:
        return MetricReason.NO_CONTROL_DATA
    if min(n_c, n_t) < 2:
        return MetricReason.NOT_ENOUGH_DATA
    if min(w_c, w_t) <= 0:
        return MetricReason.NO_PROPENSITIES
    return None


def uplifts(spec: MetricSpec, aggregate: MetricAggregate,
            alpha: float = ALPHA) -> dict[str, AdaptiveMetricUplift] | None:
    """Per non-control variant its all-visitor uplift; None when the aggregate has no
    per-period sums (then only the holdout analysis exists); a ratio always gets its reason."""
    g = groups(aggregate)
    treatments = [v for v in aggregate.variants if v != aggregate.control]
    problem = _problem(spec, aggregate)
    if g is None and problem != RATIO_NOT_SUPPORTED:
        return None
    if problem is not None or g is None:
        return {v: _empty(problem) for v in treatments}
    k, c = len(aggregate.variants), aggregate.variants.index(aggregate.control)
    eye, s2 = np.eye(k), outcome_variances(aggregate)
    out = {}
    for v in treatments:
        t = aggregate.variants.index(v)
        pair = _pair_problem(aggregate, v)
        if pair is not None:
            out[v] = _empty(pair, METHOD, int(np.sum(g.decisions)))
            continue
        h = stabilised(g, t, c, s2)
        out[v] = _uplift(g, eye[t], eye[c], h, s2, spec.higher_is_better, alpha, METHOD)
    return out


# ---------------------------------------------------------------- guardrails


def _guardrail_test(g: adaptive.GroupSums, treatment: np.ndarray, control: np.ndarray, h: np.ndarray,
                    s2: np.ndarray, spec: MetricSpec, alpha: float) -> GuardrailResult:
    """The one-sided always-valid regression test of ``stats.metric_guardrails`` on the
    functional D = treatment - k control (Fieller's linear form)."""
    s = 1.0 if spec.higher_is_better else -1.0
    threshold = -s * float(spec.max_regression)
    m_c, _ = linear(g, control, h, s2)
    if not np.isfinite(m_c) or m_c == 0:
        reason = MetricReason.CONTROL_MEAN_ZERO if m_c == 0 else MetricReason.NOT_ENOUGH_DATA
        return GuardrailResult(NOT_ENOUGH_DATA, None, None, threshold, spec.action, reason, METHOD)
    k = 1 - s * float(spec.max_regression) * np.sign(m_c)
    contrast, se = linear(g, treatment - k * control, h, s2)
    n = float(np.sum(g.decisions))
    low, high = anytime.confidence_sequence_arrays(contrast, se, n, 2 * alpha)
    end = finite(high if spec.higher_is_better else low)
    p_two = finite(anytime.p_value_arrays(contrast, se, n))
    if end is None or p_two is None:
        return GuardrailResult(NOT_ENOUGH_DATA, None, None, threshold, spec.action, MetricReason.ZERO_VARIANCE,
                               METHOD)
    p_one = p_two / 2 if s * contrast < 0 else 1.0
    status = FAILING if s * end < 0 else OK
    return GuardrailResult(status, p_one, end / abs(m_c) - s * float(spec.max_regression), threshold,
                           spec.action, None, METHOD)


def guardrail(spec: MetricSpec, aggregate: MetricAggregate, treatment: str,
              alpha: float = ALPHA, min_visitors: int = GUARDRAIL_MIN_VISITORS) -> GuardrailResult | None:
    """Is ``treatment`` worse than control by more than ``spec.max_regression``, on every
    visitor? None without per-period sums (or for a ratio: the holdout test applies)."""
    g = groups(aggregate)
    problem = _problem(spec, aggregate)
    if g is None or problem == RATIO_NOT_SUPPORTED:
        return None
    threshold = -(1.0 if spec.higher_is_better else -1.0) * float(spec.max_regression)
    problem = problem or _pair_problem(aggregate, treatment)
    if problem is None and min(_totals(aggregate, aggregate.control)[0], _totals(aggregate, treatment)[0]) \
            < min_visitors:
        problem = MetricReason.NOT_ENOUGH_DATA
    if problem is not None:
        return GuardrailResult(NOT_ENOUGH_DATA, None, None, threshold, spec.action, problem, METHOD)
    k, c, t = len(aggregate.variants), aggregate.variants.index(aggregate.control), aggregate.variants.index(treatment)
    s2 = outcome_variances(aggregate)
    return _guardrail_test(g, np.eye(k)[t], np.eye(k)[c], stabilised(g, t, c, s2), s2, spec, alpha)


# ---------------------------------------------------------------- personalisation


class _Slice(NamedTuple):
    n: float
    mean: float
    var: float  # variance of ``mean``


def _policy_value(aggregate: MetricAggregate, means: np.ndarray) -> _Slice:
    """The policy slice's mean (the IPS value of the deployed policy: pi_i / p_i = 1) with the
    martingale variance sum_g sum_{i in g} (y_i - pi_g . m)^2 / N^2 (module doc)."""
    n = total = squares = 0.0
    for period in aggregate.periods:
        arms = [traffic.pick(period.slices, v, "policy") for v in aggregate.variants]
        expected = np.array([float(a.expected_assignments) for a in arms])
        served = np.array([float(a.assignments) for a in arms])
        n_g = served.sum()
        if n_g <= 0:
            continue
        pi = expected / expected.sum() if expected.sum() > 0 else served / n_g
        centre = float(pi @ means)  # E[y_i | past] of the period's decisions
        y, yy = sum(float(a.reward_sum) for a in arms), sum(float(a.reward_sumsq) for a in arms)
        n, total, squares = n + n_g, total + y, squares + yy - 2 * centre * y + n_g * centre**2
    if n < 2:
        return _Slice(n, np.nan, np.nan)
    return _Slice(n, total / n, max(squares, 0.0) / (n * (n - 1)))


def _holdout_value(aggregate: MetricAggregate, variant: str | None) -> _Slice:
    """The uniform holdout's (or its control's) plain mean and i.i.d. variance: its allocation
    never changes, so its outcomes are i.i.d."""
    parts = [traffic.pick(p.slices, variant, traffic.HOLDOUT) for p in aggregate.periods]
    n = float(sum(a.assignments for a in parts))
    total, squares = sum(float(a.reward_sum) for a in parts), sum(float(a.reward_sumsq) for a in parts)
    if n < 2:
        return _Slice(n, np.nan, np.nan)
    return _Slice(n, total / n, max(squares - total**2 / n, 0.0) / (n - 1) / n)


def _lift(policy: _Slice, holdout: _Slice, higher_is_better: bool, alpha: float) -> AdaptiveMetricUplift:
    return _build(policy.mean, policy.var, holdout.mean, holdout.var, 0.0, int(policy.n + holdout.n),
                  higher_is_better, alpha, DEPLOYED_METHOD)


def personalisation(spec: MetricSpec, aggregate: MetricAggregate, alpha: float = ALPHA,
                    min_visitors: int = GUARDRAIL_MIN_VISITORS) -> AdaptivePersonalisation | None:
    """The deployed policy vs uniform random and vs always-control (module doc); None
    without per-period sums or for a ratio metric."""
    g = groups(aggregate)
    problem = _problem(spec, aggregate)
    if g is None or problem == RATIO_NOT_SUPPORTED:
        return None
    sign = 1.0 if spec.higher_is_better else -1.0
    threshold = -sign * float(spec.max_regression)
    decisions = int(np.sum(g.decisions))
    k = len(aggregate.variants)
    if problem is None:
        s2 = outcome_variances(aggregate)
        means = np.array([linear(g, np.eye(k)[j], np.ones_like(g.decisions), s2)[0] for j in range(k)])
        policy = _policy_value(aggregate, means)
        holdout = _holdout_value(aggregate, None)
        if holdout.n == 0:
            problem = MetricReason.NO_HOLDOUT
        elif min(policy.n, holdout.n) < 2 or not np.all(np.isfinite(means)):
            problem = MetricReason.NOT_ENOUGH_DATA
    if problem is not None:
        empty = _empty(problem, DEPLOYED_METHOD, decisions)
        return AdaptivePersonalisation(empty, empty, GuardrailResult(NOT_ENOUGH_DATA, None, None, threshold,
                                                                     "alert", problem, DEPLOYED_METHOD))
    vs_holdout = _lift(policy, holdout, spec.higher_is_better, alpha)
    vs_control = _lift(policy, _holdout_value(aggregate, aggregate.control), spec.higher_is_better, alpha)
    return AdaptivePersonalisation(vs_holdout, vs_control,
                                   _lift_guardrail(policy, holdout, spec, threshold, alpha, min_visitors))


def _lift_guardrail(policy: _Slice, holdout: _Slice, spec: MetricSpec, threshold: float, alpha: float,
                    min_visitors: int) -> GuardrailResult:
    """``stats.metric_guardrails``' one-sided test of D = policy - k holdout (Fieller's form)."""
    def result(status, p=None, bound=None, reason=None) -> GuardrailResult:
        return GuardrailResult(status, p, bound, threshold, "alert", reason, DEPLOYED_METHOD)

    if min(policy.n, holdout.n) < min_visitors:
        return result(NOT_ENOUGH_DATA, reason=MetricReason.NOT_ENOUGH_DATA)
    if holdout.mean == 0:
        return result(NOT_ENOUGH_DATA, reason=MetricReason.CONTROL_MEAN_ZERO)
    s = 1.0 if spec.higher_is_better else -1.0
    k = 1 - s * float(spec.max_regression) * np.sign(holdout.mean)
    contrast, se = policy.mean - k * holdout.mean, np.sqrt(policy.var + k**2 * holdout.var)
    n = policy.n + holdout.n
    low, high = anytime.confidence_sequence_arrays(contrast, se, n, 2 * alpha)
    end = finite(high if spec.higher_is_better else low)
    p_two = finite(anytime.p_value_arrays(contrast, se, n))
    if end is None or p_two is None:
        return result(NOT_ENOUGH_DATA, reason=MetricReason.ZERO_VARIANCE)
    return result(FAILING if s * end < 0 else OK, p_two / 2 if s * contrast < 0 else 1.0,
                  end / abs(holdout.mean) - s * float(spec.max_regression))
