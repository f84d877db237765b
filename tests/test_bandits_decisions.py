"""The decision path: deterministic allocation per fitted model, exact propensities,
the pending-reward correction, and non-finite inputs that never break a decision."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

from bandits import ContextEncoder, LinearArmState, LinearThompson, PolicyConfigError, add_decision, add_reward
from bandits.arm_state import MAX_ABS_REWARD, clamp_reward, decay_to, load_arm_state, remove_decision
from bandits.linear import REASON_NON_FINITE_FIT
from tests.test_bandits_contextual import exact_win_probabilities


def trained(k=4, d=5, n=400, seed=0, **params):
    rng = np.random.default_rng(seed)
    states = [LinearArmState.empty(d) for _ in range(k)]
    xs = np.column_stack([np.ones(n), (rng.random((n, d - 1)) < 0.5).astype(float)])
    for i, x in enumerate(xs):
        arm = i % k
        p = 0.05 + 0.04 * arm * x[1] + 0.03 * x[2]
        states[arm] = add_reward(add_decision(states[arm], x, float(i)), x, float(rng.random() < p), i, i)
    return LinearThompson(k, d, **params).fit(states, now=float(n)), states, xs


def test_allocation_is_deterministic_per_fitted_model():
    policy, states, xs = trained()
    other_worker = LinearThompson(4, 5).fit(states, now=400.0)
    for x in xs[:20]:
        np.testing.assert_array_equal(policy.allocation_for(x), other_worker.allocation_for(x))
    # whatever generator a request brings, the propensity of a given arm is the same number
    a = policy.select(np.random.default_rng(1), xs[0])
    b = other_worker.select(np.random.default_rng(99), xs[0])
    np.testing.assert_array_equal(a.probabilities, b.probabilities)
    # new statistics: a new model version, new draws
    moved = [add_decision(states[0], xs[0], 401.0)] + states[1:]
    assert not np.array_equal(LinearThompson(4, 5).fit(moved, 401.0)._decision_matrices()[1], policy._decision_matrices()[1])


def test_empirical_frequencies_match_reported_propensities():
    policy, _, xs = trained(min_share=0.02)
    x = xs[3]
    rng = np.random.default_rng(7)
    n = 20000
    decisions = [policy.select(rng, x) for _ in range(n)]
    p = decisions[0].probabilities
    assert all(d.propensity == p[d.arm] for d in decisions)
    assert p.sum() == pytest.approx(1.0, abs=1e-12) and p.min() >= 0.02 - 1e-12
    counts = np.bincount([d.arm for d in decisions], minlength=4) / n
    np.testing.assert_allclose(counts, p, atol=4 * np.sqrt(p * (1 - p) / n).max())
    # the memoised allocation is the computed one
    policy._cache.clear()
    np.testing.assert_array_equal(policy.allocation_for(x), p)


def test_allocation_is_thompson_sampling_within_monte_carlo_error():
    policy, _, xs = trained()
    for x in xs[:3]:
        mean, sd = policy.predict(x)
        np.testing.assert_allclose(policy.allocation_for(x), exact_win_probabilities(mean, sd), atol=0.05)


def test_identical_arms_get_exactly_equal_shares():
    for k in (2, 3, 4, 7, 10):
        policy = LinearThompson(k, 6, min_share=0.01)
        np.testing.assert_allclose(policy.allocation_for(np.ones(6)), np.full(k, 1.0 / k), atol=1e-12)


def test_exploration_scales_the_predictive_spread():
    policy, states, xs = trained()
    policy = LinearThompson(4, 5, exploration=1.0).fit(states, now=400.0)
    narrow = LinearThompson(4, 5, exploration=0.5).fit(states, now=400.0)
    np.testing.assert_allclose(narrow.predict(xs[0])[1], 0.5 * policy.predict(xs[0])[1], rtol=1e-9)
    np.testing.assert_allclose(narrow.predict(xs[0])[0], policy.predict(xs[0])[0], rtol=1e-9)


# -- pending rewards ------------------------------------------------------------------------
def test_pending_correction_removes_the_delay_bias():
    """One arm, rate 5%, delays exponential with mean 60 s, 10 decisions/s: clicks / n is
    biased low by the share still in flight; clicks / exposure is not."""
    rng = np.random.default_rng(3)
    tau, rate, n, p = 60.0, 10.0, 3000, 0.05
    state = LinearArmState.empty(1, reward_delay_s=tau)
    arrivals = []
    for i in range(n):
        t = i / rate
        state = add_decision(state, np.ones(1), t)
        if rng.random() < p:
            arrivals.append(t + rng.exponential(tau))
    now = n / rate
    for t_arrival in sorted(a for a in arrivals if a <= now):
        state = add_reward(state, np.ones(1), 1.0, 0.0, t_arrival)
    state = decay_to(state, now, None)
    naive = state.target[0] / state.precision_increment[0, 0]
    corrected = state.target[0] / state.exposure()[0, 0]
    in_flight = tau / (n / rate)  # expected share of exposure still pending: about 1 - e^-(age/tau) averaged
    assert naive == pytest.approx(p * (1 - in_flight), abs=0.008)
    assert corrected == pytest.approx(p, abs=0.008)
    assert abs(corrected - p) < abs(naive - p)


def test_pending_state_round_trips_and_erasure_is_exact():
    rng = np.random.default_rng(5)
    state = LinearArmState.empty(4, reward_delay_s=30.0)
    xs = np.column_stack([np.ones(50), rng.random((50, 3))])
    for i, x in enumerate(xs):
        state = add_decision(state, x, float(i), half_life=500.0)
    blob = state.to_bytes()
    assert blob[:4] == b"LAS2"
    restored = LinearArmState.from_bytes(blob)
    np.testing.assert_array_equal(restored.pending, state.pending)
    assert restored.reward_delay_s == 30.0
    assert LinearArmState.from_dict(state.to_dict()).reward_delay_s == 30.0
    without = LinearArmState.empty(4, reward_delay_s=30.0)
    for i, x in enumerate(xs):
        if i != 17:
            without = add_decision(without, x, float(i), half_life=500.0)
    erased = remove_decision(state, xs[17], 17.0, 0.0, half_life=500.0)
    np.testing.assert_allclose(erased.pending, without.pending, atol=1e-12)
    np.testing.assert_allclose(erased.precision_increment, without.precision_increment, atol=1e-12)
    # a policy fitted on pending states uses the exposure
    policy = LinearThompson(1, 4).fit([state], now=50.0)
    assert np.isfinite(policy.allocation_for(xs[0])).all()


# -- defence in depth -----------------------------------------------------------------------
def test_clamp_reward_reasons():
    assert clamp_reward(1.0) == (1.0, None)
    assert clamp_reward(1e308) == (MAX_ABS_REWARD, "reward_clamped")
    assert clamp_reward(-math.inf) == (-MAX_ABS_REWARD, "reward_clamped")
    assert clamp_reward(math.nan) == (None, "reward_not_finite")
    assert clamp_reward("x") == (None, "reward_not_finite")
    with pytest.raises(PolicyConfigError, match="reward_not_finite"):
        add_reward(LinearArmState.empty(2), np.ones(2), math.nan, 0.0, 1.0)


def test_load_arm_state_never_raises():
    good = LinearArmState.empty(3).to_bytes()
    assert load_arm_state(good, 3)[1] is None
    assert load_arm_state(None, 3)[1] is None
    assert load_arm_state(good, 4)[1] == "arm_state_width_mismatch"
    assert load_arm_state(b"junk", 3)[1] == "unreadable_arm_state"
    nan_blob = good[:8] + np.array([math.nan], "<f8").tobytes() + good[16:]
    state, reason = load_arm_state(nan_blob, 3, reward_delay_s=10.0)
    assert reason == "unreadable_arm_state" and state.dim == 3 and state.reward_delay_s == 10.0


def test_absurd_rewards_fall_back_to_the_prior_with_a_reason():
    x = np.ones(3)
    state = LinearArmState.empty(3)
    for i in range(20):
        state = add_reward(add_decision(state, x, float(i)), x, 1e308, float(i), float(i))
    assert np.isfinite(state.target).all()  # clamped, not overflowed
    huge = LinearArmState(state.precision_increment, state.target * 1e200, state.decisions, state.reference_time)
    policy = LinearThompson(2, 3).fit([huge, LinearArmState.empty(3)], now=20.0)
    assert policy.reason == REASON_NON_FINITE_FIT
    np.testing.assert_allclose(policy.allocation_for(x), [0.5, 0.5])


finite = hs.floats(min_value=-1e300, max_value=1e300, allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    diag=hs.lists(hs.floats(min_value=0, max_value=1e300), min_size=3, max_size=3),
    off=finite,
    target=hs.lists(finite, min_size=3, max_size=3),
    x=hs.lists(hs.floats(min_value=-1, max_value=1), min_size=2, max_size=2),
    min_share=hs.sampled_from([0.0, 0.05]),
)
def test_any_finite_statistics_give_a_finite_allocation_summing_to_one(diag, off, target, x, min_share):
    p = np.diag(diag)
    p[0, 1] = p[1, 0] = off  # possibly not positive semi-definite: corrupted, but finite
    states = [LinearArmState(p, np.array(target), 1.0, 0.0), LinearArmState.empty(3)]
    policy = LinearThompson(2, 3, min_share=min_share).fit(states, now=1.0)
    context = np.array([1.0, *x])
    decision = policy.select(np.random.default_rng(0), context)
    probabilities = decision.probabilities
    assert np.isfinite(probabilities).all() and probabilities.sum() == pytest.approx(1.0, abs=1e-9)
    assert probabilities.min() >= min_share - 1e-12
    assert math.isfinite(decision.propensity) and decision.propensity > 0
    mean, sd = policy.predict(context)
    assert np.isfinite(mean).all() and np.isfinite(sd).all()
    assert np.isfinite(policy.posterior_sd()).all() and np.isfinite(policy.posterior_means()).all()


@settings(max_examples=40, deadline=None)
@given(rewards=hs.lists(hs.one_of(finite, hs.just(math.inf), hs.just(-math.inf)), min_size=1, max_size=8))
def test_any_reward_sequence_keeps_the_state_usable(rewards):
    encoder = ContextEncoder.from_schema([{"name": "device", "type": "categorical", "levels": ["m", "d"]}])
    x = encoder.encode({"device": "m"}).vector
    state = LinearArmState.empty(encoder.width, reward_delay_s=60.0)
    for i, value in enumerate(rewards):
        state = add_decision(state, x, float(i))
        state = add_reward(state, x, value, float(i), float(i) + 0.5)
    policy = LinearThompson(2, encoder.width).fit([state, LinearArmState.empty(encoder.width)], now=10.0)
    p = policy.allocation_for(x)
    assert np.isfinite(p).all() and p.sum() == pytest.approx(1.0)
