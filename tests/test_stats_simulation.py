"""Monte-Carlo verification of the statistics engine (seeded, vectorised numpy).

Every simulation calls the package's own vectorised cores on thousands of simulated
experiments at once, and each assertion is a two-sided band that a wrong formula
(unpooled/pooled mix-up, missing sqrt, wrong quantile, biased estimator) would leave.
"""
from __future__ import annotations

import numpy as np
import pytest

from stats import ipw, means, proportions
from stats.sequential import running_min

ALPHA = 0.05


def binomial_band(rate: float, sims: int, sds: float = 4.0) -> tuple[float, float]:
    """Monte-Carlo acceptance band for an estimated probability (for the report)."""
    half = sds * np.sqrt(rate * (1 - rate) / sims)
    return rate - half, rate + half


# ---------------------------------------------------------------- A/A false positives


def test_aa_binary_fixed_horizon_false_positive_rate():
    rng = np.random.default_rng(20240501)
    sims, visitors, rate = 20_000, 4_000, 0.08
    n_t = rng.binomial(visitors, 0.5, size=sims)
    n_c = visitors - n_t
    x_t = rng.binomial(n_t, rate)
    x_c = rng.binomial(n_c, rate)
    c = proportions.compare(x_c, n_c, x_t, n_t)
    fpr = float(np.mean(c.p_value < ALPHA))
    print(f"binary A/A fixed-horizon FPR = {fpr:.4f}")
    assert 0.035 <= fpr <= 0.065
    # the p-value must also be uniform, not just right at 0.05
    assert 0.005 <= float(np.mean(c.p_value < 0.01)) <= 0.015
    assert 0.08 <= float(np.mean(c.p_value < 0.10)) <= 0.12


def test_aa_numeric_fixed_horizon_false_positive_rate():
    rng = np.random.default_rng(7)
    sims, n = 4_000, 300
    # skewed revenue-like outcomes: 30% buy, basket ~ lognormal; unequal arm sizes
    def outcomes(size):
        buy = rng.random((sims, size)) < 0.3
        return buy * rng.lognormal(3.0, 0.6, size=(sims, size))

    y_c, y_t = outcomes(n), outcomes(2 * n)
    c = means.compare(n, y_c.sum(1), (y_c**2).sum(1), 2 * n, y_t.sum(1), (y_t**2).sum(1))
    fpr = float(np.mean(c.p_value < ALPHA))
    print(f"numeric A/A fixed-horizon FPR = {fpr:.4f}")
    assert 0.035 <= fpr <= 0.065


# ---------------------------------------------------------------- peeking


def _peeking_binary(rng, sims=2_000, visitors=5_000, every=100, rate=0.1):
    arm = rng.random((sims, visitors)) < 0.5  # True = treatment
    conv = rng.random((sims, visitors)) < rate
    looks = np.arange(every - 1, visitors, every)
    n_t = np.cumsum(arm, axis=1)[:, looks]
    x_t = np.cumsum(arm & conv, axis=1)[:, looks]
    n_all = looks + 1
    x_all = np.cumsum(conv, axis=1)[:, looks]
    return proportions.compare(x_all - x_t, n_all - n_t, x_t, n_t)


def test_aa_binary_peeking_always_valid_controls_error():
    c = _peeking_binary(np.random.default_rng(11))
    naive = float(np.mean(np.any(c.p_value < ALPHA, axis=1)))
    valid = float(np.mean(running_min(c.always_valid_p_value)[:, -1] < ALPHA))
    print(f"binary peeking (50 looks): naive FPR = {naive:.4f}, always-valid FPR = {valid:.4f}")
    assert naive > 0.05  # peeking at the fixed-horizon p inflates the error rate...
    assert naive > 0.15  # ...a lot, with 50 looks
    assert valid <= 0.05  # ...the mSPRT p does not
    # at the final look alone both are valid; the fixed-horizon one is close to 5%
    assert 0.035 <= float(np.mean(c.p_value[:, -1] < ALPHA)) <= 0.065


def test_aa_numeric_peeking_always_valid_controls_error():
    rng = np.random.default_rng(12)
    sims, visitors, every = 2_000, 3_000, 100
    arm = rng.random((sims, visitors)) < 0.5
    y = rng.exponential(10.0, size=(sims, visitors)) * (rng.random((sims, visitors)) < 0.5)
    looks = np.arange(every - 1, visitors, every)

    def cum(a):
        return np.cumsum(a, axis=1)[:, looks]

    n_t, s_t, q_t = cum(arm), cum(arm * y), cum(arm * y**2)
    n_a, s_a, q_a = looks + 1, cum(y), cum(y**2)
    c = means.compare(n_a - n_t, s_a - s_t, q_a - q_t, n_t, s_t, q_t)
    naive = float(np.mean(np.any(c.p_value < ALPHA, axis=1)))
    valid = float(np.mean(running_min(c.always_valid_p_value)[:, -1] < ALPHA))
    print(f"numeric peeking (30 looks): naive FPR = {naive:.4f}, always-valid FPR = {valid:.4f}")
    assert naive > 0.05
    assert valid <= 0.05


