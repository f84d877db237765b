"""From SQL aggregates to the metric statistics: the ``metrics`` list of the stats JSON.

The storage sums each metric per (variant, slice) over the experiment's exposed visitors
in one statement (``MetricStore.metric_sums``); this module relabels variant ids as keys,
builds ``stats.MetricSpec`` / ``stats.MetricAggregate`` and runs the pure engine
(``stats.analyse_metrics``). An experiment without ``metrics`` has one implicit primary
metric, ``reward``, built from today's reward counters (binary → conversion, numeric →
sum per assignment), so its stats list it like any other metric.

Every visitor under a bandit: for bandit and contextual experiments the metrics' sums come
per (hour period of the exposure, variant, slice) (``MetricAdaptiveStore.metric_period_sums``,
the fold's per-hour slices read in one snapshot, which also add up to the per-slice sums,
``slice_sums``; the implicit ``reward`` uses the reward counters' ``period_totals``), with the
policy's expected assignments of each hour from ``period_totals``: ``MetricAggregate.periods``, from which ``stats.metric_adaptive`` estimates
every conversion/count/sum uplift, guardrail and personalisation lift on all visitors.

Personalisation: for bandit and contextual experiments with a holdout, the primary metric
and every guardrail also run the guardrail test of the policy's traffic against the uniform
holdout: with per-period sums the deployed policy's AIPW value against uniform random on every
visitor (``metric_adaptive.personalisation``, adaptive-valid variance), else (ratio metrics)
the policy slice against the holdout slice. A failing one means personalisation is hurting.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import stats
from stats import (
    GuardrailResult,
    MetricAggregate,
    MetricResult,
    MetricSlice,
    MetricSpec,
    guardrail_check,
)
from stats import metric_adaptive
from stats.inputs import PeriodAggregate, SliceAggregate
from stats.metric_inputs import pick
from stats.welford import reshift

from ..domain.experiments import Experiment
from ..domain.metrics import REWARD_METRIC, MetricDefinition
from ..storage import ArmTotals, MetricPeriodSums, MetricSums, Storage, slice_sums
from .counters import counter_slice
from .policy_cache import PolicyEntry

#: modes whose policy traffic is compared with the holdout
PERSONALISED_MODES = ("bandit", "contextual")


@dataclass(frozen=True)
class MetricsReport:
    """Everything the metric part of an experiment's stats needs, computed once."""

    specs: tuple[MetricSpec, ...]
    aggregates: tuple[MetricAggregate, ...]
    results: tuple[MetricResult, ...]
    #: (spec, policy-vs-holdout guardrail result) for the primary metric and each guardrail
    personalisation: tuple[tuple[MetricSpec, GuardrailResult], ...]
    #: (spec, the deployed policy's all-visitor lift) for every metric that has one
    lifts: tuple[tuple[MetricSpec, metric_adaptive.AdaptivePersonalisation], ...] = ()


def metric_specs(experiment: Experiment, catalogue: dict[str, MetricDefinition]) -> tuple[MetricSpec, ...]:
    """The experiment's metrics as the engine's specs, in primary, secondary, guardrail order."""
    metrics = experiment.metrics
    if metrics is None:
        return (MetricSpec(key=REWARD_METRIC, type="conversion" if experiment.reward == "binary" else "sum",
                           role="primary"),)
    specs = [MetricSpec(key=metrics.primary, type=catalogue[metrics.primary].type,
                        higher_is_better=catalogue[metrics.primary].higher_is_better, role="primary")]
    specs += [MetricSpec(key=k, type=catalogue[k].type, higher_is_better=catalogue[k].higher_is_better,
                         role="secondary") for k in metrics.secondary]
    specs += [MetricSpec(key=g.metric, type=catalogue[g.metric].type,
                         higher_is_better=catalogue[g.metric].higher_is_better, role="guardrail",
                         max_regression=g.max_regression, action=g.action) for g in metrics.guardrails]
    return tuple(specs)


