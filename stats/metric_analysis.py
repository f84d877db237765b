"""Analyse every metric of an experiment: ``analyse_metrics(specs, aggregates)``.

Per metric and variant: the value (rate, mean per visitor or ratio) with its 95%
interval, the uplift over control (fixed-horizon test of the metric type, relative
interval, always-valid p-value and confidence sequence, decision), CUPED and, for
guardrails, the guardrail status. ``MetricResult.to_dict()`` is plain JSON (no
NaN/inf; what cannot be computed is null beside a reason code).

Traffic: as in ``stats.report``, "ab" experiments are analysed on all traffic and
"bandit"/"contextual" ones on the uniform holdout (adaptive allocation is not a
randomised comparison of arms); ``personalisation_lift`` compares the policy slice
with the holdout.

Every visitor under a bandit: when the aggregate carries per-period sums
(``MetricAggregate.periods``), each conversion/count/sum uplift also gets
``adaptive`` (``stats.metric_adaptive``: stabilised AIPW over every exposed visitor,
its relative change, p, confidence sequence and decision) and, as for the reward
(``stats.decisions``, rule "adaptive_anytime_valid"), ``ci_always_valid``,
``always_valid_p_value`` and ``decision`` then repeat the adaptive ones while
``absolute``/``relative``/``p_value`` stay the holdout's fixed-horizon test, the
unbiased check beside it. Guardrails use the same all-visitor test. Ratio metrics
keep the holdout analysis (``adaptive.reason`` = "ratio_adaptive_not_supported",
``decision_rule`` "anytime_valid").

Multiple comparisons, the documented choice:

* within a metric, the variants' fixed-horizon p-values are Holm-adjusted
  (``p_value_adjusted``; family-wise error over the variants);
* across metrics there is *no* correction. The primary metric is the one
  confirmatory test (decide on it); secondaries are exploratory read-outs (with 5
  metrics about 1 - 0.95^5 ~ 23% of A/A experiments show at least one p < 0.05 when
  the metrics are independent, less when they are correlated; tests measure it), and
  guardrails are alarms that should err towards firing (see ``metric_guardrails``).
  Whoever needs a family-wise claim over secondaries can Holm/BH their p-values
  with ``stats.multiple``.

``decision`` comes from ``anytime.decide`` on ``ci_always_valid``, the 95% confidence
sequence on the absolute difference (the same CS and dual p-value the experiment
report computes), so it stays valid however often the report is read. It is per
variant at level alpha (not Holm-adjusted across variants, unlike
``stats.decisions``; ``p_value_adjusted`` is the fixed-horizon Holm value).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from stats import anytime, cuped, metric_adaptive, multiple
from stats import slices as traffic
from stats.metric_estimates import KINDS, MIN_VISITORS, MetricKind, quantile, relative
from stats.metric_guardrails import (
    NOT_ENOUGH_DATA,
    GuardrailResult,
    guardrail_check,
    undefined_reason,
)
from stats.metric_inputs import (
    ACTIONS,
    GUARDRAIL,
    RATIO,
    MetricAggregate,
    MetricReason,
    MetricSlice,
    MetricSpec,
    pick,
    spec_problem,
)
from stats.results import ALPHA, finite, interval, jsonable


@dataclass(frozen=True)
class MetricUplift:
    """One variant vs control on one metric."""

    absolute: float | None  # value_t - value_c
    relative: float | None  # (value_t - value_c) / |value_c|
    ci_relative: tuple[float, float] | None  # fixed-horizon, 95%
    p_value: float | None  # fixed-horizon test of the metric type (``test``)
    p_value_adjusted: float | None  # Holm over the variants of this metric
    always_valid_p_value: float | None  # dual of the CS: <= alpha exactly when it excludes 0
    ci_always_valid: tuple[float, float] | None  # confidence sequence on ``absolute``
    decision: str  # "better" | "worse" | "inconclusive" (anytime.decide)
    relative_scale: str | None  # "log": ln(m_t/m_c) intervals; "linear": delta on m_t/m_c - 1
    test: str  # "z_pooled" | "welch_t" | "delta_z"
    reason: str | None = None
    #: bandit modes with per-period sums: every visitor (the decision stands on it, module doc)
    adaptive: metric_adaptive.AdaptiveMetricUplift | None = None
    decision_rule: str = "anytime_valid"  # | "adaptive_anytime_valid"


@dataclass(frozen=True)
class CupedResult:
    absolute: float | None  # CUPED-adjusted value_t - value_c
    ci_absolute: tuple[float, float] | None
    p_value: float | None  # Welch t on the adjusted values
    variance_reduction: float | None  # 1 - Var_adj / Var_raw of the difference


@dataclass(frozen=True)
class VariantMetric:
    key: str
    visitors: int
    value: float | None
    ci: tuple[float, float] | None
    uplift: MetricUplift | None  # None for the control
    cuped: CupedResult | None  # None for the control, or with ``cuped_reason``
    guardrail: GuardrailResult | None  # guardrail role and treatment variants only
    reason: str | None = None  # why value / ci are null
    cuped_reason: str | None = None  # why cuped is null (treatments only)


@dataclass(frozen=True)
class MetricResult:
    key: str
    role: str
    type: str
    variants: tuple[VariantMetric, ...]
    reason: str | None = None  # the whole metric could not be analysed

    def to_dict(self) -> dict:
        return jsonable(self)


@dataclass(frozen=True)
class ArmValue:
    key: str
    visitors: int
    value: float | None
    ci: tuple[float, float] | None
    reason: str | None = None


@dataclass(frozen=True)
class MetricPersonalisation:
    """Policy traffic vs the holdout on one metric (see ``stats.personalisation``)."""

    key: str
    type: str
    policy: ArmValue  # every variant pooled, policy slice
    holdout: ArmValue  # every variant pooled, holdout slice
    control_holdout: ArmValue  # the control within the holdout
    vs_holdout: MetricUplift  # p_value_adjusted is null: one comparison each
    vs_control_holdout: MetricUplift
    reason: str | None = None
    #: with per-period sums: the deployed policy vs uniform random / always-control on every
    #: visitor, with an adaptive-valid variance (``metric_adaptive.personalisation``)
    adaptive: metric_adaptive.AdaptivePersonalisation | None = None

    def to_dict(self) -> dict:
        return jsonable(self)


# ---------------------------------------------------------------- building blocks


def arm_value(kind: MetricKind, key: str, s: MetricSlice, problem: str | None, alpha: float):
    """An arm's visitors, value and interval, with the reason when they are null."""
    if problem is not None:
        return ArmValue(key, 0, None, None, problem)
    est = kind.arm(s, alpha)
    value = finite(np.asarray(est.value))
    ci = interval(np.asarray(est.ci_low), np.asarray(est.ci_high))
    reason = None
    if s.visitors < MIN_VISITORS:
        reason = MetricReason.NOT_ENOUGH_DATA
    elif value is None:
        reason = kind.undefined
    elif ci is None:
        reason = MetricReason.NUMERICAL_ERROR
    return ArmValue(key, int(s.visitors), value, ci, reason)