def test_always_valid_p_has_power_under_a_real_effect():
    """Not a tautology (p = 1 always would pass the A/A tests): with a 20% relative
    lift the always-valid test must reject in most runs."""
    rng = np.random.default_rng(13)
    sims, n = 2_000, 20_000
    x_c = rng.binomial(n, 0.10, size=sims)
    x_t = rng.binomial(n, 0.12, size=sims)
    c = proportions.compare(x_c, n, x_t, n)
    power = float(np.mean(c.always_valid_p_value < ALPHA))
    print(f"always-valid power (10% -> 12%, n = 20k/arm) = {power:.3f}")
    assert power > 0.8
    assert np.all(c.always_valid_p_value >= c.p_value)  # the price of validity


# ---------------------------------------------------------------- coverage


def test_binary_uplift_interval_coverage():
    rng = np.random.default_rng(21)
    sims, p_c, p_t = 20_000, 0.10, 0.12
    n_c = rng.binomial(6_000, 0.5, size=sims)
    n_t = 6_000 - n_c
    c = proportions.compare(rng.binomial(n_c, p_c), n_c, rng.binomial(n_t, p_t), n_t)
    cover_abs = float(np.mean((c.ci_absolute_low <= p_t - p_c) & (p_t - p_c <= c.ci_absolute_high)))
    rel = p_t / p_c - 1
    cover_rel = float(np.mean((c.ci_relative_low <= rel) & (rel <= c.ci_relative_high)))
    print(f"binary coverage: absolute = {cover_abs:.4f}, relative (delta) = {cover_rel:.4f}")
    assert 0.93 <= cover_abs <= 0.97
    assert 0.93 <= cover_rel <= 0.97


def test_numeric_uplift_interval_coverage():
    rng = np.random.default_rng(22)
    sims, n_c, n_t = 4_000, 400, 600
    mu_c, mu_t = 20.0, 23.0  # exponential outcomes: mean = scale
    y_c = rng.exponential(mu_c, size=(sims, n_c))
    y_t = rng.exponential(mu_t, size=(sims, n_t))
    c = means.compare(n_c, y_c.sum(1), (y_c**2).sum(1), n_t, y_t.sum(1), (y_t**2).sum(1))
    cover_abs = float(np.mean((c.ci_absolute_low <= mu_t - mu_c) & (mu_t - mu_c <= c.ci_absolute_high)))
    rel = mu_t / mu_c - 1
    cover_rel = float(np.mean((c.ci_relative_low <= rel) & (rel <= c.ci_relative_high)))
    print(f"numeric coverage: absolute = {cover_abs:.4f}, relative (delta) = {cover_rel:.4f}")
    assert 0.93 <= cover_abs <= 0.97
    assert 0.93 <= cover_rel <= 0.97


def test_wilson_interval_coverage_small_samples():
    rng = np.random.default_rng(23)
    sims, n, p = 40_000, 40, 0.1  # Wald would under-cover badly here (~0.91)
    low, high = proportions.wilson_interval(rng.binomial(n, p, size=sims), n)
    cover = float(np.mean((low <= p) & (p <= high)))
    print(f"Wilson coverage n=40, p=0.1: {cover:.4f}")
    assert 0.93 <= cover <= 0.97


# ---------------------------------------------------------------- IPS on bandit logs

ARM_MEANS = np.array([[0.10, 0.20, 0.30], [0.50, 0.30, 0.15]])  # context x arm conversion rates
CONTEXT_P = 0.4  # P(context = 1)
TRUE_VALUE = (1 - CONTEXT_P) * ARM_MEANS[0] + CONTEXT_P * ARM_MEANS[1]  # non-contextual arm values


