"""Hostile inputs: NaN, inf, huge, negative or non-numeric sums never raise, never put
NaN/inf in the JSON, and every null number comes with a reason code."""
from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

from stats.metric_analysis import analyse_metric, personalisation_lift
from stats.metric_guardrails import guardrail_check
from stats.metric_inputs import (
    METRIC_TYPES,
    SUMMED,
    MetricAggregate,
    MetricSlice,
    MetricSpec,
)

NUMBERS = hs.one_of(
    hs.floats(allow_nan=True, allow_infinity=True),
    hs.floats(min_value=-1e6, max_value=1e6),
    hs.integers(min_value=-10, max_value=10**400),
    hs.sampled_from([0, 1, 2, 1e99, 1e101, 1e308, -0.0, float("nan"), float("inf"), "7", None]),
)

UPLIFT_NUMBERS = ("absolute", "relative", "ci_relative", "p_value", "always_valid_p_value", "ci_always_valid")


def slices(variant: str):
    fields = {name: NUMBERS for name in SUMMED}
    fields["visitors"] = hs.one_of(hs.integers(min_value=-5, max_value=10**6), NUMBERS)
    return hs.builds(MetricSlice, variant=hs.just(variant), holdout=hs.booleans(), **fields)


def check_reasons(result):
    for v in result["variants"]:
        if v["value"] is None or v["ci"] is None:
            assert v["reason"] is not None or result["reason"] is not None
        u = v["uplift"]
        if u is not None:
            if any(u[k] is None for k in UPLIFT_NUMBERS):
                assert u["reason"] is not None, u
            assert v["cuped"] is not None or v["cuped_reason"] is not None
        g = v["guardrail"]
        if g is not None and g["status"] == "not_enough_data":
            assert g["reason"] is not None


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    metric_type=hs.sampled_from(METRIC_TYPES),
    role=hs.sampled_from(("primary", "secondary", "guardrail")),
    max_regression=hs.one_of(hs.floats(), hs.just(0.02), hs.just(10**400)),
    control=slices("a"),
    treatment=slices("b"),
    holdout=slices("a"),
    mode=hs.sampled_from(("ab", "bandit", "contextual", "weird")),
)
def test_hostile_sums_never_raise_nor_emit_nan(metric_type, role, max_regression, control, treatment, holdout, mode):
    spec = MetricSpec("m", metric_type, True, role, max_regression, "alert")
    agg = MetricAggregate("m", mode, "a", ("a", "b"), (control, treatment, holdout))
    result = analyse_metric(spec, agg).to_dict()
    json.dumps(result, allow_nan=False)
    check_reasons(result)
    json.dumps(personalisation_lift(spec, agg).to_dict(), allow_nan=False)
    guard = guardrail_check(spec, control, treatment).to_dict()
    json.dumps(guard, allow_nan=False)
    assert guard["status"] in ("ok", "failing", "not_enough_data")


def test_specific_hostile_cases_have_the_documented_reasons():
    spec = MetricSpec("m", "sum")
    ok = MetricSlice("a", False, visitors=100, value_sum=50.0, value_sumsq=80.0)
    cases = {
        "non_finite_input": MetricSlice("b", False, visitors=100, value_sum=float("nan")),
        "invalid_input": MetricSlice("b", False, visitors=-3, value_sum=1.0),
    }
    for reason, bad in cases.items():
        result = analyse_metric(spec, MetricAggregate("m", "ab", "a", ("a", "b"), (ok, bad)))
        b = result.variants[1]
        assert b.reason == reason and b.uplift.reason == reason and b.cuped_reason == reason
        assert guardrail_check(MetricSpec("m", "sum", role="guardrail"), ok, bad).reason == reason
    rate_above_one = MetricSlice("b", False, visitors=10, value_sum=11)
    result = analyse_metric(MetricSpec("m", "conversion"), MetricAggregate("m", "ab", "a", ("a", "b"), (ok, rate_above_one)))
    assert result.variants[1].reason == "invalid_input"
    overflow = MetricSlice("b", False, visitors=100, value_sum=1e200, value_sumsq=1e300)
    result = analyse_metric(spec, MetricAggregate("m", "ab", "a", ("a", "b"), (ok, overflow)))
    assert result.variants[1].uplift.reason == "non_finite_input"
    same = (MetricSlice(k, False, visitors=100, value_sum=100.0, value_sumsq=100.0) for k in "ab")  # y = 1
    u = analyse_metric(spec, MetricAggregate("m", "ab", "a", ("a", "b"), tuple(same))).variants[1].uplift
    assert u.reason == "zero_variance" and u.p_value is None and u.decision == "inconclusive"
    empty = analyse_metric(spec, MetricAggregate("m", "ab", "a", ("a", "b"), ()))
    assert empty.variants[1].uplift.reason == "no_control_data"
