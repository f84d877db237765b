"""The engine against independent implementations (statsmodels, scipy, GrowthBook's
gbstats, direct numerical integration, brute force on raw logs) and against frozen
reference values. Agreement is checked to 5 decimals (abs 5e-6) where the methods
coincide; where they differ the comment says why and what is compared instead.
"""
from __future__ import annotations

import numpy as np
import pytest
from gbstats.bayesian.tests import EffectBayesianABTest, EffectBayesianConfig
from gbstats.frequentist.tests import (
    FrequentistConfig,
    SequentialConfig,
    SequentialTwoSidedTTest,
    TwoSidedTTest,
)
from gbstats.models.statistics import ProportionStatistic, SampleMeanStatistic
from scipy import integrate, special
from scipy import stats as st
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    proportion_confint,
    proportions_ztest,
)

from stats import anytime, bayes, ipw, means, multiple, proportions, srm
from stats.anytime import TUNING_N
from stats.inputs import ExperimentAggregate, SliceAggregate
from stats.sequential import mixing_rho_squared, msprt_p_value

DEC5 = dict(abs=5e-6)

# (x_c, n_c, x_t, n_t)
BINARY_CASES = [
    (100, 1000, 130, 1000),
    (48, 1523, 71, 1498),
    (5, 40, 12, 37),
    (2500, 50000, 2650, 50200),
    (999, 1000, 1000, 1000),
    (300, 3000, 270, 2900),
]

# (n, mean, sd) per arm: control, treatment
NUMERIC_CASES = [
    ((500, 24.0, 31.0), (520, 26.5, 35.0)),
    ((30, 1.2, 0.8), (45, 1.0, 1.1)),
    ((10000, 3.1, 9.5), (9800, 3.25, 10.1)),
    ((3, 5.0, 1.0), (4, 7.0, 2.0)),
    ((2000, 0.4, 2.0), (150, 0.9, 3.5)),
]


def sums(n, mean, sd):
    """(n, sum, sum of squares) of n values with this mean and sample sd."""
    return n, n * mean, (n - 1) * sd**2 + n * mean**2


def raw_array(n, mean, sd, seed=0):
    """A raw sample with exactly this mean and sample sd (to feed scipy)."""
    z = np.random.default_rng(seed).normal(size=n)
    z = (z - z.mean()) / z.std(ddof=1)
    return mean + sd * z


# ---------------------------------------------------------------- binary


@pytest.mark.parametrize("x_c,n_c,x_t,n_t", BINARY_CASES)
def test_wilson_matches_statsmodels(x_c, n_c, x_t, n_t):
    for x, n in ((x_c, n_c), (x_t, n_t)):
        low, high = proportions.wilson_interval(x, n)
        ref = proportion_confint(x, n, alpha=0.05, method="wilson")
        assert float(low) == pytest.approx(ref[0], **DEC5)
        assert float(high) == pytest.approx(ref[1], **DEC5)


@pytest.mark.parametrize("x_c,n_c,x_t,n_t", BINARY_CASES)
def test_two_proportion_matches_statsmodels(x_c, n_c, x_t, n_t):
    c = proportions.compare(x_c, n_c, x_t, n_t)
    z, p = proportions_ztest([x_t, x_c], [n_t, n_c])  # pooled variance by default
    assert float(c.statistic) == pytest.approx(z, **DEC5)
    assert float(c.p_value) == pytest.approx(p, **DEC5)
    lo, hi = confint_proportions_2indep(x_t, n_t, x_c, n_c, method="wald", compare="diff")
    assert float(c.ci_absolute_low) == pytest.approx(lo, **DEC5)
    assert float(c.ci_absolute_high) == pytest.approx(hi, **DEC5)


