"""Metric analysis against independent implementations, to 5 decimals.

References: statsmodels (proportions_ztest, proportion_confint, OLS, multipletests),
scipy (ttest_ind_from_stats, Welch ttest_ind on per-visitor values), and numpy
per-visitor computations on simulated raw data that the tests turn into the sums
SQL would produce. Frozen values (``FROZEN``) pin the numbers of the README example.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats as st
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint, proportions_ztest

from stats import anytime, cuped
from stats.metric_analysis import (
    analyse_metric,
    analyse_metrics,
    guardrail_checks,
    personalisation_lift,
)
from stats.metric_estimates import KINDS, relative
from stats.metric_guardrails import guardrail_check
from stats.metric_inputs import MetricAggregate, MetricSlice, MetricSpec

DEC5 = {"abs": 5e-6}


# ---------------------------------------------------------------- raw data -> sums


def slice_from(variant, y, x=None, a=None, b=None, holdout=False) -> MetricSlice:
    """The sums one GROUP BY produces from per-visitor values (y outcome, x pre-period,
    a/b ratio numerator/denominator)."""
    y = np.asarray(y, dtype=float)
    x = np.zeros_like(y) if x is None else np.asarray(x, dtype=float)
    a = np.zeros_like(y) if a is None else np.asarray(a, dtype=float)
    b = np.zeros_like(y) if b is None else np.asarray(b, dtype=float)
    return MetricSlice(
        variant=variant,
        holdout=holdout,
        visitors=int(y.size),
        value_sum=float(y.sum()),
        value_sumsq=float((y * y).sum()),
        numerator_sum=float(a.sum()),
        numerator_sumsq=float((a * a).sum()),
        denominator_sum=float(b.sum()),
        denominator_sumsq=float((b * b).sum()),
        cross_sum=float((a * b).sum()),
        pre_sum=float(x.sum()),
        pre_sumsq=float((x * x).sum()),
        pre_cross_sum=float((x * y).sum()),
    )


def raw_visitors(seed=11, sizes=(400, 420, 380), effects=(0.0, 0.15, -0.1)):
    """Per-visitor data of three variants "a" (control), "b", "c": a pre-period event
    count x, the in-experiment count (correlated with x), conversion (count > 0), and
    a revenue sum (lognormal basket per event)."""
    rng = np.random.default_rng(seed)
    out = {}
    for key, n, effect in zip("abc", sizes, effects):
        x = rng.poisson(2.0, n).astype(float)
        count = rng.poisson(np.exp(0.1 + 0.25 * x + effect)).astype(float)
        revenue = np.array([rng.lognormal(3.0, 0.7, int(k)).sum() for k in count])
        out[key] = {"x": x, "count": count, "conversion": (count > 0) * 1.0, "sum": revenue,
                    "x_conversion": (x > 0) * 1.0}
    return out


RAW = raw_visitors()


def aggregate_for(metric: str, outcome: str, covariate: str = "x", mode="ab") -> MetricAggregate:
    slices = tuple(
        slice_from(k, d[outcome], x=d[covariate], a=d["sum"], b=d["count"]) for k, d in RAW.items()
    )
    return MetricAggregate(metric, mode, "a", tuple(RAW), slices)


def variant(result, key):
    return next(v for v in result.variants if v.key == key)


def check_always_valid(u, difference, se, n):
    """ci_always_valid / always_valid_p_value / decision against stats.anytime."""
    cs = anytime.confidence_sequence(difference, se, n)
    assert u.ci_always_valid == pytest.approx(cs, **DEC5)
    assert u.always_valid_p_value == pytest.approx(anytime.always_valid_p_value(difference, se, n), **DEC5)
    assert u.decision == anytime.decide(cs, True)


# ---------------------------------------------------------------- conversion


def test_conversion_matches_statsmodels():
    spec = MetricSpec("signup", "conversion")
    result = analyse_metric(spec, aggregate_for("signup", "conversion"))
    c = RAW["a"]["conversion"]
    p_values = []
    for key in "bc":
        t = RAW[key]["conversion"]
        v = variant(result, key)
        lo, hi = proportion_confint(t.sum(), t.size, alpha=0.05, method="wilson")
        assert v.value == pytest.approx(t.mean(), **DEC5)
        assert v.ci == pytest.approx((lo, hi), **DEC5)
        _, p = proportions_ztest([t.sum(), c.sum()], [t.size, c.size])
        assert v.uplift.p_value == pytest.approx(p, **DEC5)
        assert v.uplift.absolute == pytest.approx(t.mean() - c.mean(), **DEC5)
        # log-ratio delta interval, computed independently
        se = np.sqrt((1 - t.mean()) / t.sum() + (1 - c.mean()) / c.sum())
        ratio = t.mean() / c.mean()
        expected = np.exp(np.log(ratio) + np.array([-1, 1]) * st.norm.ppf(0.975) * se) - 1
        assert v.uplift.relative_scale == "log"
        assert v.uplift.ci_relative == pytest.approx(tuple(expected), **DEC5)
        # always-valid: the CS on the difference with the unpooled SE, and its dual p
        check_always_valid(v.uplift, t.mean() - c.mean(), np.sqrt(t.var() / t.size + c.var() / c.size), t.size + c.size)
        p_values.append(p)
    holm = multipletests(p_values, method="holm")[1]
    assert [variant(result, k).uplift.p_value_adjusted for k in "bc"] == pytest.approx(list(holm), **DEC5)
    assert variant(result, "a").uplift is None


# ---------------------------------------------------------------- count and sum


@pytest.mark.parametrize("metric_type", ["count", "sum"])
def test_count_and_sum_match_scipy_welch(metric_type):
    spec = MetricSpec("m", metric_type)
    result = analyse_metric(spec, aggregate_for("m", metric_type))
    c = RAW["a"][metric_type]
    for key in "bc":
        t = RAW[key][metric_type]
        v = variant(result, key)
        ref = st.ttest_ind_from_stats(
            t.mean(), t.std(ddof=1), t.size, c.mean(), c.std(ddof=1), c.size, equal_var=False
        )
        assert v.uplift.p_value == pytest.approx(ref.pvalue, **DEC5)
        assert v.uplift.p_value == pytest.approx(st.ttest_ind(t, c, equal_var=False).pvalue, **DEC5)
        half = st.t.ppf(0.975, t.size - 1) * t.std(ddof=1) / np.sqrt(t.size)
        assert v.ci == pytest.approx((t.mean() - half, t.mean() + half), **DEC5)
        assert v.uplift.test == "welch_t"
        se = np.sqrt(t.var(ddof=1) / t.size + c.var(ddof=1) / c.size)
        check_always_valid(v.uplift, t.mean() - c.mean(), se, t.size + c.size)


def test_sum_with_refunds_falls_back_to_linear_relative_interval():
    # a control with a positive mean and a treatment whose refunds make it negative
    rng = np.random.default_rng(3)
    y_c = rng.normal(2.0, 5.0, 300)
    y_t = rng.normal(-0.5, 5.0, 320)
    agg = MetricAggregate("net", "ab", "c", ("c", "t"), (slice_from("c", y_c), slice_from("t", y_t)))
    u = variant(analyse_metric(MetricSpec("net", "sum"), agg), "t").uplift
    m_c, m_t = y_c.mean(), y_t.mean()
    v_c, v_t = y_c.var(ddof=1) / y_c.size, y_t.var(ddof=1) / y_t.size
    se = np.sqrt(v_t / m_c**2 + m_t**2 * v_c / m_c**4)
    dof = (v_t + v_c) ** 2 / (v_t**2 / (y_t.size - 1) + v_c**2 / (y_c.size - 1))
    q = st.t.ppf(0.975, dof)
    rel = m_t / m_c - 1
    assert u.relative_scale == "linear"
    assert u.relative == pytest.approx(rel, **DEC5)
    assert u.ci_relative == pytest.approx((rel - q * se, rel + q * se), **DEC5)


def test_negative_control_mean_keeps_the_direction_of_relative_change():
    # both means negative: the treatment loses less, so the change is an improvement
    y_c = np.array([-3.0, -5.0, -4.0, -6.0])
    y_t = np.array([-1.0, -2.0, -1.5, -2.5])
    agg = MetricAggregate("net", "ab", "c", ("c", "t"), (slice_from("c", y_c), slice_from("t", y_t)))
    u = variant(analyse_metric(MetricSpec("net", "sum"), agg), "t").uplift
    assert u.relative == pytest.approx((y_t.mean() - y_c.mean()) / abs(y_c.mean()), **DEC5)
    assert u.relative > 0 and u.ci_relative[0] < u.relative < u.ci_relative[1]


# ---------------------------------------------------------------- ratio (delta method)


def _ratio_reference(a, b):
    """Ratio and its delta-method variance from per-visitor linearisation:
    R = sum a / sum b, influence values (a_i - R b_i) / mean(b), Var(R) = var(infl)/n."""
    ratio = a.sum() / b.sum()
    influence = (a - ratio * b) / b.mean()
    return ratio, influence.var(ddof=1) / a.size


def test_ratio_delta_method_matches_linearisation_and_bootstrap():
    spec = MetricSpec("aov", "ratio")
    result = analyse_metric(spec, aggregate_for("aov", "sum"))
    refs = {k: _ratio_reference(RAW[k]["sum"], RAW[k]["count"]) for k in RAW}
    for key in "abc":
        ratio, var = refs[key]
        v = variant(result, key)
        half = st.norm.ppf(0.975) * np.sqrt(var)
        assert v.value == pytest.approx(ratio, **DEC5)
        assert v.ci == pytest.approx((ratio - half, ratio + half), **DEC5)
    for key in "bc":
        diff = refs[key][0] - refs["a"][0]
        z = diff / np.sqrt(refs[key][1] + refs["a"][1])
        u = variant(result, key).uplift
        assert u.absolute == pytest.approx(diff, **DEC5)
        assert u.p_value == pytest.approx(2 * st.norm.sf(abs(z)), **DEC5)
        assert u.test == "delta_z"
        check_always_valid(u, diff, np.sqrt(refs[key][1] + refs["a"][1]), RAW[key]["x"].size + RAW["a"]["x"].size)
    # a per-visitor bootstrap of the ratio agrees with the delta-method SE within 7%
    rng = np.random.default_rng(5)
    a, b = RAW["b"]["sum"], RAW["b"]["count"]
    idx = rng.integers(0, a.size, size=(4000, a.size))
    boot = a[idx].sum(1) / b[idx].sum(1)
    assert boot.std(ddof=1) == pytest.approx(np.sqrt(refs["b"][1]), rel=0.07)


def test_ratio_with_zero_denominator_gives_a_reason():
    a = slice_from("a", [0, 0, 0], a=[0, 0, 0], b=[0, 0, 0])
    b = slice_from("b", [1, 2, 0], a=[1.0, 2.0, 0.0], b=[1, 1, 0])
    result = analyse_metric(MetricSpec("aov", "ratio"), MetricAggregate("aov", "ab", "a", ("a", "b"), (a, b)))
    assert variant(result, "a").reason == "denominator_zero"
    assert variant(result, "b").uplift.reason == "denominator_zero"
    assert variant(result, "b").cuped_reason == "cuped_unsupported"


# ---------------------------------------------------------------- CUPED


@pytest.mark.parametrize("metric_type,covariate", [("count", "x"), ("sum", "x"), ("conversion", "x_conversion")])
def test_cuped_matches_ols_and_welch_on_adjusted_values(metric_type, covariate):
    spec = MetricSpec("m", metric_type)
    result = analyse_metric(spec, aggregate_for("m", metric_type, covariate))
    y = np.concatenate([RAW[k][metric_type] for k in "abc"])
    x = np.concatenate([RAW[k][covariate] for k in "abc"])
    arm = np.concatenate([[k] * RAW[k]["x"].size for k in "abc"])
    design = np.column_stack([np.ones_like(y), arm == "b", arm == "c", x - x.mean()]).astype(float)
    ols = sm.OLS(y, design).fit()
    theta = ols.params[3]
    adjusted = y - theta * (x - x.mean())  # per-visitor CUPED values
    for col, key in ((1, "b"), (2, "c")):
        cu = variant(result, key).cuped
        assert cu.absolute == pytest.approx(ols.params[col], **DEC5)
        welch = st.ttest_ind(adjusted[arm == key], adjusted[arm == "a"], equal_var=False)
        assert cu.p_value == pytest.approx(welch.pvalue, **DEC5)
        ci = welch.confidence_interval(0.95)
        assert cu.ci_absolute == pytest.approx((ci.low, ci.high), **DEC5)
        var_adj = sum(adjusted[arm == k].var(ddof=1) / (arm == k).sum() for k in ("a", key))
        var_raw = sum(y[arm == k].var(ddof=1) / (arm == k).sum() for k in ("a", key))
        assert cu.variance_reduction == pytest.approx(1 - var_adj / var_raw, **DEC5)
        assert cu.variance_reduction > 0


def test_cuped_theta_is_the_pooled_within_arm_slope():
    arms = [slice_from(k, RAW[k]["count"], x=RAW[k]["x"]) for k in "abc"]
    fitted = cuped.fit(arms, "count")
    num = sum(((RAW[k]["x"] - RAW[k]["x"].mean()) * (RAW[k]["count"] - RAW[k]["count"].mean())).sum() for k in "abc")
    den = sum(((RAW[k]["x"] - RAW[k]["x"].mean()) ** 2).sum() for k in "abc")
    assert float(fitted.theta) == pytest.approx(num / den, **DEC5)
    assert float(fitted.pre_mean) == pytest.approx(np.concatenate([RAW[k]["x"] for k in "abc"]).mean(), **DEC5)


def test_cuped_without_pre_period_data_is_null_with_a_reason():
    no_pre = tuple(slice_from(k, RAW[k]["count"]) for k in "abc")
    result = analyse_metric(MetricSpec("m", "count"), MetricAggregate("m", "ab", "a", tuple("abc"), no_pre))
    assert all(variant(result, k).cuped is None for k in "bc")
    assert variant(result, "b").cuped_reason == "no_pre_period_data"
    constant = tuple(slice_from(k, RAW[k]["count"], x=np.ones_like(RAW[k]["x"])) for k in "abc")
    result = analyse_metric(MetricSpec("m", "count"), MetricAggregate("m", "ab", "a", tuple("abc"), constant))
    assert variant(result, "c").cuped_reason == "zero_covariate_variance"


def test_cuped_worked_example_frozen():
    """The README example: orders per visitor, 10,000 visitors per arm; the pre-period
    orders correlate with the outcome (within-arm covariances 1.2 and 1.25, var(x) 2)."""
    c = MetricSlice("control", False, 10_000, 15_000, 45_000, pre_sum=20_000, pre_sumsq=60_000, pre_cross_sum=42_000)
    t = MetricSlice("fast", False, 10_000, 15_600, 47_336, pre_sum=20_100, pre_sumsq=60_401, pre_cross_sum=43_856)
    fitted = cuped.fit([c, t], "count")
    assert float(fitted.theta) == pytest.approx((12_000 + 12_500) / (20_000 + 20_000), **DEC5)
    result = analyse_metric(MetricSpec("orders", "count", role="primary"), MetricAggregate("orders", "ab", "control", ("control", "fast"), (c, t)))
    v = variant(result, "fast")
    assert v.cuped.absolute == pytest.approx(0.06 - 0.6125 * 0.01, **DEC5)
    frozen = (v.uplift.p_value, v.uplift.always_valid_p_value, *v.uplift.ci_relative, *v.uplift.ci_always_valid,
              v.cuped.p_value, *v.cuped.ci_absolute, v.cuped.variance_reduction)
    assert tuple(round(x, 5) for x in frozen) == FROZEN["cuped"]
    assert v.uplift.decision == "inconclusive"


# ---------------------------------------------------------------- guardrail


def test_guardrail_worked_example_frozen():
    """The README example: checkout conversion, 20,000 visitors per arm, control 10.0%,
    treatment 8.8% (-12%), tolerated regression 2%; at half the traffic it is not yet
    conclusive."""
    spec = MetricSpec("checkout", "conversion", True, "guardrail", 0.02, "stop_variant")
    control = MetricSlice("a", False, visitors=20_000, value_sum=2_000)
    treatment = MetricSlice("b", False, visitors=20_000, value_sum=1_760)
    g = guardrail_check(spec, control, treatment)
    # independent computation: D = p_t - 0.98 p_c (< 0 <=> worse than -2%), its SE,
    # the CS at 2 alpha; the bound is D's upper end over p_c, shifted back by 2%
    contrast = 0.088 - 0.98 * 0.10
    se = np.sqrt(0.088 * 0.912 / 20_000 + 0.98**2 * 0.10 * 0.90 / 20_000)
    _, upper = anytime.confidence_sequence(contrast, se, 40_000, alpha=0.10)
    p_two = anytime.always_valid_p_value(contrast, se, 40_000)
    assert g.status == "failing" and g.action == "stop_variant"
    assert g.threshold == -0.02
    assert g.bound == pytest.approx(upper / 0.10 - 0.02, **DEC5)
    assert g.always_valid_p_value == pytest.approx(p_two / 2, **DEC5)
    # the fixed-horizon one-sided z-test of the same hypothesis is smaller still (the CS
    # is wider: it allows every look)
    z = contrast / se
    assert st.norm.cdf(z) < g.always_valid_p_value < 0.05
    assert (round(g.bound, 5), round(g.always_valid_p_value, 5)) == FROZEN["guardrail"]
    # the same drop at 10,000 visitors per arm is not yet conclusive
    small = guardrail_check(spec, MetricSlice("a", False, 10_000, 1_000), MetricSlice("b", False, 10_000, 880))
    assert small.status == "ok" and small.bound > -0.02
    assert (round(small.bound, 5), round(small.always_valid_p_value, 5)) == FROZEN["guardrail_half"]
    # a variant that stopped converting fails (D has the control's variance; a ratio's
    # delta-method variance would be 0 here)
    dead = guardrail_check(spec, MetricSlice("a", False, 5_000, 500), MetricSlice("b", False, 5_000, 0))
    assert dead.status == "failing" and dead.bound < -0.8
    # and below the minimum sample it says so
    tiny = guardrail_check(spec, MetricSlice("a", False, 50, 5), MetricSlice("b", False, 50, 0))
    assert (tiny.status, tiny.reason) == ("not_enough_data", "not_enough_data")


def test_guardrail_lower_is_better_fails_on_an_increase():
    spec = MetricSpec("latency", "sum", False, "guardrail", 0.05, "alert")
    rng = np.random.default_rng(8)
    c = rng.gamma(4.0, 100.0, 5_000)
    t = rng.gamma(4.0, 100.0, 5_000) * 1.2  # 20% slower
    g = guardrail_check(spec, slice_from("a", c), slice_from("b", t))
    assert g.status == "failing" and g.threshold == 0.05 and g.bound > 0.05
    ok = guardrail_check(spec, slice_from("a", c), slice_from("b", c[::-1]))
    assert ok.status == "ok" and ok.always_valid_p_value == 1.0


def test_guardrail_checks_for_a_monitor_match_the_report():
    # bandit mode: only the holdout is analysed; "b" regresses by 15%, "c" does not
    parts = (
        MetricSlice("a", True, 30_000, 3_000), MetricSlice("b", True, 30_000, 2_550),
        MetricSlice("c", True, 30_000, 3_020), MetricSlice("b", False, 90_000, 9_000),
    )
    agg = MetricAggregate("checkout", "bandit", "a", ("a", "b", "c"), parts)
    spec = MetricSpec("checkout", "conversion", True, "guardrail", 0.02, "stop_variant")
    checks = dict(guardrail_checks(spec, agg))
    assert checks["b"].status == "failing" and checks["c"].status == "ok"
    assert checks["b"] == guardrail_check(spec, parts[0], parts[1])  # the policy slice is ignored
    report = analyse_metric(spec, agg)
    assert [variant(report, k).guardrail for k in "bc"] == [checks["b"], checks["c"]]
    unknown = dict(guardrail_checks(spec, MetricAggregate("checkout", "weird", "a", ("a", "b"), parts)))
    assert unknown["b"].reason == "unsupported"


# ---------------------------------------------------------------- JSON shape and wiring


def test_json_shape_is_exact():
    specs = [
        MetricSpec("revenue", "sum", True, "primary"),
        MetricSpec("aov", "ratio", True, "secondary"),
        MetricSpec("signup", "conversion", True, "guardrail", 0.02, "alert"),
    ]
    aggs = [aggregate_for("revenue", "sum"), aggregate_for("aov", "sum"), aggregate_for("signup", "conversion", "x_conversion")]
    out = [r.to_dict() for r in analyse_metrics(specs, aggs)]
    json.dumps(out, allow_nan=False)
    assert [m["key"] for m in out] == ["revenue", "aov", "signup"]
    assert set(out[0]) == {"key", "role", "type", "variants", "reason"}
    control, treat = out[0]["variants"][0], out[0]["variants"][1]
    assert set(treat) == {"key", "visitors", "value", "ci", "uplift", "cuped", "guardrail", "reason", "cuped_reason"}
    assert set(treat["uplift"]) == {
        "absolute", "relative", "ci_relative", "p_value", "p_value_adjusted", "always_valid_p_value",
        "ci_always_valid", "decision", "relative_scale", "test", "reason", "adaptive", "decision_rule",
    }
    assert treat["uplift"]["adaptive"] is None and treat["uplift"]["decision_rule"] == "anytime_valid"
    assert set(treat["cuped"]) == {"absolute", "ci_absolute", "p_value", "variance_reduction"}
    assert control["uplift"] is None and control["cuped"] is None and treat["guardrail"] is None
    assert out[1]["variants"][1]["cuped"] is None and out[1]["variants"][1]["cuped_reason"] == "cuped_unsupported"
    guard = out[2]["variants"][2]["guardrail"]
    assert set(guard) == {"status", "always_valid_p_value", "bound", "threshold", "action", "reason", "method"}
    assert guard["status"] in ("ok", "failing", "not_enough_data")
    assert out[0]["variants"][1]["uplift"]["decision"] in ("better", "worse", "inconclusive")


def test_bandit_mode_analyses_the_holdout_and_personalisation_compares_slices():
    rng = np.random.default_rng(4)
    def arm(key, n, rate, holdout):
        return slice_from(key, (rng.random(n) < rate) * 1.0, holdout=holdout)
    parts = (arm("a", 900, 0.10, True), arm("b", 880, 0.12, True), arm("a", 2_000, 0.10, False), arm("b", 7_000, 0.12, False))
    agg = MetricAggregate("signup", "bandit", "a", ("a", "b"), parts)
    spec = MetricSpec("signup", "conversion", role="primary")
    result = analyse_metric(spec, agg)
    assert [v.visitors for v in result.variants] == [900, 880]
    lift = personalisation_lift(spec, agg)
    pol, hold = parts[2], parts[3]
    x_p, n_p = pol.value_sum + hold.value_sum, pol.visitors + hold.visitors
    x_h, n_h = parts[0].value_sum + parts[1].value_sum, 1_780
    _, p = proportions_ztest([x_p, x_h], [n_p, n_h])
    assert lift.policy.visitors == n_p and lift.holdout.visitors == n_h
    assert lift.vs_holdout.p_value == pytest.approx(p, **DEC5)
    _, p_c = proportions_ztest([x_p, parts[0].value_sum], [n_p, 900])
    assert lift.vs_control_holdout.p_value == pytest.approx(p_c, **DEC5)
    json.dumps(lift.to_dict(), allow_nan=False)
    empty = personalisation_lift(spec, MetricAggregate("signup", "bandit", "a", ("a", "b"), parts[2:]))
    assert empty.reason == "no_holdout" and empty.vs_holdout.p_value is None


def test_invalid_spec_and_unknown_control():
    agg = aggregate_for("m", "count")
    bad = analyse_metric(MetricSpec("m", "median"), agg)
    assert bad.reason == "invalid_spec" and bad.variants == ()
    bad = analyse_metric(MetricSpec("m", "count", max_regression=float("nan")), agg)
    assert bad.reason == "invalid_spec"
    other = MetricAggregate("m", "ab", "zz", agg.variants, agg.slices)
    assert analyse_metric(MetricSpec("m", "count"), other).reason == "unknown_control"
    missing = analyse_metrics([MetricSpec("nope", "count")], [agg])
    assert missing[0].reason == "not_enough_data"


def test_kinds_are_vectorised():
    # the same estimators on arrays of experiments (what the simulations rely on)
    n = np.array([100, 200])
    s = MetricSlice("a", False, visitors=n, value_sum=np.array([10.0, 30.0]), value_sumsq=np.array([10.0, 30.0]))
    est = KINDS["conversion"].arm(s, 0.05)
    assert est.value.shape == (2,)
    rel = relative(est, est, 1.96)
    assert np.allclose(rel.relative, 0.0)


FROZEN = {
    "cuped": (0.00492, 0.09942, 0.01195, 0.06882, -0.00531, 0.12531, 0.00204, 0.01965, 0.0881, 0.32981),
    "guardrail": (-0.03658, 0.00853), "guardrail_half": (-0.00525, 0.1222)}