def _empty_uplift(kind: MetricKind, reason: str) -> MetricUplift:
    return MetricUplift(
        None, None, None, None, None, None, None, anytime.decide(None), None, kind.test, reason
    )


def uplift(
    kind: MetricKind,
    higher_is_better: bool,
    control: MetricSlice,
    treatment: MetricSlice,
    problem: str | None,
    alpha: float = ALPHA,
) -> MetricUplift:
    """Treatment vs control; reasons, first match: an input problem (invalid_input,
    non_finite_input), no_control_data, not_enough_data (< 2 visitors); then, for
    what the estimates leave undefined, denominator_zero (ratio arm without a value),
    control_mean_zero (relative undefined), zero_variance (an arm without variance,
    e.g. no conversions), numerical_error."""
    if problem is not None:
        return _empty_uplift(kind, problem)
    if control.visitors == 0:
        return _empty_uplift(kind, MetricReason.NO_CONTROL_DATA)
    if min(control.visitors, treatment.visitors) < MIN_VISITORS:
        return _empty_uplift(kind, MetricReason.NOT_ENOUGH_DATA)
    arm_c, arm_t = kind.arm(control, alpha), kind.arm(treatment, alpha)
    diff = kind.difference(control, treatment, alpha)
    rel = relative(arm_c, arm_t, quantile(diff.dof, alpha))
    ci_av = interval(np.asarray(diff.ci_always_valid_low), np.asarray(diff.ci_always_valid_high))
    p_av = finite(np.asarray(diff.always_valid_p_value))
    absolute = finite(np.asarray(diff.absolute))
    p_value = finite(np.asarray(diff.p_value))
    ci_rel = interval(np.asarray(rel.ci_low), np.asarray(rel.ci_high))
    reason = None
    if absolute is None:
        reason = undefined_reason(kind, arm_c, arm_t)
    elif p_value is None:
        reason = MetricReason.ZERO_VARIANCE
    elif ci_rel is None or ci_av is None or p_av is None:
        reason = undefined_reason(kind, arm_c, arm_t)
    return MetricUplift(
        absolute=absolute,
        relative=finite(np.asarray(rel.relative)),
        ci_relative=ci_rel,
        p_value=p_value,
        p_value_adjusted=None,
        always_valid_p_value=p_av,
        ci_always_valid=ci_av,
        decision=anytime.decide(ci_av, higher_is_better),
        relative_scale=None if ci_rel is None else ("log" if bool(rel.log_scale) else "linear"),
        test=kind.test,
        reason=reason,
    )