@pytest.mark.parametrize("x_c,n_c,x_t,n_t", BINARY_CASES)
def test_binary_against_gbstats(x_c, n_c, x_t, n_t):
    """gbstats treats a proportion as a mean with variance p(1-p) and runs a Welch
    t-test on it. Its *standard errors* (absolute and delta-method relative) are the
    same formulas as ours and must agree to 5 decimals. Its intervals use a t quantile
    with Welch dof where we use the normal quantile (a z-test is the textbook test for
    proportions; the difference vanishes as n grows), and its p-value uses the
    unpooled variance where ours pools under H0 (statsmodels' default) -- so those are
    compared after swapping in the same quantile, not directly."""
    a, b = ProportionStatistic(n=n_c, sum=x_c), ProportionStatistic(n=n_t, sum=x_t)
    c = proportions.compare(x_c, n_c, x_t, n_t)
    # relative: gbstats' delta-method SE is ours too; our interval is Fieller's
    # (test_fieller_matches_pivot_roots), so only the absolute interval is compared
    for kind, se, mid, low in (
        ("absolute", c.se_absolute, c.absolute, c.ci_absolute_low),
        ("relative", c.se_relative, c.relative, None),
    ):
        g = TwoSidedTTest(a, b, FrequentistConfig(difference_type=kind))
        res = g.compute_result()
        if x_t == n_t:
            # an arm with a 100% rate has zero variance: gbstats refuses (its reason
            # code); the Wald interval still exists from the other arm's variance
            assert res.error_message is not None and float(se) > 0
            continue
        assert float(mid) == pytest.approx(res.expected, **DEC5)
        assert float(se) == pytest.approx(res.uplift.stddev, **DEC5)
        # same interval once gbstats' t_{dof} quantile is replaced by z
        if low is None:
            continue
        t_crit = st.t.ppf(0.975, g.dof)
        gb_half = res.expected - res.ci[0]
        assert float(mid - low) == pytest.approx(gb_half / t_crit * st.norm.ppf(0.975), **DEC5)


# ---------------------------------------------------------------- numeric


@pytest.mark.parametrize("arm_c,arm_t", NUMERIC_CASES)
def test_welch_matches_scipy_on_raw_arrays(arm_c, arm_t):
    y_c, y_t = raw_array(*arm_c, seed=1), raw_array(*arm_t, seed=2)
    c = means.compare(*sums(*arm_c), *sums(*arm_t))
    ref = st.ttest_ind(y_t, y_c, equal_var=False)
    assert float(c.statistic) == pytest.approx(ref.statistic, **DEC5)
    assert float(c.p_value) == pytest.approx(ref.pvalue, **DEC5)
    assert float(c.dof) == pytest.approx(ref.df, **DEC5)
    ci = ref.confidence_interval(0.95)
    assert float(c.ci_absolute_low) == pytest.approx(ci.low, **DEC5)
    assert float(c.ci_absolute_high) == pytest.approx(ci.high, **DEC5)
    # per-arm t interval
    for arm, y in ((arm_c, y_c), (arm_t, y_t)):
        lo, hi = means.t_interval(*sums(*arm))
        ref_lo, ref_hi = st.t.interval(0.95, y.size - 1, loc=y.mean(), scale=st.sem(y))
        assert float(lo) == pytest.approx(ref_lo, **DEC5)
        assert float(hi) == pytest.approx(ref_hi, **DEC5)