def _reward_slice(key: str, totals: ArmTotals, binary: bool) -> MetricSlice:
    """The implicit metric per assignment from the reward counters: numeric, the sums of y - K over
    every assignment with ``value_shift`` K, like a catalogue metric's (``stats.welford``)."""
    if binary:
        return MetricSlice(variant=key, holdout=totals.holdout, visitors=totals.assignments,
                           value_sum=float(totals.conversions), value_sumsq=float(totals.conversions))
    s = counter_slice(key, totals)
    return MetricSlice(variant=key, holdout=totals.holdout, visitors=totals.assignments,
                       value_sum=s.reward_sum, value_sumsq=s.reward_sumsq, value_shift=s.reward_shift)


def _sums_slice(key: str, sums: MetricSums) -> MetricSlice:
    fields = {name: getattr(sums, name) for name in MetricSlice.__dataclass_fields__ if name != "variant"}
    return MetricSlice(variant=key, **fields)


def _counter_slice(key: str, totals: ArmTotals) -> SliceAggregate:
    """Per-period slices of the implicit metric: as raw sums (shift 0), the form
    ``stats.metric_adaptive`` reads (it adds no shift back to its means)."""
    return reshift(counter_slice(key, totals), 0.0)


def _metric_periods(rows: list[MetricPeriodSums], index: int, keys: dict[int, str],
                    expected: dict[tuple[int, int, bool], float]) -> tuple[PeriodAggregate, ...]:
    """One metric's per-hour slices in ``SliceAggregate`` form (assignments = exposed visitors,
    reward_* = the metric's y sums; the policy's expected assignments from the counters)."""
    by_period: dict[int, list[SliceAggregate]] = {}
    for row in rows:
        ips = row.ips[index]
        if row.variant_id not in keys or ips is None:
            continue
        sums = row.metrics[index].unshifted()  # the adaptive estimators read plain sums
        by_period.setdefault(row.period, []).append(SliceAggregate(
            variant=keys[row.variant_id], holdout=row.holdout, assignments=row.visitors,
            reward_sum=sums.value_sum, reward_sumsq=sums.value_sumsq,
            expected_assignments=expected.get((row.period, row.variant_id, row.holdout), 0.0),
            inv_propensity_sum=row.inv_propensity_sum, inv_propensity_sumsq=row.inv_propensity_sumsq,
            ips_reward_sum=ips[0], ips_reward_sumsq=ips[1], ips_cross_sum=ips[2]))
    return tuple(PeriodAggregate(period, tuple(parts)) for period, parts in sorted(by_period.items()))


def metric_aggregates(entry: PolicyEntry, storage: Storage,
                      catalogue: dict[str, MetricDefinition]) -> tuple[MetricAggregate, ...]:
    experiment = entry.experiment
    keys = {v.id: v.key for v in experiment.variants}
    adaptive = experiment.mode in PERSONALISED_MODES
    counters = storage.period_totals(experiment.id) if adaptive else []

    def aggregate(metric: str, slices: list[MetricSlice],
                  periods: tuple[PeriodAggregate, ...] = ()) -> MetricAggregate:
        return MetricAggregate(metric=metric, mode=experiment.mode, control=experiment.control,
                               variants=experiment.variant_keys, slices=tuple(slices), periods=periods)

    if experiment.metrics is None:
        binary = experiment.reward == "binary"
        periods = tuple(PeriodAggregate(period, tuple(_counter_slice(keys[t.variant_id], t) for t in totals
                                                      if t.variant_id in keys)) for period, totals in counters)
        return (aggregate(REWARD_METRIC, [_reward_slice(keys[t.variant_id], t, binary)
                                          for t in entry.snapshot.totals if t.variant_id in keys], periods),)
    definitions = [catalogue[key] for key in experiment.metrics.keys]
    if not adaptive:  # the folded slices (shifted: stable for large near-constant values)
        return tuple(aggregate(key, [_sums_slice(keys[s.variant_id], s) for s in rows if s.variant_id in keys])
                     for key, rows in storage.metric_sums(experiment, definitions).items())  # type: ignore[attr-defined]
    # one read of the per-hour slices; the per-slice sums are their sums (the same shifted sums)
    rows = storage.metric_period_sums(experiment, definitions)  # type: ignore[attr-defined]
    sums = slice_sums(rows, definitions)
    expected = {(period, t.variant_id, t.holdout): t.expected_assignments for period, totals in counters
                for t in totals}
    return tuple(
        aggregate(key, [_sums_slice(keys[s.variant_id], s) for s in cells if s.variant_id in keys],
                  _metric_periods(rows, index, keys, expected))
        for index, (key, cells) in enumerate(sums.items()))


