"""Seeded, vectorised Monte-Carlo checks of the metric analysis.

Each simulation runs thousands of experiments through the same vectorised cores the
scalar API uses (``metric_estimates.KINDS``, ``cuped``, ``metric_guardrails``), with
per-visitor data turned into the SQL sums. Bands are about 4 Monte-Carlo standard
errors wide; the measured rates are printed (pytest -s) for the README.
"""
from __future__ import annotations

import numpy as np

from stats import cuped
from stats.metric_estimates import KINDS
from stats.metric_guardrails import guardrail_arrays
from stats.metric_inputs import MetricSlice

ALPHA = 0.05


def simulate_arm(rng, sims: int, n: int, lift: float = 0.0):
    """Per-visitor data of ``sims`` experiments' arms of ``n`` visitors, as SQL sums per
    metric. x: pre-period events; count ~ Poisson(exp(0.1 + 0.25 x) (1 + lift));
    revenue: a Gamma basket per event (sum of k Gamma(2, 10) = Gamma(2k, 10))."""
    x = rng.poisson(2.0, (sims, n)).astype(float)
    count = rng.poisson(np.exp(0.1 + 0.25 * x) * (1 + lift)).astype(float)
    revenue = np.where(count > 0, rng.gamma(2 * np.maximum(count, 1), 10.0), 0.0)
    outcomes = {
        "conversion": (count > 0) * 1.0,
        "engaged": (count >= 3) * 1.0,
        "count": count,
        "sum": revenue,
    }
    pre = {"conversion": (x > 0) * 1.0, "engaged": (x >= 3) * 1.0, "count": x, "sum": x}
    arms = {
        key: MetricSlice(
            "arm", False, visitors=np.full(sims, n), value_sum=y.sum(1), value_sumsq=(y * y).sum(1),
            pre_sum=pre[key].sum(1), pre_sumsq=(pre[key] ** 2).sum(1), pre_cross_sum=(pre[key] * y).sum(1),
        )
        for key, y in outcomes.items()
    }
    arms["aov"] = MetricSlice(
        "arm", False, visitors=np.full(sims, n),
        numerator_sum=revenue.sum(1), numerator_sumsq=(revenue**2).sum(1),
        denominator_sum=count.sum(1), denominator_sumsq=(count**2).sum(1), cross_sum=(revenue * count).sum(1),
    )
    return arms


METRIC_TYPES = {"conversion": "conversion", "engaged": "conversion", "count": "count", "sum": "sum", "aov": "ratio"}


def test_aa_false_positive_rate_per_metric_and_across_five_metrics():
    rng = np.random.default_rng(20240611)
    sims, n = 3_000, 600
    control, treatment = simulate_arm(rng, sims, n), simulate_arm(rng, sims, n)
    rejected, always_valid = {}, {}
    for key, metric_type in METRIC_TYPES.items():
        kind = KINDS[metric_type]
        diff = kind.difference(control[key], treatment[key], ALPHA)
        rejected[key] = diff.p_value < ALPHA
        always_valid[key] = (diff.ci_always_valid_low > 0) | (diff.ci_always_valid_high < 0)
        assert np.array_equal(always_valid[key], diff.always_valid_p_value <= ALPHA)  # CS <-> p duality
        fpr = float(np.mean(rejected[key]))
        print(f"A/A {key:10s} fixed-horizon FPR {fpr:.4f}  always-valid {np.mean(always_valid[key]):.4f}")
        assert 0.033 <= fpr <= 0.067, key
        assert np.mean(always_valid[key]) <= 0.02, key  # the CS is wider: one look spends little
    any_metric = np.mean(np.any(np.stack(list(rejected.values())), axis=0))
    print(f"A/A at least one of 5 metrics p < 0.05: {any_metric:.4f} (independent bound {1 - 0.95**5:.4f})")
    # no correction across metrics (documented): more than one metric's 5%, at most the
    # independent-metrics rate (the metrics share visitors, so they are correlated)
    assert 0.08 <= any_metric <= 1 - 0.95**5 + 0.02


