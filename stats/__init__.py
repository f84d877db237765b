"""Lever's statistics engine: pure functions from SQL-computed sums to JSON-ready results.

Entry point: ``stats.analyse(aggregate) -> ExperimentStats``; ``.to_dict()`` is the
API payload (NaN-free, snake_case). Modules, one job each:

* ``inputs``          the input contract (sums per variant x holdout slice)
* ``results``         reason codes, shared result records, JSON conversion
* ``slices``          merging slices; which traffic each mode may test on
* ``proportions``     Wilson interval, pooled two-proportion z-test (binary)
* ``means``           t interval, Welch t-test from sums (numeric)
* ``metrics``         reward-type registry + reason codes for thin data
* ``sequential``      always-valid p-values (mSPRT, normal mixture)
* ``bayes``           chance to be best, expected loss, relative credible interval
* ``multiple``        Holm and Benjamini-Hochberg adjustments
* ``srm``             sample-ratio mismatch check
* ``ipw``             IPS / SNIPS / DR and off-policy evaluation
* ``personalisation`` policy slice vs holdout lift
* ``segments``        per-segment comparisons, BH-adjusted
* ``report``          assembles everything
"""
from stats.inputs import ExperimentAggregate, SegmentAggregate, SliceAggregate
from stats.report import ExperimentStats, VariantStats, analyse
from stats.results import Estimate, Reason, ReportWarning, Uplift

__all__ = [
    "analyse",
    "ExperimentAggregate",
    "SegmentAggregate",
    "SliceAggregate",
    "ExperimentStats",
    "VariantStats",
    "Uplift",
    "Estimate",
    "Reason",
    "ReportWarning",
]

# Metrics beyond the bandit reward (conversion / count / sum / ratio), CUPED, guardrails:
# metric_inputs (specs, sums), metric_estimates (per-type estimators, relative change),
# cuped, metric_guardrails (one-sided always-valid regression test), metric_analysis.
from stats.metric_analysis import (
    MetricPersonalisation,
    MetricResult,
    analyse_metric,
    analyse_metrics,
    guardrail_checks,
    personalisation_lift,
)
from stats.metric_guardrails import GuardrailResult, guardrail_check
from stats.metric_inputs import MetricAggregate, MetricSlice, MetricSpec

__all__ += [
    "GuardrailResult",
    "MetricAggregate",
    "MetricPersonalisation",
    "MetricResult",
    "MetricSlice",
    "MetricSpec",
    "analyse_metric",
    "analyse_metrics",
    "guardrail_check",
    "guardrail_checks",
    "personalisation_lift",
]
