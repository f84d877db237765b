"""Linear Thompson sampling: propensities, state storage, delayed rewards, decay, stability."""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import integrate, stats

from bandits import (
    CONTEXTUAL_POLICIES,
    ContextualPolicy,
    LinearArmState,
    LinearThompson,
    PolicyConfigError,
    add_decision,
    add_reward,
    decay_to,
)

DEVICE_SCHEMA = [
    {"name": "device", "type": "categorical", "levels": ["mobile", "desktop"]},
    {"name": "hour", "type": "cyclic", "period": 24},
]


def trained_policy(seed: int = 0, n: int = 400, k: int = 3, d: int = 5, **params) -> tuple[LinearThompson, np.ndarray]:
    rng = np.random.default_rng(seed)
    policy = LinearThompson(k, d, **params)
    xs = np.column_stack([np.ones(n), rng.random((n, d - 1))])
    theta = rng.normal(0.1, 0.05, size=(k, d))
    for x in xs:
        arm = int(rng.integers(k))
        policy.update(arm, x, float(rng.random() < np.clip(x @ theta[arm], 0, 1)))
    return policy, xs


# -- construction -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n_arms": 0}, "at least one arm"),
        ({"n_features": 0}, "n_features"),
        ({"prior_precision": 0.0}, "prior_precision"),
        ({"intercept_precision": float("nan")}, "intercept_precision"),
        ({"noise_variance": -1.0}, "noise_variance"),
        ({"min_share": 0.5}, "min_share"),
        ({"draws": 10}, "draws"),
        ({"half_life_s": 0}, "half_life_s"),
        ({"prior_mean": float("inf")}, "prior_mean"),
    ],
)
def test_bad_hyperparameters_rejected(kwargs, message):
    params = {"n_arms": 3, "n_features": 4, **kwargs}
    with pytest.raises(PolicyConfigError, match=message):
        LinearThompson(**params)


def test_fit_checks_arm_count_and_dimension():
    policy = LinearThompson(2, 3)
    with pytest.raises(PolicyConfigError):
        policy.fit([LinearArmState.empty(3)], now=0.0)
    with pytest.raises(PolicyConfigError):
        policy.fit([LinearArmState.empty(3), LinearArmState.empty(4)], now=0.0)
    with pytest.raises(PolicyConfigError):
        policy.select(np.random.default_rng(0), np.ones(4))
    with pytest.raises(PolicyConfigError):
        policy.select(np.random.default_rng(0), np.array([1.0, np.nan, 0.0]))


def test_new_experiment_allocates_uniformly():
    policy = LinearThompson(4, 6)
    rng = np.random.default_rng(1)
    x = np.array([1.0, 1, 0, 0.5, -0.3, 0.9])
    mean_probs = np.mean([policy.select(rng, x).probabilities for _ in range(300)], axis=0)
    np.testing.assert_allclose(mean_probs, 0.25, atol=0.02)
    decision = policy.select(rng, x)
    np.testing.assert_array_equal(decision.scores, decision.scores[0])  # identical arms


# -- propensities ------------------------------------------------------------------------------
def exact_win_probabilities(mean: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """P(arm a has the largest of independent normals) by 1-D quadrature."""
    def integrand(z, a):
        others = [stats.norm.cdf(z, mean[b], sd[b]) for b in range(mean.size) if b != a]
        return stats.norm.pdf(z, mean[a], sd[a]) * np.prod(others)

    lo, hi = (mean - 8 * sd).min(), (mean + 8 * sd).max()
    return np.array([integrate.quad(integrand, lo, hi, args=(a,), limit=200)[0] for a in range(mean.size)])


def test_propensities_sum_to_one_and_match_selection_frequency():
    policy, xs = trained_policy(k=4, n=300)
    rng = np.random.default_rng(7)
    x = xs[0]
    n = 6000
    decisions = [policy.select(rng, x) for _ in range(n)]
    probabilities = np.array([d.probabilities for d in decisions])
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-12)
    for d in decisions[:50]:
        assert d.propensity == d.probabilities[d.arm] > 0
    counts = np.bincount([d.arm for d in decisions], minlength=4) / n
    expected = probabilities.mean(axis=0)
    assert np.all(np.abs(counts - expected) <= 4 * np.sqrt(expected * (1 - expected) / n) + 1e-3)
    # ... and the allocation is Thompson sampling's: P(arm is best) under the posterior,
    # up to the Monte-Carlo error of the fit's fixed 256 stratified draws.
    mean, sd = policy.predict(x)
    np.testing.assert_allclose(expected, exact_win_probabilities(mean, sd), atol=0.03)