@pytest.mark.parametrize("arm_c,arm_t", NUMERIC_CASES)
def test_numeric_matches_gbstats(arm_c, arm_t):
    """For means the methods coincide exactly: Welch t with Satterthwaite dof for the
    absolute difference, delta method with the same t quantile for the relative one,
    and the normal-mixture sequential p-value (see stats.sequential)."""
    (n_c, s_c, q_c), (n_t, s_t, q_t) = sums(*arm_c), sums(*arm_t)
    a = SampleMeanStatistic(n=n_c, sum=s_c, sum_squares=q_c)
    b = SampleMeanStatistic(n=n_t, sum=s_t, sum_squares=q_t)
    c = means.compare(n_c, s_c, q_c, n_t, s_t, q_t)
    absolute = TwoSidedTTest(a, b, FrequentistConfig(difference_type="absolute")).compute_result()
    assert float(c.p_value) == pytest.approx(absolute.p_value, **DEC5)
    assert float(c.ci_absolute_low) == pytest.approx(absolute.ci[0], **DEC5)
    assert float(c.ci_absolute_high) == pytest.approx(absolute.ci[1], **DEC5)
    relative = TwoSidedTTest(a, b, FrequentistConfig(difference_type="relative")).compute_result()
    assert float(c.relative) == pytest.approx(relative.expected, **DEC5)
    assert float(c.se_relative) == pytest.approx(relative.uplift.stddev, **DEC5)
    # the relative interval is Fieller's, not gbstats' delta method (see ratio.py)
    # gbstats' relative p-value tests r = 0 with the delta-method SE (a different Wald
    # statistic for the same null); we report one p-value, from the exact Welch test.
    for tuning in (5000, TUNING_N):
        seq = SequentialTwoSidedTTest(
            a, b, SequentialConfig(difference_type="absolute", sequential_tuning_parameter=tuning)
        ).compute_result()
        assert float(msprt_p_value(c.absolute, c.se_absolute**2, n_c + n_t, n_star=tuning)) == \
            pytest.approx(seq.p_value, **DEC5)
        # gbstats' always-valid CI is the same confidence sequence
        low, high = anytime.confidence_sequence(float(c.absolute), float(c.se_absolute), n_c + n_t,
                                                tuning_n=tuning)
        assert (low, high) == pytest.approx(tuple(seq.ci), **DEC5)
    assert float(c.always_valid_p_value) == pytest.approx(seq.p_value, **DEC5)
    assert float(c.ci_always_valid_low) == pytest.approx(seq.ci[0], **DEC5)


# ---------------------------------------------------------------- always valid


def _mixture_lr_by_quadrature(diff, var, tau2):
    """Lambda = integral of N(D; d, V) / N(D; 0, V) against N(d; 0, tau^2), numerically."""
    def integrand(d):
        return np.exp((2 * d * diff - d**2) / (2 * var)) * st.norm.pdf(d, 0, np.sqrt(tau2))

    sd = np.sqrt(tau2)
    value, _ = integrate.quad(integrand, -12 * sd, 12 * sd, points=[0, diff], limit=200)
    return value


@pytest.mark.parametrize(
    "diff,var,n",
    [(0.01, 4e-5, 8000), (0.003, 1e-5, 40000), (-0.02, 1e-4, 2000), (1.5, 0.5, 900), (0.0, 1e-3, 500)],
)
def test_msprt_matches_numerical_integration(diff, var, n):
    for n_star in (5000, TUNING_N):
        tau2 = mixing_rho_squared(n_star) * n * var
        lam = _mixture_lr_by_quadrature(diff, var, tau2)
        assert float(msprt_p_value(diff, var, n, n_star=n_star)) == pytest.approx(
            min(1.0, 1 / lam), rel=1e-7, abs=1e-9)


@pytest.mark.parametrize("x_c,n_c,x_t,n_t", BINARY_CASES)
def test_binary_always_valid_uses_unpooled_variance(x_c, n_c, x_t, n_t):
    """Binary always-valid p uses the unpooled SE of the interval, so it is the exact
    dual of the confidence sequence; checked against the mixture by quadrature."""
    c = proportions.compare(x_c, n_c, x_t, n_t)
    p_c, p_t = x_c / n_c, x_t / n_t
    var = p_t * (1 - p_t) / n_t + p_c * (1 - p_c) / n_c
    diff = p_t - p_c
    lam = _mixture_lr_by_quadrature(diff, var, mixing_rho_squared() * (n_c + n_t) * var)
    assert float(c.always_valid_p_value) == pytest.approx(min(1.0, 1 / lam), **DEC5)
    assert float(c.always_valid_p_value) >= float(c.p_value)