def _cuped(metric_type, fitted, control, treatment, alpha):
    """(CupedResult | None, reason | None) for one treatment."""
    if min(control.visitors, treatment.visitors) < MIN_VISITORS:
        return None, MetricReason.NOT_ENOUGH_DATA
    r = cuped.compare(fitted, control, treatment, metric_type, alpha)
    result = CupedResult(
        absolute=finite(np.asarray(r.absolute)),
        ci_absolute=interval(np.asarray(r.ci_low), np.asarray(r.ci_high)),
        p_value=finite(np.asarray(r.p_value)),
        variance_reduction=finite(np.asarray(r.variance_reduction)),
    )
    if result.p_value is None or result.ci_absolute is None:
        return None, MetricReason.ZERO_VARIANCE
    return result, None


def _failed(spec: MetricSpec, reason: str) -> MetricResult:
    return MetricResult(str(spec.key), str(spec.role), str(spec.type), (), reason)


# ---------------------------------------------------------------- main entry points


def analysis_arms(spec: MetricSpec, aggregate: MetricAggregate):
    """({variant: (merged sums on the analysed traffic, input problem)}, None), or
    ({}, reason) when the metric cannot be analysed at all."""
    problem = spec_problem(spec)
    if problem is not None:
        return {}, problem
    which = traffic.ANALYSIS_SLICE.get(aggregate.mode)
    if which is None:
        return {}, MetricReason.UNSUPPORTED
    if aggregate.control not in aggregate.variants:
        return {}, MetricReason.UNKNOWN_CONTROL
    return {v: pick(aggregate.slices, v, which, spec.type) for v in aggregate.variants}, None


def _guardrail(spec, control, control_problem, treatment, problem, alpha,
               aggregate: MetricAggregate | None = None) -> GuardrailResult:
    """The holdout's (randomised slice's) test, or the all-visitor one when the aggregate has
    per-period sums of an adaptive mode (``metric_adaptive.guardrail``)."""
    if aggregate is not None and aggregate.mode in metric_adaptive.ADAPTIVE_MODES:
        adaptive = metric_adaptive.guardrail(spec, aggregate, str(treatment.variant), alpha)
        if adaptive is not None:
            return adaptive
    pair_problem = control_problem or problem
    if pair_problem:
        return GuardrailResult(NOT_ENOUGH_DATA, None, None, None, spec.action, pair_problem)
    return guardrail_check(spec, control, treatment, alpha)


def _with_adaptive(u: MetricUplift, a: metric_adaptive.AdaptiveMetricUplift | None) -> MetricUplift:
    """The decision rests on every visitor when the adaptive estimate exists (ratio: holdout)."""
    if a is None:
        return u
    if a.reason == metric_adaptive.RATIO_NOT_SUPPORTED:
        return dataclasses.replace(u, adaptive=a)
    return dataclasses.replace(u, adaptive=a, ci_always_valid=a.ci_always_valid,
                               always_valid_p_value=a.always_valid_p_value, decision=a.decision,
                               decision_rule="adaptive_anytime_valid")


def guardrail_checks(
    spec: MetricSpec, aggregate: MetricAggregate, alpha: float = ALPHA
) -> tuple[tuple[str, GuardrailResult], ...]:
    """(variant, guardrail result) for every non-control variant, on the analysed
    traffic of the experiment's mode: what a scheduled monitor calls with fresh sums
    (any role; the spec supplies max_regression and action). Never raises."""
    arms, reason = analysis_arms(spec, aggregate)
    if reason is not None:
        action = spec.action if spec.action in ACTIONS else "alert"
        return tuple(
            (v, GuardrailResult(NOT_ENOUGH_DATA, None, None, None, action, reason))
            for v in aggregate.variants if v != aggregate.control
        )
    control, control_problem = arms[aggregate.control]
    return tuple(
        (v, _guardrail(spec, control, control_problem, s, p, alpha, aggregate))
        for v, (s, p) in arms.items() if v != aggregate.control
    )