def test_one_dimensional_predictive_equals_full_posterior_sampling():
    """Sampling x.theta from N(x.mu, s2 x'A^-1 x) is sampling theta from N(mu, s2 A^-1)."""
    policy, xs = trained_policy(k=3, n=200, exploration=1.0)  # the posterior itself, not shrunk
    x = xs[3]
    rng = np.random.default_rng(3)
    wins = np.zeros(3)
    n = 20000
    values = np.empty((n, 3))
    for arm, state in enumerate(policy.arm_states()):
        a = state.precision_increment + np.diag(policy.effective_prior_precision())
        cov = policy._noise_variance * np.linalg.inv(a)  # reference only: small, well conditioned
        thetas = rng.multivariate_normal(policy.posterior_means()[arm], cov, size=n)
        values[:, arm] = thetas @ x
    wins = np.bincount(values.argmax(axis=1), minlength=3) / n
    mean, sd = policy.predict(x)
    np.testing.assert_allclose(values.mean(axis=0), mean, atol=4 * sd.max() / np.sqrt(n) * 3)
    np.testing.assert_allclose(values.std(axis=0), sd, rtol=0.03)
    np.testing.assert_allclose(wins, exact_win_probabilities(mean, sd), atol=0.015)


def test_min_share_floor_and_sampled_values_exposed():
    policy, xs = trained_policy(k=3, n=2000, min_share=0.05)
    decision = policy.select(np.random.default_rng(0), xs[0])
    assert decision.probabilities.min() >= 0.05 - 1e-12
    samples = policy.allocation(None, xs[0])[3]
    assert samples.shape == (258, 3)  # 256 draws rounded up to a multiple of the 3 arms
    np.testing.assert_array_equal(np.bincount(samples.argmax(axis=1), minlength=3) / 258 * 0.85 + 0.05,
                                  decision.probabilities)
    assert decision.predictive_sd.shape == (3,) and np.all(decision.predictive_sd > 0)
    np.testing.assert_allclose(decision.scores, policy.predict(xs[0])[0])


# -- storage -------------------------------------------------------------------------------------
def test_bytes_round_trip_is_exact_and_compact():
    policy, _ = trained_policy(d=7)
    for state in policy.arm_states():
        blob = state.to_bytes()
        assert len(blob) == 8 + 8 * (2 + 7 + 28)
        again = LinearArmState.from_bytes(blob)
        np.testing.assert_array_equal(again.precision_increment, state.precision_increment)
        np.testing.assert_array_equal(again.target, state.target)
        assert (again.decisions, again.reference_time) == (state.decisions, state.reference_time)


@pytest.mark.parametrize("blob", [b"", b"LAS1", b"XXXX" + bytes(60), LinearArmState.empty(3).to_bytes()[:-1]])
def test_bad_blobs_rejected(blob):
    with pytest.raises(PolicyConfigError):
        LinearArmState.from_bytes(blob)


def test_state_rejects_nan_and_bad_shapes():
    with pytest.raises(PolicyConfigError):
        LinearArmState(np.full((2, 2), np.nan), np.zeros(2))
    with pytest.raises(PolicyConfigError):
        LinearArmState(np.zeros((2, 3)), np.zeros(2))
    state = LinearArmState.empty(2)
    with pytest.raises(ValueError):
        state.target[0] = 1.0  # read-only: updates return new states