# ---------------------------------------------------------------- Bayesian


def prob_beta_b_beats_a(a_a, b_a, a_b, b_b):
    """Exact P(theta_B > theta_A) for Beta posteriors with integer a_b (Evan Miller)."""
    i = np.arange(int(a_b))
    terms = (
        special.betaln(a_a + i, b_a + b_b)
        - np.log(b_b + i)
        - special.betaln(1 + i, b_b)
        - special.betaln(a_a, b_a)
    )
    return float(np.exp(terms).sum())


def expected_shortfall_beta(a_a, b_a, a_b, b_b):
    """E[max(theta_A - theta_B, 0)] by quadrature, with the closed-form inner expectation
    E[(theta_A - t)^+] = m_A (1 - I_t(a_a + 1, b_a)) - t (1 - I_t(a_a, b_a))."""
    m_a = a_a / (a_a + b_a)

    def inner(t):
        return m_a * (1 - special.betainc(a_a + 1, b_a, t)) - t * (1 - special.betainc(a_a, b_a, t))

    value, _ = integrate.quad(lambda t: inner(t) * st.beta.pdf(t, a_b, b_b), *_support(a_b, b_b), limit=200)
    return value


def _support(a, b):
    """Where a Beta(a, b) density lives (+-12 sd): quad would miss a narrow peak on [0, 1]."""
    mean, sd = st.beta.mean(a, b), st.beta.std(a, b)
    return max(0.0, mean - 12 * sd), min(1.0, mean + 12 * sd)


def _arm(n, x=0, s=0.0, q=0.0):
    return SliceAggregate("v", True, assignments=n, conversions=x, reward_sum=s, reward_sumsq=q)


@pytest.mark.parametrize("x_c,n_c,x_t,n_t", BINARY_CASES[:4])
def test_binary_bayes_against_exact(x_c, n_c, x_t, n_t):
    post = bayes.analyse("binary", [_arm(n_c, x_c), _arm(n_t, x_t)], 0, seed=42)
    a, b = (1 + x_c, 1 + n_c - x_c), (1 + x_t, 1 + n_t - x_t)
    exact = prob_beta_b_beats_a(*a, *b)
    mc_se = np.sqrt(exact * (1 - exact) / bayes.DRAWS)
    assert post.chance_to_be_best[1] == pytest.approx(exact, abs=4 * mc_se + 1e-4)
    assert post.chance_to_be_best[0] + post.chance_to_be_best[1] == pytest.approx(1.0)
    # expected loss of shipping the treatment = E[(theta_c - theta_t)^+]
    loss_t = expected_shortfall_beta(*a, *b)
    loss_c = expected_shortfall_beta(*b, *a)
    scale = np.sqrt(a[0] * a[1] / (sum(a) ** 2 * (sum(a) + 1)) + b[0] * b[1] / (sum(b) ** 2 * (sum(b) + 1)))
    assert post.expected_loss[1] == pytest.approx(loss_t, abs=0.02 * scale + 1e-6)
    assert post.expected_loss[0] == pytest.approx(loss_c, abs=0.02 * scale + 1e-6)
    # credible interval of theta_t/theta_c - 1: its ends must sit at the 2.5% / 97.5%
    # points of the exact posterior CDF P(theta_t <= (1 + r) theta_c), by quadrature
    low, high = post.credible_interval_relative[1]

    def cdf(r):
        val, _ = integrate.quad(
            lambda u: st.beta.pdf(u, *a) * st.beta.cdf((1 + r) * u, *b), *_support(*a), limit=200
        )
        return val

    assert cdf(low) == pytest.approx(0.025, abs=0.003)
    assert cdf(high) == pytest.approx(0.975, abs=0.003)


