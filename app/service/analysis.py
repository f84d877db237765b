"""From stored counters to the statistics engine: build the aggregate, run ``stats.analyse``.

Everything is summed in SQL by the storage layer (counters kept per variant and
traffic slice, segment and time-bucket GROUP BYs); this module only relabels ids as
variant keys and hands the sums to ``stats``.
"""
from __future__ import annotations

import time
from typing import Any

import stats
from stats import ExperimentAggregate, SegmentAggregate
from stats.inputs import PeriodAggregate

from ..domain.experiments import Experiment
from ..storage import Storage
from . import guardrails, metric_analysis
from .counters import counter_slice, segment_slice
from .policy_cache import LearningCache, PolicyEntry

#: modes whose traffic is allocated adaptively (their decisions use every visitor, period by period)
ADAPTIVE_MODES = frozenset({"bandit", "contextual"})


def build_aggregate(experiment: Experiment, entry: PolicyEntry, storage: Storage,
                    with_segments: bool = True) -> ExperimentAggregate:
    keys = {v.id: v.key for v in experiment.variants}
    slices = tuple(counter_slice(keys[t.variant_id], t) for t in entry.snapshot.totals if t.variant_id in keys)
    segments: list[SegmentAggregate] = []
    if with_segments:
        for cell in storage.segment_totals(experiment.id):
            if cell.variant_id not in keys:
                continue
            segments.append(SegmentAggregate(
                feature=cell.feature,
                level=cell.level,
                slice=segment_slice(keys[cell.variant_id], cell),
            ))
    allocation = None
    if entry.allocation is not None:
        allocation = tuple(float(p) for p in entry.allocation)
    periods: tuple[PeriodAggregate, ...] = ()
    if experiment.mode in ADAPTIVE_MODES:  # the adaptive estimators weight each hour by what was known before it
        periods = tuple(
            PeriodAggregate(period, tuple(counter_slice(keys[t.variant_id], t) for t in totals if t.variant_id in keys))
            for period, totals in storage.period_totals(experiment.id))
    return ExperimentAggregate(
        key=experiment.key, mode=experiment.mode, reward=experiment.reward, control=experiment.control,
        variants=experiment.variant_keys, slices=slices, weights=experiment.weights,
        holdout_share=experiment.holdout, current_allocation=allocation, segments=tuple(segments),
        seed=experiment.id, periods=periods, planned_visitors=experiment.planned_visitors,
    )


def experiment_stats(entry: PolicyEntry, storage: Storage, cache: LearningCache | None = None,
                     now: float | None = None, on_action: guardrails.ActionHook | None = None) -> dict[str, Any]:
    """The stats JSON of ``GET /api/v1/experiments/<key>/stats`` for this learning state.

    ``metrics``: the ``stats.MetricResult.to_dict()`` of each metric (the implicit ``reward``
    without metrics); ``personalisation_guardrails``: policy traffic against the holdout on the
    primary metric and the guardrails; ``personalisation_lift``: bandit modes, per metric, the
    deployed policy against uniform random on every visitor; ``guardrail_actions``: what failing guardrails did. With
    a ``cache`` the guardrails are enforced first (every stats request evaluates them).
    """
    experiment = entry.experiment
    result = stats.analyse(build_aggregate(experiment, entry, storage)).to_dict()
    result["model_version"] = entry.model_version
    result["status"] = experiment.status
    report = metric_analysis.analyse(entry, storage)
    if cache is not None and experiment.status == "running":
        guardrails.enforce(entry, report, storage, cache, time.time() if now is None else now, on_action)
    result["metrics"] = [r.to_dict() for r in report.results]
    result["personalisation_guardrails"] = metric_analysis.personalisation_json(report)
    result["personalisation_lift"] = metric_analysis.lifts_json(report)
    result["guardrail_actions"] = guardrails.actions_json(storage, experiment)
    stopped = [a["variant"] for a in result["guardrail_actions"] if a["action"] == "stop_variant"]
    result["stopped_variants"] = list(dict.fromkeys([*experiment.stopped_variants, *stopped]))
    for key in metric_analysis.hurting(report):
        result["warnings"].append({"code": "personalisation_hurting",
                                   "message": f"personalisation is hurting: the policy's traffic is worse than the "
                                              f"random holdout on {key} (always-valid test)"})
    return result
