"""End-to-end: ``stats.analyse`` on aggregates built the way the storage layer builds
them (GROUP BY variant, holdout over a raw log), checked against brute-force
computations on the raw log, plus reason codes for thin data and a property test
that the JSON never carries NaN/inf."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs
from scipy import stats as st
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportions_ztest

import stats
from stats.inputs import ExperimentAggregate, SegmentAggregate, SliceAggregate

TOP_KEYS = {
    "experiment", "mode", "reward", "control", "variants", "srm", "personalisation",
    "off_policy", "segments", "warnings", "analysis_slice",
}
VARIANT_KEYS = {
    "key", "visitors", "conversions", "rate", "mean", "ci", "uplift", "chance_to_be_best",
    "expected_loss", "credible_interval_relative", "allocation", "ips",
}
UPLIFT_KEYS = {
    "absolute", "ci_absolute", "relative", "ci_relative", "p_value", "p_value_adjusted",
    "always_valid_p_value", "reason",
}


def slice_sums(variant, holdout, y, p, probs_of_variant):
    """What one GROUP BY (variant, holdout) row of the storage layer holds."""
    return SliceAggregate(
        variant=variant,
        holdout=holdout,
        assignments=int(y.size),
        conversions=int(np.sum(y > 0)),
        reward_sum=float(y.sum()),
        reward_sumsq=float((y**2).sum()),
        expected_assignments=float(probs_of_variant.sum()),
        inv_propensity_sum=float((1 / p).sum()),
        inv_propensity_sumsq=float((1 / p**2).sum()),
        ips_reward_sum=float((y / p).sum()),
        ips_reward_sumsq=float((y**2 / p**2).sum()),
        ips_cross_sum=float((y / p**2).sum()),
    )


class Log:
    """A raw assignment log: variant index, holdout flag, propensity, outcome, context."""

    def __init__(self, rng, n, variants, probs, holdout_share, rates, numeric=False):
        k = len(variants)
        self.variants = variants
        self.holdout = rng.random(n) < holdout_share
        self.probs = np.where(self.holdout[:, None], 1 / k, probs)  # (n, k) serving probabilities
        u = rng.random((n, 1))
        self.arm = np.minimum((u > np.cumsum(self.probs, 1)).sum(1), k - 1)
        self.p = self.probs[np.arange(n), self.arm]
        self.country = rng.choice(["DE", "FR", "US"], size=n)
        converted = rng.random(n) < np.asarray(rates)[self.arm]
        self.y = converted * (rng.gamma(2.0, 10.0, size=n) if numeric else 1.0)

    def slices(self, mask=None):
        mask = np.ones(self.y.size, bool) if mask is None else mask
        out = []
        for i, v in enumerate(self.variants):
            for h in (False, True):
                m = mask & (self.arm == i) & (self.holdout == h)
                cell = mask & (self.holdout == h)
                if m.any():
                    out.append(slice_sums(v, h, self.y[m], self.p[m], self.probs[cell, i]))
        return tuple(out)

    def segments(self):
        return tuple(
            SegmentAggregate("country", c, s)
            for c in ("DE", "FR", "US")
            for s in self.slices(self.country == c)
        )


def as_json(result) -> dict:
    text = json.dumps(result.to_dict(), allow_nan=False)  # raises on NaN / inf
    return json.loads(text)


@pytest.fixture(scope="module")
def ab_log():
    rng = np.random.default_rng(100)
    probs = np.tile([0.5, 0.25, 0.25], (20_000, 1))
    return Log(rng, 20_000, ("control", "b", "c"), probs, 0.1, [0.10, 0.115, 0.10])


@pytest.fixture(scope="module")
def ab_report(ab_log):
    agg = ExperimentAggregate(
        key="exp-ab", mode="ab", reward="binary", control="control",
        variants=ab_log.variants, slices=ab_log.slices(), weights=(0.5, 0.25, 0.25),
        holdout_share=0.1, segments=ab_log.segments(), seed=1,
    )
    return as_json(stats.analyse(agg))


def test_ab_report_shape(ab_report):
    assert TOP_KEYS <= set(ab_report)
    assert ab_report["analysis_slice"] == "all"
    assert ab_report["mode"] == "ab" and ab_report["control"] == "control"
    for v in ab_report["variants"]:
        assert VARIANT_KEYS <= set(v)
        assert v["mean"] is None and 0 <= v["rate"] <= 1  # binary: rate set, mean null
        assert v["ci"][0] <= v["rate"] <= v["ci"][1]
    control, b, _ = ab_report["variants"]
    assert control["uplift"] is None
    assert UPLIFT_KEYS <= set(b["uplift"])
    assert set(ab_report["srm"]) >= {"p_value", "ok", "expected", "observed", "method"}
    assert set(ab_report["off_policy"]) >= {"uniform_random", "variants", "current_policy"}
    assert {"value", "ci", "method"} <= set(ab_report["off_policy"]["uniform_random"])
    seg = ab_report["segments"][0]
    assert {"feature", "level", "variants"} <= set(seg)


def test_ab_report_numbers_match_raw_log(ab_log, ab_report):
    """ab: all traffic (both slices) is the randomised experiment."""
    y, arm = ab_log.y, ab_log.arm
    raw_p = []
    for i, v in enumerate(ab_report["variants"]):
        assert v["visitors"] == np.sum(arm == i)
        assert v["conversions"] == np.sum(y[arm == i])
        if i:
            _, p = proportions_ztest([y[arm == i].sum(), y[arm == 0].sum()],
                                     [np.sum(arm == i), np.sum(arm == 0)])
            assert v["uplift"]["p_value"] == pytest.approx(p, abs=1e-9)
            assert v["uplift"]["absolute"] == pytest.approx(y[arm == i].mean() - y[arm == 0].mean())
            raw_p.append(p)
    holm = multipletests(raw_p, method="holm")[1]
    assert [v["uplift"]["p_value_adjusted"] for v in ab_report["variants"][1:]] == pytest.approx(holm)
    assert sum(v["chance_to_be_best"] for v in ab_report["variants"]) == pytest.approx(1.0)
    assert [v["allocation"] for v in ab_report["variants"]] == [0.5, 0.25, 0.25]


def test_ab_srm_ok_and_segments_bh(ab_log, ab_report):
    assert ab_report["srm"]["ok"] is True
    raw = [
        (seg["level"], v["key"], v["uplift"]["p_value"], v["uplift"]["p_value_adjusted"])
        for seg in ab_report["segments"] for v in seg["variants"] if v["uplift"]
    ]
    assert len(raw) == 6  # 3 countries x 2 treatments
    bh = multipletests([r[2] for r in raw], method="fdr_bh")[1]
    assert [r[3] for r in raw] == pytest.approx(bh)
    de, ctrl = ab_log.country == "DE", ab_log.arm == 0
    _, p = proportions_ztest(
        [ab_log.y[de & (ab_log.arm == 1)].sum(), ab_log.y[de & ctrl].sum()],
        [np.sum(de & (ab_log.arm == 1)), np.sum(de & ctrl)],
    )
    assert raw[0][:2] == ("DE", "b") and raw[0][2] == pytest.approx(p, abs=1e-9)


def test_report_is_deterministic_given_seed(ab_log):
    def run(seed):
        return stats.analyse(ExperimentAggregate(
            key="e", mode="ab", reward="binary", control="control", variants=ab_log.variants,
            slices=ab_log.slices(), weights=(0.5, 0.25, 0.25), seed=seed,
        )).to_dict()

    assert run(5) == run(5)
    assert run(5)["variants"][1]["chance_to_be_best"] != run(6)["variants"][1]["chance_to_be_best"]


@pytest.fixture(scope="module")
def bandit_log():
    rng = np.random.default_rng(200)
    n = 30_000
    # a bandit that favoured b; propensities vary decision to decision
    raw = rng.dirichlet([1.0, 3.0, 1.5], size=n)
    probs = 0.05 + 0.85 * raw
    return Log(rng, n, ("control", "b", "c"), probs, 0.15, [0.05, 0.07, 0.06], numeric=True)


def test_bandit_report_uses_holdout_and_ips(bandit_log):
    log = bandit_log
    agg = ExperimentAggregate(
        key="exp-bandit", mode="bandit", reward="numeric", control="control",
        variants=log.variants, slices=log.slices(), holdout_share=0.15,
        current_allocation=(0.1, 0.6, 0.3), segments=log.segments(), seed=3,
    )
    report = as_json(stats.analyse(agg))
    assert report["analysis_slice"] == "holdout"
    assert "adaptive_allocation" in {w["code"] for w in report["warnings"]}
    h = log.holdout
    for i, v in enumerate(report["variants"]):
        m = h & (log.arm == i)
        assert v["visitors"] == m.sum() and v["visitors_total"] == np.sum(log.arm == i)
        assert v["rate"] is None and v["mean"] == pytest.approx(log.y[m].mean())
        lo, hi = st.t.interval(0.95, m.sum() - 1, loc=log.y[m].mean(), scale=st.sem(log.y[m]))
        assert v["ci"] == pytest.approx([lo, hi])
        if i:
            ref = st.ttest_ind(log.y[m], log.y[h & (log.arm == 0)], equal_var=False)
            assert v["uplift"]["p_value"] == pytest.approx(ref.pvalue, abs=1e-9)
        # IPS over all traffic, brute force on the raw log
        terms = (log.arm == i) * log.y / log.p
        assert v["ips"]["value"] == pytest.approx(terms.mean())
        assert v["ips"]["ci"][1] - v["ips"]["value"] == pytest.approx(
            st.norm.ppf(0.975) * terms.std(ddof=1) / np.sqrt(terms.size)
        )
    # segments use the holdout too
    de = report["segments"][0]
    assert de["level"] == "DE"
    assert [v["visitors"] for v in de["variants"]] == [
        int(np.sum(h & (log.country == "DE") & (log.arm == i))) for i in range(3)
    ]
    assert report["srm"]["method"] == "chi_square_vs_propensities"
    assert report["srm"]["ok"] is True
    pi = np.array([0.1, 0.6, 0.3])
    w = pi[log.arm] / log.p
    current = report["off_policy"]["current_policy"]
    assert current["method"] == "snips"
    assert current["value"] == pytest.approx((w * log.y).sum() / w.sum())
    assert report["allocation_source"] == "current_allocation"
    # personalisation: pooled policy slice vs pooled holdout, Welch
    pers = report["personalisation"]
    ref = st.ttest_ind(log.y[~h], log.y[h], equal_var=False)
    assert pers["vs_holdout"]["p_value"] == pytest.approx(ref.pvalue, abs=1e-9)
    ref = st.ttest_ind(log.y[~h], log.y[h & (log.arm == 0)], equal_var=False)
    assert pers["vs_control_holdout"]["p_value"] == pytest.approx(ref.pvalue, abs=1e-9)


def test_bandit_srm_detects_broken_logging(bandit_log):
    """Lose 8% of the policy-slice decisions that served b (e.g. a crashing redirect
    before the log write): the remaining decisions' propensities still say how often
    b should have been served, so the check must flag it. The intact log must pass."""
    log = bandit_log
    rng = np.random.default_rng(201)
    lost = (log.arm == 1) & ~log.holdout & (rng.random(log.y.size) < 0.08)

    def srm_of(mask):
        agg = ExperimentAggregate(key="e", mode="bandit", reward="numeric", control="control",
                                  variants=log.variants, slices=log.slices(mask))
        return as_json(stats.analyse(agg))

    assert srm_of(np.ones(log.y.size, bool))["srm"]["ok"] is True
    broken = srm_of(~lost)
    assert broken["srm"]["ok"] is False
    assert "srm" in {w["code"] for w in broken["warnings"]}
    assert broken["srm"]["observed"]["b"] < broken["srm"]["expected"]["b"]


def test_bandit_without_holdout_gives_reason_codes():
    agg = ExperimentAggregate(
        key="e", mode="contextual", reward="binary", control="a", variants=("a", "b"),
        slices=(
            SliceAggregate("a", False, 500, 50, 50, 50, 500, 1000, 2000, 100, 200, 200),
            SliceAggregate("b", False, 500, 60, 60, 60, 500, 1000, 2000, 120, 240, 240),
        ),
    )
    report = as_json(stats.analyse(agg))
    codes = {w["code"] for w in report["warnings"]}
    assert {"adaptive_allocation", "no_holdout"} <= codes
    b = report["variants"][1]
    assert b["uplift"]["reason"] == "no_holdout" and b["uplift"]["p_value"] is None
    assert b["chance_to_be_best"] is None and report["bayesian"]["reason"] == "not_enough_data"
    assert report["personalisation"]["reason"] == "no_holdout"
    assert report["off_policy"]["current_policy"]["reason"] == "no_current_allocation"
    assert b["ips"]["value"] == pytest.approx(120 / 1000)  # all traffic still usable


@pytest.mark.parametrize(
    "control,treatment,reward,reason",
    [
        (SliceAggregate("a", False), SliceAggregate("b", False, 100, 10, 10, 10), "binary", "no_control_data"),
        (SliceAggregate("a", False, 100, 10, 10, 10), SliceAggregate("b", False, 1, 1, 1, 1), "binary", "not_enough_data"),
        (SliceAggregate("a", False, 100), SliceAggregate("b", False, 100), "binary", "zero_variance"),
        (SliceAggregate("a", False, 100), SliceAggregate("b", False, 100, 5, 5, 5), "binary", "control_mean_zero"),
        (SliceAggregate("a", False, 50, 50, 100, 200), SliceAggregate("b", False, 50, 50, 100, 200), "numeric", "zero_variance"),
        (SliceAggregate("a", False, 50), SliceAggregate("b", False, 50, 5, 50, 600), "numeric", "control_mean_zero"),
    ],
)
def test_thin_data_reason_codes(control, treatment, reward, reason):
    agg = ExperimentAggregate(key="e", mode="ab", reward=reward, control="a",
                              variants=("a", "b"), slices=(control, treatment))
    report = as_json(stats.analyse(agg))
    assert report["variants"][1]["uplift"]["reason"] == reason


def test_unsupported_and_unknown_control_are_reports_not_exceptions():
    bad_mode = ExperimentAggregate(key="e", mode="mystery", reward="binary", control="a",
                                   variants=("a",), slices=())
    assert as_json(stats.analyse(bad_mode))["reason"] == "unsupported"
    bad_control = ExperimentAggregate(key="e", mode="ab", reward="binary", control="z",
                                      variants=("a", "b"), slices=())
    assert as_json(stats.analyse(bad_control))["reason"] == "unknown_control"


# ---------------------------------------------------------------- property test

counts = hs.integers(min_value=0, max_value=5_000)


@hs.composite
def aggregates(draw):
    k = draw(hs.integers(1, 4))
    variants = tuple(f"v{i}" for i in range(k))
    reward = draw(hs.sampled_from(["binary", "numeric"]))
    mode = draw(hs.sampled_from(["ab", "bandit", "contextual"]))
    slices = []
    for v in variants:
        for h in (False, True):
            if draw(hs.booleans()):
                n = draw(counts)
                x = draw(hs.integers(0, n))
                if reward == "binary":
                    s = q = float(x)
                else:
                    s = draw(hs.floats(0, 1e5)) if x else 0.0
                    q = s * draw(hs.floats(0, 1e3)) if x else 0.0  # any q >= 0
                inv = n * draw(hs.floats(1, 20))
                slices.append(SliceAggregate(
                    v, h, n, x, s, q,
                    expected_assignments=n * draw(hs.floats(0, 2)),
                    inv_propensity_sum=inv, inv_propensity_sumsq=inv * 20,
                    ips_reward_sum=s * 5, ips_reward_sumsq=q * 25, ips_cross_sum=s * 20,
                ))
    alloc = draw(hs.sampled_from([None, tuple([1 / k] * k), tuple([1.0] + [0.0] * (k - 1))]))
    segments = tuple(SegmentAggregate("f", draw(hs.sampled_from("xy")), s) for s in slices[:3])
    return ExperimentAggregate(
        key="p", mode=mode, reward=reward, control=variants[0], variants=variants,
        slices=tuple(slices), weights=tuple([1 / k] * k), current_allocation=alloc,
        segments=segments, seed=draw(hs.integers(0, 2**32 - 1)),
    )


def _walk(obj, path=""):
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield from _walk(value, f"{path}.{key}")
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            yield from _walk(value, f"{path}[{i}]")
    else:
        yield path, obj


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(aggregates())
def test_any_aggregate_gives_clean_json(agg):
    report = as_json(stats.analyse(agg))
    for path, value in _walk(report):
        if isinstance(value, float):
            assert math.isfinite(value), path
        if path.endswith(("p_value", "p_value_adjusted", "always_valid_p_value")) and value is not None:
            assert 0.0 <= value <= 1.0, path
    for v in report["variants"]:
        up = v["uplift"]
        if up is not None and up["p_value"] is None:
            assert up["reason"] is not None  # a missing number always says why
        same_data = up is not None and up.get("decision_rule") != "adaptive_anytime_valid"
        if same_data and up["ci_absolute"] is not None and up["ci_always_valid"] is not None:
            # on the same data the confidence sequence is wider than the fixed interval (both unpooled;
            # the fixed p pools the variance under H0, so p-values need not be ordered at extreme rates;
            # under a bandit the sequence is all traffic's, the fixed test the holdout's: no order)
            low, high = up["ci_absolute"]
            assert up["ci_always_valid"][0] <= low + 1e-12 and up["ci_always_valid"][1] >= high - 1e-12, json.dumps(up)
    chances = [v["chance_to_be_best"] for v in report["variants"]]
    if chances and None not in chances:
        assert sum(chances) == pytest.approx(1.0)