@pytest.mark.parametrize("arm_c,arm_t", [c for c in NUMERIC_CASES if min(c[0][0], c[1][0]) >= 150])
def test_numeric_bayes_against_gbstats(arm_c, arm_t):
    """gbstats' effect model (flat prior) puts a normal posterior on the absolute
    difference: chance_to_win = Phi(D / SE) and risk = E[(-delta)^+] for the treatment.
    Ours is a Student-t per arm and Monte Carlo, so agreement is to MC precision (and
    the t-vs-normal difference, negligible for n >= 150)."""
    (n_c, s_c, q_c), (n_t, s_t, q_t) = sums(*arm_c), sums(*arm_t)
    post = bayes.analyse("numeric", [_arm(n_c, 0, s_c, q_c), _arm(n_t, 0, s_t, q_t)], 0, seed=7)
    a = SampleMeanStatistic(n=n_c, sum=s_c, sum_squares=q_c)
    b = SampleMeanStatistic(n=n_t, sum=s_t, sum_squares=q_t)
    res = EffectBayesianABTest(a, b, EffectBayesianConfig(difference_type="absolute")).compute_result()
    assert post.chance_to_be_best[1] == pytest.approx(res.chance_to_win, abs=0.008)
    sd = res.uplift.stddev
    assert post.expected_loss[1] == pytest.approx(res.risk[1], abs=0.02 * sd)
    assert post.expected_loss[0] == pytest.approx(res.risk[0], abs=0.02 * sd)


def test_bayes_is_seeded_and_vectorised_over_many_arms():
    arms = [_arm(1000, 100 + 3 * i) for i in range(6)]
    one = bayes.analyse("binary", arms, 0, seed=3)
    two = bayes.analyse("binary", arms, 0, seed=3)
    other = bayes.analyse("binary", arms, 0, seed=4)
    assert one == two
    assert one.chance_to_be_best != other.chance_to_be_best
    assert sum(one.chance_to_be_best) == pytest.approx(1.0)
    assert np.argmax(one.chance_to_be_best) == 5
    assert np.argmin(one.expected_loss) == 5


# ---------------------------------------------------------------- multiplicity


@pytest.mark.parametrize("seed", range(5))
def test_holm_and_bh_match_statsmodels(seed):
    rng = np.random.default_rng(seed)
    p = np.concatenate([rng.uniform(size=12), rng.uniform(0, 0.01, size=4)])
    rng.shuffle(p)
    assert multiple.holm(p) == pytest.approx(multipletests(p, method="holm")[1], abs=1e-12)
    assert multiple.benjamini_hochberg(p) == pytest.approx(
        multipletests(p, method="fdr_bh")[1], abs=1e-12
    )


def test_adjustments_skip_undefined_tests():
    p = np.array([0.01, np.nan, 0.04, 0.03])
    holm = multiple.holm(p)
    assert np.isnan(holm[1])
    assert holm[[0, 2, 3]] == pytest.approx(multipletests([0.01, 0.04, 0.03], method="holm")[1])
    assert multiple.benjamini_hochberg(np.array([])).size == 0


# ---------------------------------------------------------------- SRM


def test_srm_ab_matches_scipy_chisquare():
    agg = ExperimentAggregate(
        key="e", mode="ab", reward="binary", control="a", variants=("a", "b", "c"),
        slices=(
            SliceAggregate("a", False, 5000), SliceAggregate("b", False, 2600),
            SliceAggregate("c", False, 2450),
        ),
        weights=(0.5, 0.25, 0.25),
    )
    res = srm.check(agg)
    total = 10050
    ref = st.chisquare([5000, 2600, 2450], [total * 0.5, total * 0.25, total * 0.25])
    assert res.p_value == pytest.approx(ref.pvalue, **DEC5)
    assert res.statistic == pytest.approx(ref.statistic, **DEC5)
    assert res.ok is True