def analyse_metric(spec: MetricSpec, aggregate: MetricAggregate, alpha: float = ALPHA) -> MetricResult:
    """Every variant of one metric (see the module docstring). Never raises."""
    arms, reason = analysis_arms(spec, aggregate)
    if reason is not None:
        return _failed(spec, reason)
    kind = KINDS[spec.type]
    control, control_problem = arms[aggregate.control]
    treatments = [v for v in aggregate.variants if v != aggregate.control]

    uplifts = {
        v: uplift(kind, spec.higher_is_better, control, arms[v][0], control_problem or arms[v][1], alpha)
        for v in treatments
    }
    adjusted = multiple.holm([np.nan if u.p_value is None else u.p_value for u in uplifts.values()])
    for (v, u), p_adj in zip(list(uplifts.items()), adjusted):
        uplifts[v] = dataclasses.replace(u, p_value_adjusted=finite(p_adj))
    if aggregate.mode in metric_adaptive.ADAPTIVE_MODES:
        every = metric_adaptive.uplifts(spec, aggregate, alpha) or {}
        uplifts = {v: _with_adaptive(u, every.get(v)) for v, u in uplifts.items()}

    valid = [s for s, p in arms.values() if p is None and s.visitors > 0]
    cuped_reason = None if kind.cuped else MetricReason.CUPED_UNSUPPORTED
    cuped_reason = cuped_reason or (cuped.reason(valid, spec.type) if valid else MetricReason.NOT_ENOUGH_DATA)
    fitted = None if cuped_reason else cuped.fit(valid, spec.type)

    variants = []
    for v in aggregate.variants:
        s, p = arms[v]
        arm = arm_value(kind, v, s, p, alpha)
        if v == aggregate.control:
            variants.append(VariantMetric(v, arm.visitors, arm.value, arm.ci, None, None, None, arm.reason))
            continue
        pair_problem = control_problem or p
        if pair_problem or cuped_reason:
            cuped_result, why = None, pair_problem or cuped_reason
        else:
            cuped_result, why = _cuped(spec.type, fitted, control, s, alpha)
        guard = _guardrail(spec, control, control_problem, s, p, alpha, aggregate) if spec.role == GUARDRAIL else None
        variants.append(
            VariantMetric(v, arm.visitors, arm.value, arm.ci, uplifts[v], cuped_result, guard, arm.reason, why)
        )
    return MetricResult(spec.key, spec.role, spec.type, tuple(variants))


def analyse_metrics(
    specs: Sequence[MetricSpec], aggregates: Iterable[MetricAggregate], alpha: float = ALPHA
) -> tuple[MetricResult, ...]:
    """``analyse_metric`` for every spec, in spec order; each aggregate is matched by
    ``aggregate.metric == spec.key`` (a spec without one is reported not_enough_data).
    No correction across metrics (module docstring)."""
    by_key = {a.metric: a for a in aggregates}
    return tuple(
        analyse_metric(spec, by_key[spec.key], alpha)
        if spec.key in by_key
        else _failed(spec, MetricReason.NOT_ENOUGH_DATA)
        for spec in specs
    )


def personalisation_lift(
    spec: MetricSpec, aggregate: MetricAggregate, alpha: float = ALPHA
) -> MetricPersonalisation:
    """Policy slice vs holdout (all variants pooled in each) and vs the control's part
    of the holdout, with the same uplift machinery as the variants. Never raises."""
    problem = spec_problem(spec)
    kind = KINDS.get(spec.type, KINDS[RATIO])
    if problem is None and aggregate.control not in aggregate.variants:
        problem = MetricReason.UNKNOWN_CONTROL
    if problem is not None:
        empty = ArmValue("*", 0, None, None, problem)
        none = _empty_uplift(kind, problem)
        return MetricPersonalisation(str(spec.key), str(spec.type), empty, empty, empty, none, none, problem)
    policy, p_policy = pick(aggregate.slices, None, "policy", spec.type)
    holdout, p_holdout = pick(aggregate.slices, None, traffic.HOLDOUT, spec.type)
    control, p_control = pick(aggregate.slices, aggregate.control, traffic.HOLDOUT, spec.type)
    reason = None
    if p_holdout is None and holdout.visitors == 0:
        reason = MetricReason.NO_HOLDOUT
    elif p_policy is None and policy.visitors == 0:
        reason = MetricReason.NOT_ENOUGH_DATA
    vs_holdout = uplift(kind, spec.higher_is_better, holdout, policy, p_holdout or p_policy, alpha)
    vs_control = uplift(kind, spec.higher_is_better, control, policy, p_control or p_policy, alpha)
    if reason == MetricReason.NO_HOLDOUT:
        vs_holdout = vs_control = _empty_uplift(kind, reason)
    return MetricPersonalisation(
        key=spec.key,
        type=spec.type,
        policy=arm_value(kind, "policy", policy, p_policy, alpha),
        holdout=arm_value(kind, "holdout", holdout, p_holdout, alpha),
        control_holdout=arm_value(kind, aggregate.control, control, p_control, alpha),
        vs_holdout=vs_holdout,
        vs_control_holdout=vs_control,
        reason=reason,
        adaptive=metric_adaptive.personalisation(spec, aggregate, alpha)
        if aggregate.mode in metric_adaptive.ADAPTIVE_MODES else None,
    )