def test_cuped_aa_calibrated_and_more_powerful_with_a_planted_effect():
    rng = np.random.default_rng(99)
    sims, n = 2_000, 500
    for lift, label in ((0.0, "A/A"), (0.12, "lift 12%")):
        control, treatment = simulate_arm(rng, sims, n), simulate_arm(rng, sims, n, lift)
        for key in ("count", "sum", "conversion"):
            metric_type = METRIC_TYPES[key]
            c, t = control[key], treatment[key]
            fitted = cuped.fit([c, t], metric_type)
            adjusted = cuped.compare(fitted, c, t, metric_type, ALPHA)
            raw = KINDS[metric_type].difference(c, t, ALPHA)
            rate_adj = float(np.mean(adjusted.p_value < ALPHA))
            rate_raw = float(np.mean(raw.p_value < ALPHA))
            reduction = float(np.mean(adjusted.variance_reduction))
            print(f"CUPED {label:8s} {key:10s} rejections raw {rate_raw:.3f} cuped {rate_adj:.3f} "
                  f"variance reduction {reduction:.3f}")
            assert reduction > 0.01  # pre-period conversion is a weak covariate (~3%)
            if lift == 0:
                assert 0.03 <= rate_adj <= 0.07, key
                # unbiased: the adjusted differences centre on 0
                assert abs(np.mean(adjusted.absolute)) < 4 * np.std(adjusted.absolute) / np.sqrt(sims)
            else:
                assert rate_adj > rate_raw, key


def _cumulative(rng, sims, looks, batch, rate):
    """Cumulative conversions after each look (binomial increments)."""
    return np.cumsum(rng.binomial(batch, rate, size=(looks, sims)), axis=0)


def _guardrail_fails(conv_c, conv_t, visitors, max_regression):
    kind = KINDS["conversion"]
    failing = np.zeros(conv_c.shape, dtype=bool)
    for look, n in enumerate(visitors):
        c = MetricSlice("a", False, visitors=np.full(conv_c.shape[1], n), value_sum=conv_c[look])
        t = MetricSlice("b", False, visitors=np.full(conv_c.shape[1], n), value_sum=conv_t[look])
        failing[look] = guardrail_arrays(kind.arm(c, ALPHA), kind.arm(t, ALPHA), 2 * n, max_regression, True, ALPHA)[0]
    return failing


def test_guardrail_aa_rarely_fails_even_when_checked_at_every_look():
    rng = np.random.default_rng(31)
    sims, looks, batch = 4_000, 20, 1_000  # a monitor checking every 1,000 visitors per arm
    visitors = batch * np.arange(1, looks + 1)
    conv_c = _cumulative(rng, sims, looks, batch, 0.10)
    conv_t = _cumulative(rng, sims, looks, batch, 0.10)
    for max_regression in (0.0, 0.02):
        ever = float(np.mean(_guardrail_fails(conv_c, conv_t, visitors, max_regression).any(axis=0)))
        print(f"A/A guardrail (max_regression {max_regression}) failing at any of {looks} looks: {ever:.4f}")
        assert ever <= ALPHA  # one-sided always-valid: at most alpha over all looks
    assert ever < 0.01  # a 2% tolerance makes A/A alarms rare


def test_guardrail_detects_a_planted_regression():
    rng = np.random.default_rng(32)
    sims, looks, batch = 2_000, 20, 1_000
    visitors = batch * np.arange(1, looks + 1)
    conv_c = _cumulative(rng, sims, looks, batch, 0.10)
    conv_t = _cumulative(rng, sims, looks, batch, 0.085)  # -15% relative, tolerance 2%
    failing = _guardrail_fails(conv_c, conv_t, visitors, 0.02)
    detected = failing.any(axis=0)
    first = np.argmax(failing, axis=0)[detected]
    print(f"planted -15% regression: detected in {np.mean(detected):.4f} of runs by 20,000 visitors/arm, "
          f"median first look {np.median(visitors[first]):.0f} visitors/arm")
    assert np.mean(detected) >= 0.85
    # a regression inside the tolerance (-1% vs 2% allowed) is almost never flagged
    conv_mild = _cumulative(rng, sims, looks, batch, 0.099)
    assert np.mean(_guardrail_fails(conv_c, conv_mild, visitors, 0.02).any(axis=0)) <= 0.02