def test_srm_ab_adds_holdout_group():
    agg = ExperimentAggregate(
        key="e", mode="ab", reward="binary", control="a", variants=("a", "b"),
        slices=(
            SliceAggregate("a", False, 1000), SliceAggregate("b", False, 1200),
            SliceAggregate("a", True, 100), SliceAggregate("b", True, 130),
        ),
        weights=(0.5, 0.5),
    )
    res = srm.check(agg)
    policy = st.chisquare([1000, 1200])
    holdout = st.chisquare([100, 130])
    assert res.df == 2
    assert res.statistic == pytest.approx(policy.statistic + holdout.statistic, **DEC5)
    assert res.p_value == pytest.approx(st.chi2.sf(policy.statistic + holdout.statistic, 2), **DEC5)
    assert res.ok is False  # 1000 vs 1200 on a 50/50 split: p ~ 2e-5
    assert res.observed == {"a": 1100, "b": 1330}


def test_srm_bandit_uses_expected_assignments():
    def agg(observed_a, observed_b, holdout=()):
        return ExperimentAggregate(
            key="e", mode="bandit", reward="binary", control="a", variants=("a", "b"),
            slices=(
                SliceAggregate("a", False, observed_a, expected_assignments=2990.5),
                SliceAggregate("b", False, observed_b, expected_assignments=7009.5),
            ) + holdout,
        )

    ok = srm.check(agg(3000, 7000))
    ref = st.chisquare([3000, 7000], [2990.5, 7009.5])
    assert ok.p_value == pytest.approx(ref.pvalue, **DEC5) and ok.ok is True and ok.notes == ()
    # 200 assignments moved from b to a compared with what the propensities imply
    bad = srm.check(agg(3200, 6800))
    assert bad.p_value == pytest.approx(st.chisquare([3200, 6800], [2990.5, 7009.5]).pvalue, **DEC5)
    assert bad.ok is False
    # the holdout slice is a second group, against its own expected counts
    both = srm.check(
        agg(3000, 7000, (SliceAggregate("a", True, 520, expected_assignments=500),
                         SliceAggregate("b", True, 480, expected_assignments=500)))
    )
    stat = ref.statistic + st.chisquare([520, 480]).statistic
    assert both.df == 2 and both.p_value == pytest.approx(st.chi2.sf(stat, 2), **DEC5)
    # expected totals that do not match the decisions are rescaled, with a note
    off = srm.check(agg(3000, 6000))
    assert "expected_rescaled" in off.notes
    assert sum(off.expected.values()) == pytest.approx(9000)


def test_srm_zero_weight_variant_served_is_mismatch():
    agg = ExperimentAggregate(
        key="e", mode="ab", reward="binary", control="a", variants=("a", "b"),
        slices=(SliceAggregate("a", False, 1000), SliceAggregate("b", False, 3)),
        weights=(1.0, 0.0),
    )
    res = srm.check(agg)
    assert res.p_value == 0.0 and res.ok is False and res.statistic is None


# ---------------------------------------------------------------- IPS algebra


def test_ipw_sums_match_brute_force_on_raw_logs():
    """The closed forms in ``ipw`` (built from the logged sums) must equal the same
    estimators computed term by term on the raw per-decision log."""
    rng = np.random.default_rng(5)
    n, k = 3000, 3
    probs = rng.dirichlet([2, 2, 2], size=n) * 0.85 + 0.05
    arm = np.array([rng.choice(k, p=p) for p in probs])
    p = probs[np.arange(n), arm]
    y = rng.gamma(2.0, 3.0, size=n) * (rng.random(n) < 0.3)
    onehot = np.eye(k)[arm]
    s = ipw.ArmSums(
        n=onehot.sum(0), reward=onehot.T @ y, inv=onehot.T @ (1 / p), inv_sq=onehot.T @ (1 / p**2),
        ips=onehot.T @ (y / p), ips_sq=onehot.T @ (y**2 / p**2), cross=onehot.T @ (y / p**2),
    )
    pi = np.array([0.2, 0.5, 0.3])
    w = pi[arm] / p
    z = st.norm.ppf(0.975)

    terms = w * y
    e = ipw.ips(s, pi, n)
    assert float(e.value) == pytest.approx(terms.mean(), rel=1e-10)
    assert float(e.se) == pytest.approx(terms.std(ddof=1) / np.sqrt(n), rel=1e-8)
    assert float(e.high - e.value) == pytest.approx(z * terms.std(ddof=1) / np.sqrt(n), rel=1e-8)

    sn = ipw.snips(s, pi)
    v = (w * y).sum() / w.sum()
    assert float(sn.value) == pytest.approx(v, rel=1e-10)
    assert float(sn.se) == pytest.approx(np.sqrt(np.sum((w * y - v * w) ** 2)) / w.sum(), rel=1e-8)

    mu = (onehot.T @ y) / onehot.sum(0)
    dr_terms = pi @ mu + w * (y - mu[arm])
    dr = ipw.doubly_robust(s, pi, n)
    assert float(dr.value) == pytest.approx(dr_terms.mean(), rel=1e-10)
    assert float(dr.se) == pytest.approx(dr_terms.std(ddof=1) / np.sqrt(n), rel=1e-7)


