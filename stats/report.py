"""Assemble every statistic of one experiment: ``analyse(aggregate) -> ExperimentStats``.

Which traffic each part uses:

* headline per-variant numbers, uplift tests, Bayesian summaries and segments use
  the *analysis slice*: all traffic for "ab" (a randomised experiment), only the
  uniform holdout for "bandit"/"contextual" (adaptive allocation is not a randomised
  experiment: arm means on bandit traffic are biased, e.g. Thompson sampling
  under-samples arms after unlucky starts, and are confounded with context and time);
* the SRM check uses both slices against their own design (see ``srm``);
* personalisation compares the policy slice with the holdout slice;
* IPS / SNIPS / DR and off-policy values use all logged traffic, re-weighted by the
  logged propensities, which is what makes adaptive traffic usable.

The output never contains NaN/inf: what cannot be computed is ``None`` beside a
reason code, and ``to_dict()`` is plain JSON.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from stats import adaptive, bayes, decisions, ipw, metrics, multiple, personalisation, segments, slices, srm
from stats import validation
from stats.inputs import ExperimentAggregate, SliceAggregate
from stats.results import ALPHA, Estimate, Reason, ReportWarning, Uplift, finite, jsonable

MIN_EXPECTED_CELL = 5  # binary: conversions and non-conversions per arm for the normal approximation
MIN_NUMERIC_UNITS = 30  # numeric: units per arm before the CLT is trusted


@dataclass(frozen=True)
class VariantStats:
    """One variant. ``visitors``/``conversions``/``rate``/``mean``/``ci``/``uplift`` and
    the Bayesian fields are computed on the analysis slice; ``*_total`` count all
    traffic; ``ips``/``snips``/``dr`` estimate the variant's value from all traffic."""

    key: str
    visitors: int
    conversions: int
    rate: float | None  # binary only (else None): conversions / visitors
    mean: float | None  # numeric only (else None): mean per-assignment outcome
    ci: tuple[float, float] | None  # Wilson (binary) or t (numeric) 95% interval
    uplift: Uplift | None  # vs control; None for the control itself
    chance_to_be_best: float | None
    expected_loss: float | None
    credible_interval_relative: tuple[float, float] | None
    allocation: float | None
    visitors_total: int
    conversions_total: int
    ips: Estimate
    snips: Estimate
    dr: Estimate
    reason: str | None = None


@dataclass(frozen=True)
class BayesianInfo:
    """How the Bayesian fields were computed (and why they are null, if they are)."""

    method: str | None  # "beta_binomial_monte_carlo" | "student_t_monte_carlo"
    draws: int
    seed: int
    reason: str | None = None  # chance_to_be_best / expected_loss are null when set
    relative_reason: str | None = None  # credible_interval_relative is null when set


@dataclass(frozen=True)
class ExperimentStats:
    experiment: str
    mode: str
    reward: str
    control: str
    analysis_slice: str  # "all" | "holdout": the traffic of the fixed-horizon tests
    variants: tuple[VariantStats, ...]
    srm: srm.SrmResult | None
    personalisation: personalisation.Personalisation | None
    off_policy: ipw.OffPolicy | None
    segments: tuple[segments.Segment, ...]
    bayesian: BayesianInfo
    allocation_source: str | None  # "current_allocation" | "weights" | "observed"
    warnings: tuple[ReportWarning, ...] = field(default_factory=tuple)
    reason: str | None = None
    decision_rule: str | None = None  # rule in force for every variant's uplift.decision
    planned_visitors: int | None = None  # declared fixed horizon (None: anytime-valid)
    horizon_reached: bool | None = None  # fixed_horizon only: analysed visitors >= planned

    def to_dict(self) -> dict:
        return jsonable(self)


# ---------------------------------------------------------------- warnings


def _warn(code: str, message: str) -> ReportWarning:
    return ReportWarning(code, message)


