"""stats.welford: Chan's merge, the rewarded-group + zeros recombination and the shifted
slices, against numpy's two-pass moments of the raw values (issue #16)."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as st

from stats import adaptive, ipw, means, slices
from stats.inputs import ExperimentAggregate, PeriodAggregate, SliceAggregate
from stats.welford import Moments, chan_merge, from_shifted, over_all, reshift, slice_from_counters, with_zeros


def _moments(values: np.ndarray) -> Moments:
    return Moments(float(values.size), float(values.mean()), float(((values - values.mean()) ** 2).sum()))


def _rewarded_counters(y: np.ndarray, rewarded: np.ndarray, p: np.ndarray, shift: float) -> dict[str, float]:
    """What the storage keeps: outcome sums over the rewarded assignments, of y - K."""
    z, w = (y - shift)[rewarded], 1.0 / p
    wr = w[rewarded]
    return {"assignments": y.size, "conversions": int(rewarded.sum()), "reward_sum": z.sum(),
            "reward_sumsq": (z * z).sum(), "inv_propensity_sum": w.sum(), "inv_propensity_sumsq": (w * w).sum(),
            "ips_reward_sum": (z * wr).sum(), "ips_reward_sumsq": (z * z * wr * wr).sum(),
            "ips_cross_sum": (z * wr * wr).sum(), "rewarded_inv_sum": wr.sum(), "rewarded_inv_sumsq": (wr * wr).sum()}


def test_chan_merge_equals_the_two_pass_moments_of_the_union():
    rng = np.random.default_rng(1)
    a, b = 1e9 + rng.normal(0, 1, 300), 1e9 + 5 + rng.normal(0, 2, 200)
    merged = chan_merge(_moments(a), _moments(b))
    both = np.concatenate([a, b])
    assert merged.n == 500
    assert merged.mean == pytest.approx(both.mean(), rel=1e-15)
    # δ is a difference of two means of 1e9, each exact to ~1e-7 absolute: 1e-7 relative here
    assert merged.variance == pytest.approx(both.var(ddof=1), rel=1e-7)
    assert chan_merge(Moments(0, float("nan"), 0), _moments(a)) == _moments(a)


@pytest.mark.parametrize("share_rewarded", [1.0, 0.97, 0.3])
def test_rewarded_group_with_zeros_matches_numpy_for_huge_near_constant_values(share_rewarded):
    rng = np.random.default_rng(2)
    n = 2000
    rewarded = rng.random(n) < share_rewarded
    y = np.where(rewarded, 1e9 + rng.normal(0, 1, n), 0.0)
    shift = float(y[rewarded][0])  # K = the first reward, as the storage chooses it
    c = _rewarded_counters(y, rewarded, np.full(n, 0.5), shift)
    merged = with_zeros(n, c["conversions"], c["reward_sum"], c["reward_sumsq"], shift)
    assert merged.mean == pytest.approx(y.mean(), rel=1e-12)
    assert merged.variance == pytest.approx(y.var(ddof=1), rel=1e-9)
    # the additive form the engine reads gives the same moments
    s = over_all(c, shift)
    assert from_shifted(n, s["reward_sum"], s["reward_sumsq"], shift).variance == pytest.approx(
        y.var(ddof=1), rel=1e-9)
    mean, var = means.moments(n, s["reward_sum"], s["reward_sumsq"])
    assert float(mean) + shift == pytest.approx(y.mean(), rel=1e-12)
    assert float(var) == pytest.approx(y.var(ddof=1), rel=1e-9)


def test_the_one_pass_raw_form_is_garbage_there():
    """The pre-v8 state, written down: raw Σy and Σy² of 1e9 + N(0, 1)."""
    rng = np.random.default_rng(3)
    y = 1e9 + rng.normal(0, 1, 2000)
    _, raw = means.moments(y.size, y.sum(), (y * y).sum())
    assert abs(float(raw) - y.var(ddof=1)) > 0.5 * y.var(ddof=1)


def test_ips_sums_over_every_assignment_from_the_rewarded_ones():
    rng = np.random.default_rng(4)
    n = 500
    p = rng.choice([0.2, 0.5, 0.8], n)
    rewarded = rng.random(n) < 0.6
    y = np.where(rewarded, 1e9 + rng.normal(0, 1, n), 0.0)
    shift = float(y[rewarded][0])
    s = over_all(_rewarded_counters(y, rewarded, p, shift), shift)
    z, w = y - shift, 1.0 / p
    assert s["ips_reward_sum"] == pytest.approx((z * w).sum(), rel=1e-12)
    assert s["ips_reward_sumsq"] == pytest.approx((z * z * w * w).sum(), rel=1e-12)
    assert s["ips_cross_sum"] == pytest.approx((z * w * w).sum(), rel=1e-12)
    assert "rewarded_inv_sum" not in s


def test_zero_shift_leaves_the_counters_as_they_were():
    c = {"assignments": 10, "conversions": 3, "reward_sum": 7.5, "reward_sumsq": 20.25, "inv_propensity_sum": 20.0}
    assert over_all(c, 0.0) == c


def test_reshift_and_merge_of_slices_about_different_shifts():
    rng = np.random.default_rng(5)
    y1, y2 = 1e6 + rng.normal(0, 1, 50), 1e6 + rng.normal(0, 1, 70)
    p1, p2 = np.full(50, 0.5), np.full(70, 0.25)

    def make(y, p, shift):
        c = _rewarded_counters(y, np.ones(y.size, bool), p, shift)
        return slice_from_counters("a", False, c, shift)

    a, b = make(y1, p1, float(y1[0])), make(y2, p2, float(y2[3]))
    merged = slices.merge([a, b], "a", False)
    assert merged.reward_shift == a.reward_shift
    both, w = np.concatenate([y1, y2]), np.concatenate([1 / p1, 1 / p2])
    z = both - merged.reward_shift
    assert merged.reward_sum == pytest.approx(z.sum(), rel=1e-9, abs=1e-6)
    assert merged.reward_sumsq == pytest.approx((z * z).sum(), rel=1e-9)
    assert merged.ips_reward_sumsq == pytest.approx((z * z * w * w).sum(), rel=1e-9)
    back = reshift(merged, 0.0)
    assert back.reward_sum == pytest.approx(both.sum(), rel=1e-12)


def test_snips_dr_and_ips_of_shifted_sums_equal_the_raw_estimators():
    """Moderate values (raw sums still exact enough): the shifted estimators equal the raw ones."""
    rng = np.random.default_rng(6)
    n, k = 3000, 2
    arm = rng.integers(0, k, n)
    p = np.where(arm == 0, 0.3, 0.7)
    y = np.where(rng.random(n) < 0.8, 50 + rng.normal(0, 3, n) + 2 * arm, 0.0)
    rewarded = y != 0
    shift = float(y[rewarded][0])

    def arm_slices(shift_):
        out = []
        for a in range(k):
            mask = arm == a
            c = _rewarded_counters(y[mask], rewarded[mask], p[mask], shift_)
            out.append(slice_from_counters(str(a), False, c, shift_))
        return out

    shifted, raw = ipw.ArmSums.from_slices(arm_slices(shift)), ipw.ArmSums.from_slices(arm_slices(0.0))
    assert shifted.shift == shift and raw.shift == 0.0
    for policy in ([0.5, 0.5], [1.0, 0.0], [0.2, 0.8]):
        for estimate in (lambda s: ipw.ips(s, policy, n), lambda s: ipw.snips(s, policy),
                         lambda s: ipw.doubly_robust(s, policy, n)):
            a, b = estimate(shifted), estimate(raw)
            assert float(a.value) == pytest.approx(float(b.value), rel=1e-10)
            assert float(a.se) == pytest.approx(float(b.se), rel=1e-7)
    # IPS of the uniform policy on uniform propensities is the plain mean: its SE is the t one
    w_terms = 0.5 / p * y
    assert float(ipw.ips(shifted, [0.5, 0.5], n).se) == pytest.approx(st.sem(w_terms), rel=1e-7)


def test_ips_variance_stays_exact_for_huge_near_constant_values():
    rng = np.random.default_rng(7)
    n = 4000
    arm = rng.integers(0, 2, n)
    p = np.full(n, 0.5)
    y = 1e9 + rng.normal(0, 1, n)
    shift = float(y[0])
    parts = []
    for a in range(2):
        mask = arm == a
        c = _rewarded_counters(y[mask], np.ones(mask.sum(), bool), p[mask], shift)
        parts.append(slice_from_counters(str(a), False, c, shift))
    sums = ipw.ArmSums.from_slices(parts)
    terms = 0.5 / p * y  # the uniform policy's IPS terms: w = 1
    estimate = ipw.ips(sums, [0.5, 0.5], n)
    assert float(estimate.value) == pytest.approx(terms.mean(), rel=1e-14)
    assert float(estimate.se) == pytest.approx(st.sem(terms), rel=1e-6)
    snips = ipw.snips(sums, [0.5, 0.5])
    assert float(snips.value) == pytest.approx(terms.mean(), rel=1e-14)


def test_slice_aggregate_default_shift_is_zero():
    assert SliceAggregate("a", False).reward_shift == 0.0


def test_per_hour_aipw_is_the_same_on_shifted_sums():
    """The adaptive contrast only sees differences and residuals: sums about K = the first reward
    give the raw sums' estimate (moderate values, where the raw sums are still exact)."""
    periods = {}
    for shift in (0.0, 40.0):
        parts = []
        for period in (0, 3600):
            rng_p = np.random.default_rng(period + 1)
            cells = []
            for holdout in (True, False):
                n = 400
                arm = rng_p.integers(0, 2, n)
                p = np.where(holdout, 0.5, np.where(arm == 1, 0.8, 0.2))
                y = np.where(rng_p.random(n) < 0.9, 40 + rng_p.normal(0, 2, n) + arm, 0.0)
                for a, key in enumerate(("control", "b")):
                    mask = arm == a
                    c = _rewarded_counters(y[mask], y[mask] != 0, p[mask], shift)
                    cells.append(slice_from_counters(key, holdout, c, shift))
            parts.append(PeriodAggregate(period, tuple(cells)))
        all_slices = tuple(slices.merge([s for part in parts for s in part.slices
                                         if s.variant == v and s.holdout == h], v, h)
                           for v in ("control", "b") for h in (True, False))
        periods[shift] = ExperimentAggregate(key="x", mode="bandit", reward="numeric", control="control",
                                             variants=("control", "b"), slices=all_slices, periods=tuple(parts))
    raw, shifted = adaptive.uplifts(periods[0.0])[1], adaptive.uplifts(periods[40.0])[1]
    assert raw.reason is None and shifted.reason is None
    assert shifted.absolute == pytest.approx(raw.absolute, rel=1e-9)
    assert shifted.se == pytest.approx(raw.se, rel=1e-9)