# ---------------------------------------------------------------- frozen reference values
# Computed once with the independent implementations above and frozen here, in the
# style of gbstats' own test-suite, so a silent change of any formula shows up.

REFERENCE_BINARY = {
    # (x_c, n_c, x_t, n_t): (p_value, ci_absolute, relative, ci_relative (Fieller), always_valid_p)
    (100, 1000, 130, 1000): (0.0354885, (0.0020679, 0.0579321), 0.3, (0.0183914, 0.6747178), 0.4131347),
    (48, 1523, 71, 1498): (0.0248720, (0.0019956, 0.0297640), 0.5038524, (0.0537172, 1.2066960), 0.3130190),
}

REFERENCE_NUMERIC = {
    # ((n, mean, sd) control, treatment): (p_value, ci_absolute, ci_relative, dof)
    ((500, 24.0, 31.0), (520, 26.5, 35.0)): (0.2270470, (-1.5586059, 6.5586059), (-0.0604290, 0.2975064), 1011.2385),
}


@pytest.mark.parametrize("case", list(REFERENCE_BINARY))
def test_frozen_binary_reference(case):
    p, ci_abs, rel, ci_rel, avp = REFERENCE_BINARY[case]
    c = proportions.compare(*case)
    assert float(c.p_value) == pytest.approx(p, abs=1e-6)
    assert (float(c.ci_absolute_low), float(c.ci_absolute_high)) == pytest.approx(ci_abs, abs=1e-6)
    assert float(c.relative) == pytest.approx(rel, abs=1e-6)
    assert (float(c.ci_relative_low), float(c.ci_relative_high)) == pytest.approx(ci_rel, abs=1e-6)
    assert float(c.always_valid_p_value) == pytest.approx(avp, abs=1e-6)


@pytest.mark.parametrize("case", list(REFERENCE_NUMERIC))
def test_frozen_numeric_reference(case):
    p, ci_abs, ci_rel, dof = REFERENCE_NUMERIC[case]
    c = means.compare(*sums(*case[0]), *sums(*case[1]))
    assert float(c.p_value) == pytest.approx(p, abs=1e-6)
    assert (float(c.ci_absolute_low), float(c.ci_absolute_high)) == pytest.approx(ci_abs, abs=1e-6)
    assert (float(c.ci_relative_low), float(c.ci_relative_high)) == pytest.approx(ci_rel, abs=1e-6)
    assert float(c.dof) == pytest.approx(dof, abs=1e-3)


def test_frozen_wilson_reference():
    low, high = proportions.wilson_interval(np.array([0, 4, 100]), np.array([20, 40, 1000]))
    assert low == pytest.approx([0.0, 0.0395795, 0.0829094], abs=1e-6)
    assert high == pytest.approx([0.1611252, 0.2305178, 0.1201520], abs=1e-6)