SRM_NOTES = {
    "weights_invalid": "Configured weights are missing or invalid (length, sign or sum); "
    "SRM compared the policy slice with a uniform split.",
    "expected_rescaled": "Sum of expected_assignments differs from the number of assignments "
    "by more than 1%; SRM compared proportions (expected rescaled to the observed total).",
    Reason.NO_PROPENSITIES: "No logged propensities (expected_assignments are 0) for a slice; "
    "SRM skipped it.",
}


def _thin_data_warning(reward: str, arms: list[SliceAggregate]) -> ReportWarning | None:
    if reward == "binary":
        thin = any(
            min(a.conversions, a.assignments - a.conversions) < MIN_EXPECTED_CELL for a in arms
        )
        rule = f"fewer than {MIN_EXPECTED_CELL} conversions or non-conversions"
    else:
        thin = any(a.assignments < MIN_NUMERIC_UNITS for a in arms)
        rule = f"fewer than {MIN_NUMERIC_UNITS} units"
    if not thin:
        return None
    return _warn(
        "low_counts",
        f"An arm has {rule} in the analysed slice: normal-approximation tests and "
        "intervals are rough.",
    )


# ---------------------------------------------------------------- allocation


def _allocation(agg: ExperimentAggregate, totals: list[SliceAggregate]):
    k = len(agg.variants)
    for source, values in (("current_allocation", agg.current_allocation), ("weights", agg.weights)):
        if source == "weights" and agg.mode != "ab":
            continue
        if values is not None and len(values) == k and all(v >= 0 for v in values):
            if abs(sum(values) - 1) < 1e-6:
                return source, [float(v) for v in values]
    n = np.array([a.assignments for a in totals], dtype=float)
    share = n / n.sum() if n.sum() > 0 else np.full(k, np.nan)
    return "observed", [finite(x) for x in share]


# ---------------------------------------------------------------- main


def _unsupported(agg: ExperimentAggregate, message: str, reason: str) -> ExperimentStats:
    return ExperimentStats(
        experiment=agg.key,
        mode=agg.mode,
        reward=agg.reward,
        control=agg.control,
        analysis_slice=slices.ANALYSIS_SLICE.get(agg.mode, slices.ALL),
        variants=(),
        srm=None,
        personalisation=None,
        off_policy=None,
        segments=(),
        bayesian=BayesianInfo(None, 0, agg.seed, reason),
        allocation_source=None,
        warnings=(_warn(reason, message),),
        reason=reason,
    )