def decisions_of(policy: LinearThompson, xs: np.ndarray, seed: int) -> list[tuple[int, float]]:
    rng = np.random.default_rng(seed)
    return [(d.arm, d.propensity) for d in (policy.select(rng, x) for x in xs)]


def test_state_round_trips_give_identical_decisions():
    policy, xs = trained_policy(seed=4, half_life_s=3600.0, min_share=0.01)
    reference = decisions_of(policy, xs[:200], seed=11)

    via_json = LinearThompson.from_state(json.loads(json.dumps(policy.state())))
    assert decisions_of(via_json, xs[:200], seed=11) == reference

    blobs = [s.to_bytes() for s in policy.arm_states()]
    via_bytes = LinearThompson(**{"n_arms": 3, **policy.params()}).fit(
        [LinearArmState.from_bytes(b) for b in blobs], now=policy.state()["now"]
    )
    assert decisions_of(via_bytes, xs[:200], seed=11) == reference


# -- delayed rewards and decay ---------------------------------------------------------------------
@pytest.mark.parametrize("half_life", [None, 600.0])
def test_delayed_rewards_equal_immediate_updates(half_life):
    rng = np.random.default_rng(5)
    d, n = 4, 300
    xs = np.column_stack([np.ones(n), rng.random((n, d - 1))])
    times = np.sort(rng.uniform(0, 3000, n))
    rewards = (rng.random(n) < 0.3).astype(float)

    immediate = LinearArmState.empty(d)
    for x, t, y in zip(xs, times, rewards):
        immediate = add_reward(add_decision(immediate, x, t, half_life), x, y, t, t, half_life)

    delayed = LinearArmState.empty(d)
    for x, t in zip(xs, times):  # every decision is counted when it is made ...
        delayed = add_decision(delayed, x, t, half_life)
    arrivals = times + rng.uniform(0, 900, n)
    for i in np.argsort(arrivals):  # ... its conversion arrives later, in any order
        delayed = add_reward(delayed, xs[i], rewards[i], times[i], arrivals[i], half_life)

    now = arrivals.max() + 1.0
    a, b = decay_to(immediate, now, half_life), decay_to(delayed, now, half_life)
    np.testing.assert_allclose(a.precision_increment, b.precision_increment, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(a.target, b.target, rtol=1e-10, atol=1e-12)
    assert a.decisions == pytest.approx(b.decisions, rel=1e-12)
    pa = LinearThompson(1, d, half_life_s=half_life).fit([a], now)
    pb = LinearThompson(1, d, half_life_s=half_life).fit([b], now)
    np.testing.assert_allclose(pa.posterior_means(), pb.posterior_means(), rtol=1e-9)


def test_pending_decisions_pull_the_estimate_down():
    """A served decision without a reward yet counts as 0 (the service's reward window)."""
    x = np.array([1.0, 0.0])
    state = LinearArmState.empty(2)
    for _ in range(50):
        state = add_reward(add_decision(state, x, 0.0), x, 1.0, 0.0, 0.0)
    before = LinearThompson(1, 2, pool_prior=False, prior_mean=0.0).fit([state], 0.0).predict(x)[0][0]
    for _ in range(50):
        state = add_decision(state, x, 0.0)
    after = LinearThompson(1, 2, pool_prior=False, prior_mean=0.0).fit([state], 0.0).predict(x)[0][0]
    assert before == pytest.approx(50 / 51) and after == pytest.approx(50 / 101)


def test_decay_halves_weights_per_half_life():
    x = np.array([1.0, 2.0])
    state = add_decision(LinearArmState.empty(2), x, 100.0, half_life=50.0)
    later = decay_to(state, 200.0, 50.0)
    np.testing.assert_allclose(later.precision_increment, np.outer(x, x) / 4)
    assert later.decisions == pytest.approx(0.25) and later.reference_time == 200.0
    # an event older than the state enters with its age's weight
    old = add_decision(LinearArmState.empty(2, reference_time=150.0), x, 100.0, half_life=50.0)
    assert old.decisions == pytest.approx(0.5)
    assert decay_to(state, 50.0, 50.0) is state  # never backwards
    assert decay_to(state, 1e12, 50.0).decisions == 0.0  # underflows to zero, no error


def test_decay_follows_a_drift():
    x = np.array([1.0])
    rates_before, rates_after = [0.10, 0.02], [0.02, 0.10]
    preferred = {}
    for half_life in (None, 3600.0):
        rng = np.random.default_rng(9)
        policy = LinearThompson(2, 1, half_life_s=half_life)
        t = 0.0
        for rates in (rates_before, rates_after):
            for _ in range(4000):
                t += 3.0
                arm = int(rng.integers(2))  # uniform logging: only the model is compared
                policy.update(arm, x, float(rng.random() < rates[arm]), t)
        preferred[half_life] = policy.predict(x)[0]
    assert preferred[None][0] > preferred[None][1] - 0.01  # still anchored in the past (both ~6%)
    assert preferred[3600.0][1] > preferred[3600.0][0] + 0.04  # has moved to the new best


# -- learning ----------------------------------------------------------------------------------------
def test_recovers_planted_context_dependent_best_variant():
    """Mobile converts best on b, desktop on a; the policy must serve them accordingly."""
    policy = ContextualPolicy.from_definition({"variants": ["a", "b", "c"], "context": DEVICE_SCHEMA})
    rates = {"mobile": {"a": 0.03, "b": 0.09, "c": 0.04}, "desktop": {"a": 0.10, "b": 0.03, "c": 0.05}}
    rng = np.random.default_rng(2024)
    served = {"mobile": [], "desktop": []}
    for step in range(6000):
        device = "mobile" if rng.random() < 0.6 else "desktop"
        context = {"device": device, "hour": int(rng.integers(24))}
        chosen = policy.select(context, rng)
        reward = float(rng.random() < rates[device][chosen.variant])
        policy.update(chosen.variant, context, reward, t=float(step))
        served[device].append(chosen.variant)
    assert served["mobile"][-1000:].count("b") / 1000 > 0.75
    assert served["desktop"][-600:].count("a") / 600 > 0.75
    for device, best in (("mobile", "b"), ("desktop", "a")):
        x = policy.encoder.encode({"device": device, "hour": 12}).vector
        assert policy.variants[int(np.argmax(policy.policy.predict(x)[0]))] == best


def test_pooled_prior_behaves_like_a_non_contextual_bandit_at_start():
    """With little data, an arm predicts the experiment's base rate, not zero."""
    policy = LinearThompson(3, 4)
    x = np.array([1.0, 1.0, 0.0, 0.3])
    rng = np.random.default_rng(0)
    for _ in range(300):
        policy.update(int(rng.integers(2)), x, float(rng.random() < 0.05))  # arm 2 never served
    mean, _ = policy.predict(x)
    pooled = policy._prior_mean_vector @ x
    assert mean[2] == pytest.approx(pooled)
    assert 0.0 < pooled < 0.15


# -- numerical stability -----------------------------------------------------------------------------
def test_collinear_constant_and_zero_features_are_stable():
    rng = np.random.default_rng(0)
    d = 6
    policy = LinearThompson(3, d)
    for _ in range(3000):
        u = rng.random()
        x = np.array([1.0, 1.0, u, 2 * u, 0.0, 1e-9 * u])  # constant, duplicated, zero, tiny columns
        arm = int(rng.integers(3))
        policy.update(arm, x, float(rng.random() < 0.05 + 0.05 * arm))
    x = np.array([1.0, 1.0, 0.5, 1.0, 0.0, 5e-10])
    mean, sd = policy.predict(x)
    assert np.isfinite(mean).all() and np.isfinite(sd).all() and np.all(sd > 0)
    decision = policy.select(np.random.default_rng(1), x)
    assert np.isclose(decision.probabilities.sum(), 1.0)
    assert mean[2] > mean[0]


def test_huge_counts_stay_finite():
    x = np.array([1.0, 1.0, 0.0])
    big = LinearArmState(np.outer(x, x) * 1e12, x * 1e10, 1e12, 0.0)
    policy = LinearThompson(2, 3).fit([big, LinearArmState.empty(3)], now=0.0)
    mean, sd = policy.predict(x)
    assert np.isfinite(mean).all() and np.all(sd >= 0)
    assert mean[0] == pytest.approx(0.01, rel=1e-6)
    assert np.isclose(policy.select(np.random.default_rng(0), x).probabilities.sum(), 1.0)


# -- ContextualPolicy ----------------------------------------------------------------------------------
def test_contextual_policy_from_definition_and_state():
    definition = {
        "variants": [{"name": "a"}, {"name": "b"}],
        "context": DEVICE_SCHEMA,
        "min_share": 0.05,
        "decay": {"half_life_s": 86400},
    }
    policy = ContextualPolicy.from_definition(definition)
    assert policy.policy.min_share == 0.05 and policy.policy.half_life_s == 86400.0
    rng = np.random.default_rng(0)
    for step in range(50):
        chosen = policy.select({"device": "mobile", "extra": 1}, rng)
        assert chosen.variant in ("a", "b") and chosen.encoded.unknown_keys == ("extra",)
        policy.update(chosen.variant, {"device": "mobile"}, 1.0 if chosen.variant == "b" else 0.0, t=float(step))
    restored = ContextualPolicy.from_state(json.loads(json.dumps(policy.state())))
    a = [policy.select({"device": "desktop"}, np.random.default_rng(5)).decision.propensity for _ in range(3)]
    b = [restored.select({"device": "desktop"}, np.random.default_rng(5)).decision.propensity for _ in range(3)]
    assert a == b
    assert "linear_thompson" in CONTEXTUAL_POLICIES


@pytest.mark.parametrize(
    "definition, message",
    [
        ({"variants": [], "context": []}, "variants"),
        ({"variants": ["a", "a"], "context": []}, "unique"),
        ({"variants": ["a", "b"], "context": [{"name": "x", "type": "nope"}]}, "'x': unknown type"),
        ({"variants": ["a", "b"], "context": [], "policy": "ucb"}, "unknown contextual policy"),
        ({"variants": ["a", "b"], "context": [], "min_share": 0.9}, "min_share"),
        ({"variants": ["a", "b"], "context": [], "decay": {"half_life_s": -1}}, "half_life_s"),
        ({"variants": ["a", "b"], "context": [], "params": {"bogus": 1}}, "bad policy parameters"),
    ],
)
def test_bad_definitions_rejected(definition, message):
    with pytest.raises(PolicyConfigError, match=message):
        ContextualPolicy.from_definition(definition)


def test_adaptive_prior_frees_interacting_features_and_pins_irrelevant_ones():
    """Empirical Bayes: a feature that changes the best arm gets a weak prior, noise a strong one."""
    rng = np.random.default_rng(8)
    policy = LinearThompson(3, 5)
    rates = np.array([[0.02, 0.10], [0.10, 0.02], [0.05, 0.05]])  # arm x device
    for _ in range(6000):
        device = int(rng.integers(2))
        x = np.array([1.0, device == 0, device == 1, rng.random(), rng.random() < 0.5], dtype=float)
        arm = int(rng.integers(3))
        policy.update(arm, x, float(rng.random() < rates[arm, device]))
    precision = policy.effective_prior_precision()
    assert precision[0] == policy.intercept_precision
    assert np.all(precision[1:3] < 20)  # device: the arms differ, little shrinkage
    assert np.all(precision[3:] > 200)  # irrelevant columns: (nearly) the shared pooled coefficient
    fixed = LinearThompson(3, 5, adaptive_prior=False).fit(policy.arm_states(), now=0.0)
    np.testing.assert_array_equal(fixed.effective_prior_precision(), [1.0, 4.0, 4.0, 4.0, 4.0])
