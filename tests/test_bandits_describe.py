"""describe(): the learned structure of a contextual policy in plain data and words."""
from __future__ import annotations

import json

import numpy as np
import pytest

from bandits import ContextEncoder, LinearArmState, LinearThompson, add_decision, add_reward
from bandits.describe import REASON_NO_CONTEXTS, describe, segment_label
from bandits.linear import ContextualPolicy

SCHEMA = [
    {"name": "device", "type": "categorical", "levels": ["mobile", "desktop"]},
    {"name": "hour", "type": "cyclic", "period": 24},
    {"name": "returning", "type": "boolean"},
    {"name": "campaign", "type": "hashed", "buckets": 4},
]


def planted_policy(n=12000, seed=0):
    """Uniformly logged data: b is better for mobile visitors in the evening, a otherwise."""
    rng = np.random.default_rng(seed)
    encoder = ContextEncoder.from_schema(SCHEMA, crosses=[["device", "hour"]])
    states = [LinearArmState.empty(encoder.width) for _ in range(2)]
    contexts = []
    for i in range(n):
        context = {"device": ["mobile", "desktop"][rng.integers(2)], "hour": int(rng.integers(24)),
                   "returning": bool(rng.random() < 0.4), "campaign": f"c{rng.integers(9)}"}
        contexts.append(context)
        x = encoder.encode(context).vector
        arm = int(rng.integers(2))
        evening_mobile = context["device"] == "mobile" and context["hour"] >= 18
        p = 0.10 if arm == 0 else (0.16 if evening_mobile else 0.06)
        states[arm] = add_reward(add_decision(states[arm], x, float(i)), x, float(rng.random() < p), i, i)
    policy = LinearThompson(2, encoder.width, main_columns=encoder.main_width,
                            column_groups=encoder.column_groups()).fit(states, now=float(n))
    return policy, encoder, contexts


def test_learned_combination_is_named_in_words():
    policy, encoder, contexts = planted_policy()
    description = describe(policy, encoder, ["a", "b"], contexts[-2000:])
    assert description.reason is None and description.contexts == 2000
    top = description.combinations[0]
    assert top.segment == {"device": "mobile", "hour": "evening"}
    assert top.variant == "b" and top.versus == "a"
    # planted: 16% vs 10% = +6 pp for 18-23h; one daily sinusoid per device smooths the
    # step over the 6-hour segment, so the fitted average lift is smaller (measured 1.4 pp)
    assert 0.5 < top.lift_pp < 6.0
    assert top.text.startswith("mobile + evening → b (+") and "pp vs a" in top.text
    assert top.share > 0.5
    # nothing about desktop prefers b
    assert not any(c.segment.get("device") == "desktop" for c in description.combinations)
    allocation = description.average_allocation
    assert set(allocation) == {"a", "b"} and sum(allocation.values()) == pytest.approx(1.0)
    assert allocation["a"] > allocation["b"]


def test_coefficients_have_intervals_and_everything_is_json_safe():
    policy, encoder, contexts = planted_policy(n=3000)
    data = describe(policy, encoder, ["a", "b"], contexts[-300:]).to_dict()
    text = json.dumps(data, allow_nan=False)  # strict JSON: no NaN or Infinity anywhere
    assert json.loads(text)["policy"] == "linear_thompson"
    rows = data["coefficients"]["a"]
    assert [r["column"] for r in rows] == encoder.columns()
    assert all(r["low"] < r["mean"] < r["high"] for r in rows)
    intercept = rows[0]
    width = intercept["high"] - intercept["low"]
    sd = policy.posterior_sd()[0, 0]
    assert width == pytest.approx(2 * 1.959964 * sd, rel=1e-5)


def test_no_contexts_gives_a_reason_not_an_error():
    policy = LinearThompson(3, ContextEncoder.from_schema(SCHEMA).width)
    encoder = ContextEncoder.from_schema(SCHEMA)
    description = describe(policy, encoder, ["a", "b", "c"], [])
    assert description.reason == REASON_NO_CONTEXTS
    assert description.average_allocation is None and description.combinations == []
    json.dumps(description.to_dict(), allow_nan=False)
    # garbage contexts are encoded as missing, never an exception
    garbage = describe(policy, encoder, ["a", "b", "c"], [None, {"hour": float("nan")}, {"device": []}] * 10)
    assert garbage.contexts == 30 and sum(garbage.average_allocation.values()) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "spec, value, label",
    [
        ({"name": "hour", "type": "cyclic", "period": 24}, 20, "evening"),
        ({"name": "hour", "type": "cyclic", "period": 24}, 3, "night"),
        ({"name": "hour", "type": "cyclic", "period": 24}, None, "hour (missing)"),
        ({"name": "weekday", "type": "cyclic", "period": 7}, 6, "weekend"),
        ({"name": "returning", "type": "boolean"}, False, "not returning"),
        ({"name": "returning", "type": "boolean"}, True, "returning"),
        ({"name": "visits", "type": "numeric", "max": 20}, 15, "high visits"),
        ({"name": "device", "type": "categorical", "levels": ["mobile"]}, "tv", "(other)"),
        ({"name": "campaign", "type": "hashed", "buckets": 4}, "x", None),
    ],
)
def test_segment_labels(spec, value, label):
    feature = ContextEncoder.from_schema([spec]).features[0]
    assert segment_label(feature, value) == label


def test_contextual_policy_from_short_form_with_crosses_round_trips():
    policy = ContextualPolicy.from_definition(
        {"variants": ["a", "b"], "context": ["device", "hour", "returning"], "crosses": [["device", "hour"]]}
    )
    assert policy.encoder.crosses == (("device", "hour"),)
    assert policy.policy.main_columns == policy.encoder.main_width
    rng = np.random.default_rng(0)
    for _ in range(50):
        chosen = policy.select({"device": "mobile", "hour": 21}, rng)
        policy.update(chosen.variant, {"device": "mobile", "hour": 21}, 1.0 if chosen.variant == "b" else 0.0)
    restored = ContextualPolicy.from_state(policy.state())
    x = policy.encoder.encode({"device": "mobile", "hour": 21}).vector
    np.testing.assert_array_equal(restored.policy.allocation_for(x), policy.policy.allocation_for(x))