def analyse(agg: ExperimentAggregate, alpha: float = ALPHA) -> ExperimentStats:
    """All statistics of one experiment (see module docstring and README)."""
    problem = validation.non_finite(agg)
    if problem is not None:
        return _unsupported(
            agg, f"Non-finite or overflowing input ({problem}): nothing was computed.",
            Reason.NON_FINITE_INPUT,
        )
    if agg.mode not in slices.ANALYSIS_SLICE or agg.reward not in metrics.METRICS:
        return _unsupported(
            agg, f"Unsupported mode {agg.mode!r} or reward {agg.reward!r}.", Reason.UNSUPPORTED
        )
    if agg.control not in agg.variants:
        return _unsupported(
            agg, f"Control {agg.control!r} is not one of the variants.", Reason.UNKNOWN_CONTROL
        )

    metric = metrics.METRICS[agg.reward]
    which = slices.ANALYSIS_SLICE[agg.mode]
    warnings: list[ReportWarning] = []

    arms = [slices.pick(agg.slices, v, which) for v in agg.variants]
    totals = [slices.pick(agg.slices, v, slices.ALL) for v in agg.variants]
    control_index = agg.variants.index(agg.control)
    control = arms[control_index]
    holdout_units = sum(a.assignments for a in arms) if which == slices.HOLDOUT else None

    if which == slices.HOLDOUT:
        warnings.append(
            _warn(
                "adaptive_allocation",
                f"Mode {agg.mode!r} allocates traffic adaptively, which is not a randomised "
                "experiment: per-arm means of policy traffic are biased. Tests, intervals, "
                f"Bayesian summaries and segments use only the uniform holdout slice "
                f"({holdout_units} assignments); ips/snips/dr re-weight all traffic by the "
                "logged propensities.",
            )
        )
        if holdout_units == 0:
            warnings.append(
                _warn(Reason.NO_HOLDOUT, "The uniform holdout slice is empty: no fixed-horizon tests.")
            )

    unknown = sorted({s.variant for s in agg.slices} - set(agg.variants))
    if unknown:
        warnings.append(_warn("unknown_variants", f"Ignored slices of unknown variants {unknown}."))
    if any(s.conversions > s.assignments or s.assignments < 0 for s in agg.slices):
        warnings.append(_warn("inconsistent_counts", "A slice has more conversions than assignments."))
    thin = _thin_data_warning(agg.reward, arms)
    if thin is not None and (holdout_units is None or holdout_units > 0):
        warnings.append(thin)

    # fixed-horizon comparisons, Holm-adjusted across variants
    uplifts = [
        None if i == control_index else metrics.uplift(metric, control, arm, alpha)
        for i, arm in enumerate(arms)
    ]
    if which == slices.HOLDOUT and holdout_units == 0:
        uplifts = [
            None if u is None else dataclasses.replace(u, reason=Reason.NO_HOLDOUT) for u in uplifts
        ]
    raw_p = np.array([np.nan if u is None or u.p_value is None else u.p_value for u in uplifts])
    adjusted = multiple.holm(raw_p)
    uplifts = [
        None if u is None else dataclasses.replace(u, p_value_adjusted=finite(adjusted[i]))
        for i, u in enumerate(uplifts)
    ]
    rule = decisions.rule_for(agg.mode, agg.planned_visitors)
    analysed = int(sum(a.assignments for a in arms))
    uplifts = decisions.apply(
        uplifts, rule, analysed, agg.planned_visitors,
        adaptive.uplifts(agg, alpha) if rule == decisions.ADAPTIVE else None,
        alpha, agg.higher_is_better,
    )

    post = bayes.analyse(agg.reward, arms, control_index, agg.seed, alpha=alpha)
    off = ipw.evaluate(agg, alpha)
    allocation_source, allocation = _allocation(agg, totals)
    if agg.current_allocation is not None and allocation_source != "current_allocation":
        warnings.append(_warn(Reason.INVALID_ALLOCATION, "current_allocation is invalid; ignored."))

    check = srm.check(agg)
    if check.ok is False:
        warnings.append(
            _warn(
                "srm",
                f"Sample-ratio mismatch (p = {check.p_value:.2g} < {check.threshold}): "
                "assignment or logging is broken; do not trust the results.",
            )
        )
    warnings.extend(_warn(note, SRM_NOTES[note]) for note in dict.fromkeys(check.notes))

    variants = []
    for i, v in enumerate(agg.variants):
        summary = metrics.summarise(metric, v, arms[i], alpha)
        value = off.variants[v]
        variants.append(
            VariantStats(
                key=v,
                visitors=summary.visitors,
                conversions=summary.conversions,
                rate=summary.rate,
                mean=summary.mean,
                ci=summary.ci,
                uplift=uplifts[i],
                chance_to_be_best=post.chance_to_be_best[i],
                expected_loss=post.expected_loss[i],
                credible_interval_relative=post.credible_interval_relative[i],
                allocation=allocation[i],
                visitors_total=int(totals[i].assignments),
                conversions_total=int(totals[i].conversions),
                ips=value.ips,
                snips=value.snips,
                dr=value.dr,
                reason=summary.reason,
            )
        )

    return ExperimentStats(
        experiment=agg.key,
        mode=agg.mode,
        reward=agg.reward,
        control=agg.control,
        analysis_slice=which,
        variants=tuple(variants),
        srm=check,
        personalisation=personalisation.analyse(agg, alpha),
        off_policy=off,
        segments=segments.analyse(agg, which, alpha),
        bayesian=BayesianInfo(post.method, post.draws, agg.seed, post.reason, post.relative_reason),
        allocation_source=allocation_source,
        warnings=tuple(warnings),
        decision_rule=rule,
        planned_visitors=agg.planned_visitors if rule == decisions.FIXED else None,
        horizon_reached=(analysed >= agg.planned_visitors) if rule == decisions.FIXED else None,
    )