def simulate_bandit_logs(rng, reps=2_000, batches=20, batch_size=200, floor=0.05):
    """Adaptive, contextual logs: an epsilon-greedy-softmax policy per context, updated
    after every batch from its own (replication-specific) data, plus per-decision
    jitter so propensities vary decision by decision. Returns per-replication sums."""
    k = ARM_MEANS.shape[1]
    succ = np.ones((reps, 2, k))
    tries = np.full((reps, 2, k), 2.0)
    sums = {name: np.zeros((reps, k)) for name in ipw.ArmSums._fields}
    for _ in range(batches):
        x = (rng.random((reps, batch_size)) < CONTEXT_P).astype(int)
        est = succ / tries  # (reps, 2, k)
        jitter = rng.normal(0, 1.0, size=(reps, batch_size, k))
        logits = 12 * np.take_along_axis(est, x[:, :, None].repeat(k, 2), axis=1) + jitter
        probs = np.exp(logits - logits.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        probs = floor + (1 - k * floor) * probs  # every arm keeps >= 5%
        u = rng.random((reps, batch_size, 1))
        arm = np.minimum((u > np.cumsum(probs, -1)).sum(-1), k - 1)
        p = np.take_along_axis(probs, arm[..., None], -1)[..., 0]
        y = (rng.random((reps, batch_size)) < ARM_MEANS[x, arm]).astype(float)
        onehot = np.eye(k)[arm]  # (reps, batch, k)
        add = {
            "n": onehot,
            "reward": onehot * y[..., None],
            "inv": onehot / p[..., None],
            "inv_sq": onehot / p[..., None] ** 2,
            "ips": onehot * (y / p)[..., None],
            "ips_sq": onehot * (y**2 / p**2)[..., None],
            "cross": onehot * (y / p**2)[..., None],
        }
        for name, val in add.items():
            sums[name] += val.sum(axis=1)
        np.add.at(succ, (np.arange(reps)[:, None], x, arm), y)  # policy learns
        np.add.at(tries, (np.arange(reps)[:, None], x, arm), 1.0)
    return ipw.ArmSums(**sums), batches * batch_size


@pytest.fixture(scope="module")
def bandit_logs():
    return simulate_bandit_logs(np.random.default_rng(31))


def _z(errors):
    return float(np.mean(errors) / (np.std(errors, ddof=1) / np.sqrt(errors.size)))


def test_ips_unbiased_on_adaptive_logs(bandit_logs):
    sums, n = bandit_logs
    k = TRUE_VALUE.size
    for i in range(k):
        e = ipw.ips(sums, np.eye(k)[i], n)
        z = _z(e.value - TRUE_VALUE[i])
        print(f"arm {i}: IPS mean error z = {z:+.2f}")
        assert abs(z) < 2
    target = np.array([0.2, 0.3, 0.5])
    e = ipw.ips(sums, target, n)
    assert abs(_z(e.value - target @ TRUE_VALUE)) < 2


def test_naive_arm_means_are_biased_on_adaptive_logs(bandit_logs):
    """Why IPS is needed, and proof the unbiasedness check has power: the plain arm
    means of the same logs are far off (arm choice depends on context)."""
    sums, _ = bandit_logs
    naive = sums.reward / sums.n
    zs = [_z(naive[:, i] - TRUE_VALUE[i]) for i in range(TRUE_VALUE.size)]
    print("naive arm mean error z:", np.round(zs, 1))
    assert max(abs(z) for z in zs) > 10


def test_snips_and_dr_consistent_on_adaptive_logs(bandit_logs):
    """SNIPS and DR (mean model fitted on the same data) are consistent, with O(1/N)
    bias: at N = 4,000 decisions the bias must be far below the estimators' SE."""
    sums, n = bandit_logs
    k = TRUE_VALUE.size
    for i in range(k):
        pi = np.eye(k)[i]
        for name, est in (("snips", ipw.snips(sums, pi)), ("dr", ipw.doubly_robust(sums, pi, n))):
            bias = float(np.mean(est.value - TRUE_VALUE[i]))
            print(f"arm {i} {name}: bias = {bias:+.5f}, mean SE = {np.mean(est.se):.5f}")
            assert abs(bias) < 0.1 * float(np.mean(est.se))


def test_off_policy_interval_coverage_on_adaptive_logs(bandit_logs):
    sums, n = bandit_logs
    k = TRUE_VALUE.size
    for name, fn in (
        ("ips", lambda pi: ipw.ips(sums, pi, n)),
        ("snips", lambda pi: ipw.snips(sums, pi)),
        ("dr", lambda pi: ipw.doubly_robust(sums, pi, n)),
    ):
        for pi in (np.eye(k)[0], np.full(k, 1 / k)):
            est = fn(pi)
            truth = pi @ TRUE_VALUE
            cover = float(np.mean((est.low <= truth) & (truth <= est.high)))
            print(f"{name} pi={np.round(pi, 2)} coverage = {cover:.4f}")
            assert 0.93 <= cover <= 0.97