def _personalisation(experiment: Experiment, specs: tuple[MetricSpec, ...],
                     aggregates: tuple[MetricAggregate, ...]) -> tuple[tuple[MetricSpec, GuardrailResult], ...]:
    if experiment.mode not in PERSONALISED_MODES or experiment.holdout <= 0:
        return ()
    by_key = {a.metric: a for a in aggregates}
    checks = []
    for spec in specs:
        if spec.role == "secondary" or spec.key not in by_key:
            continue
        every = metric_adaptive.personalisation(spec, by_key[spec.key])
        if every is not None:  # the deployed policy on every visitor
            checks.append((spec, every.guardrail))
            continue
        policy, policy_problem = pick(by_key[spec.key].slices, None, "policy", spec.type)
        holdout, holdout_problem = pick(by_key[spec.key].slices, None, "holdout", spec.type)
        if policy_problem or holdout_problem:
            continue
        as_guardrail = MetricSpec(key=spec.key, type=spec.type, higher_is_better=spec.higher_is_better,
                                  role="guardrail", max_regression=spec.max_regression, action="alert")
        checks.append((spec, guardrail_check(as_guardrail, holdout, policy)))
    return tuple(checks)


def _lifts(experiment: Experiment, specs: tuple[MetricSpec, ...], aggregates: tuple[MetricAggregate, ...]
           ) -> tuple[tuple[MetricSpec, metric_adaptive.AdaptivePersonalisation], ...]:
    if experiment.mode not in PERSONALISED_MODES or experiment.holdout <= 0:
        return ()
    by_key = {a.metric: a for a in aggregates}
    found = ((spec, metric_adaptive.personalisation(spec, by_key[spec.key])) for spec in specs if spec.key in by_key)
    return tuple((spec, lift) for spec, lift in found if lift is not None)


def analyse(entry: PolicyEntry, storage: Storage) -> MetricsReport:
    experiment = entry.experiment
    catalogue = {}
    if experiment.metrics is not None:
        # catalogue entries are never deleted, so every key the experiment names is there
        catalogue = {d.key: d for d in storage.list_metrics(list(experiment.metrics.keys))}  # type: ignore[attr-defined]
    specs = metric_specs(experiment, catalogue)
    aggregates = metric_aggregates(entry, storage, catalogue)
    results = stats.analyse_metrics(specs, aggregates)
    return MetricsReport(specs, aggregates, results, _personalisation(experiment, specs, aggregates),
                         _lifts(experiment, specs, aggregates))


def personalisation_json(report: MetricsReport) -> list[dict[str, Any]]:
    return [{"metric": spec.key, "role": spec.role, **result.to_dict()} for spec, result in report.personalisation]


def lifts_json(report: MetricsReport) -> list[dict[str, Any]]:
    """The stats' ``personalisation_lift``: per metric, the deployed policy against uniform random
    (``vs_holdout``) and against always-control, on every visitor."""
    return [{"metric": spec.key, "role": spec.role, "vs_holdout": lift.vs_holdout.to_dict(),
             "vs_control_holdout": lift.vs_control_holdout.to_dict()} for spec, lift in report.lifts]


def hurting(report: MetricsReport) -> list[str]:
    """Metrics on which the policy's traffic is significantly worse than the holdout."""
    return [spec.key for spec, result in report.personalisation if result.status == "failing"]
