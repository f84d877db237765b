"""Property-based hostile input for the cores behind the service: the policy fit of every
non-contextual mode (allocation, posterior) and the statistics of the report, fed counters
with extreme, tiny, negative and non-finite sums (what a corrupted or legacy database could
hand over). They never raise, and what they emit is strict JSON: a finite allocation that
sums to 1, posterior numbers that are finite, statistics with reason codes instead of NaN.
"""
from __future__ import annotations

import dataclasses
import json
import math

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import stats
from stats.inputs import ExperimentAggregate, PeriodAggregate, SliceAggregate
from app.domain.experiments import Experiment, Variant, parse_experiment
from app.service.policy_cache import build_entry
from app.storage import ArmTotals, LearningSnapshot

CORES = settings(max_examples=100, deadline=None, derandomize=True, database=None,
                 suppress_health_check=[HealthCheck.too_slow])

sums = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(-1e12, 1e12),
                 st.sampled_from([0.0, -0.0, 5e-324, 1e308, -1e308, 1e100, 1e101, 1e-300]))
counts = st.one_of(st.integers(0, 10), st.integers(0, 10 ** 12))


def experiment(mode: str, reward: str) -> Experiment:
    body = {"key": "core", "mode": mode, "reward": reward, "variants": ["a", "b", "c"]}
    spec = parse_experiment(body)
    fields = {f.name: getattr(spec, f.name) for f in dataclasses.fields(spec)}
    fields["variants"] = tuple(Variant(key=v.key, payload=v.payload, id=i + 1) for i, v in enumerate(spec.variants))
    return Experiment(**fields, id=7)


@st.composite
def totals(draw) -> ArmTotals:
    """Counts as storage keeps them (conversions <= assignments, both >= 0); sums anything."""
    assignments = draw(counts)
    conversions = draw(st.integers(0, assignments))
    return ArmTotals(
        variant_id=draw(st.sampled_from([1, 2, 3])), holdout=draw(st.booleans()), assignments=assignments,
        conversions=conversions, reward_events=conversions + draw(st.integers(0, 3)),
        **{name: draw(sums) for name in ("reward_sum", "reward_sumsq", "expected_assignments", "inv_propensity_sum",
                                          "inv_propensity_sumsq", "ips_reward_sum", "ips_reward_sumsq",
                                          "ips_cross_sum")})


def strict(value) -> str:
    return json.dumps(value, allow_nan=False)


SLICE_FIELDS = {f.name for f in dataclasses.fields(SliceAggregate)} - {"variant"}
MODES = st.sampled_from([("bandit", "binary"), ("bandit", "numeric"), ("ab", "binary"), ("ab", "numeric")])


@CORES
@given(mode_reward=MODES, rows=st.lists(totals(), max_size=6), allocation=st.lists(sums, min_size=3, max_size=3))
def test_statistics_never_raise_or_emit_non_finite(mode_reward, rows, allocation):
    found = experiment(*mode_reward)
    keys = {v.id: v.key for v in found.variants}
    slices = tuple(SliceAggregate(variant=keys[t.variant_id], **{
        name: value for name, value in dataclasses.asdict(t).items() if name in SLICE_FIELDS}) for t in rows)
    aggregate = ExperimentAggregate(
        key=found.key, mode=found.mode, reward=found.reward, control=found.control, variants=found.variant_keys,
        slices=slices, weights=found.weights, holdout_share=found.holdout, current_allocation=tuple(allocation),
        seed=found.id, periods=(PeriodAggregate(0, slices), PeriodAggregate(3600, slices)),
    )
    strict(stats.analyse(aggregate).to_dict())


@settings(CORES)
@given(mode_reward=MODES, rows=st.lists(totals(), max_size=6))
def test_the_policy_never_raises_or_emits_non_finite(mode_reward, rows):
    found = experiment(*mode_reward)
    entry = build_entry(found, LearningSnapshot(totals=tuple(rows)), draws=200)
    allocation = entry.allocation
    assert allocation is not None and all(math.isfinite(p) and p >= 0 for p in allocation)
    assert math.isclose(sum(allocation), 1.0, rel_tol=1e-9)
    strict(entry.policy.describe(found, ()))  # what GET /policy shows (no contexts: non-contextual modes)
