"""The row mapping and counter arithmetic both storage backends share (app/storage/records.py)."""
from __future__ import annotations

import json
import math

import pytest

from app.domain.experiments import ExperimentSpec, Variant
from app.storage import records
from app.storage.base import COUNTER_COLUMNS, NewAssignment


def _sum(*vectors):
    return [math.fsum(column) for column in zip(*vectors)]


def _arm(increments, arm_id):
    return dict(increments)[arm_id]


PROBABILITIES = {11: 0.25, 12: 0.75}


def test_a_decision_counts_the_served_arm_and_every_arms_expected_count():
    increments = records.decision_increments(12, PROBABILITIES, 0.75, 0.0, 0, sign=1)
    assert [arm for arm, _ in increments] == [11, 12]
    served = dict(zip(COUNTER_COLUMNS, _arm(increments, 12)))
    other = dict(zip(COUNTER_COLUMNS, _arm(increments, 11)))
    assert served["assignments"] == 1 and served["expected_assignments"] == 0.75
    assert served["inv_propensity_sum"] == pytest.approx(4 / 3)
    assert other["assignments"] == 0 and other["expected_assignments"] == 0.25
    assert all(v == 0 for c, v in other.items() if c != "expected_assignments")


@pytest.mark.parametrize("rewards", [[1.0], [2.5, -1.0, 4.0], [0.0, 0.0]])
def test_decision_plus_rewards_is_what_an_erasure_takes_out(rewards):
    """The counters written one event at a time equal the counters of the final outcome,
    which is what erase_visitor subtracts: an erased visitor leaves no trace."""
    added = [_arm(records.decision_increments(11, PROBABILITIES, 0.25, 0.0, 0, sign=1), 11)]
    segments = [records.NEW_DECISION_SEGMENT_VALUES]
    total, count = 0.0, 0
    for value in rewards:
        arm, segment = records.reward_increments(total, count, value, 0.25)
        added.append(arm)
        segments.append(segment)
        total, count = total + value, count + 1
    removed = _arm(records.decision_increments(11, PROBABILITIES, 0.25, total, count, sign=-1), 11)
    assert _sum(*added, removed) == pytest.approx([0.0] * len(COUNTER_COLUMNS), abs=1e-9)
    assert _sum(*segments, records.erased_segment_values(total, count)) == pytest.approx([0.0] * 4, abs=1e-9)


def test_a_second_reward_does_not_count_a_second_conversion():
    first, _ = records.reward_increments(0.0, 0, 1.0, 0.5)
    second, second_segment = records.reward_increments(1.0, 1, 1.0, 0.5)
    conversions = COUNTER_COLUMNS.index("conversions")
    assert (first[conversions], second[conversions], second_segment[1]) == (1, 0, 0)


def test_assignment_values_and_the_stored_record_round_trip():
    item = NewAssignment(experiment_id=3, variant_id=12, visitor="v", sticky=True, context={"b": 1, "a": "x"},
                         propensity=0.75, probabilities=PROBABILITIES, holdout=False, model_version=7,
                         created_at=100.0, segments={"country": "de"})
    values = dict(zip(records.ASSIGNMENT_INSERT_COLUMNS.split(", "), records.assignment_values(item)))
    assert values["sticky_key"] == "v" and values["holdout"] == 0
    assert values["context"] == '{"a":"x","b":1}'
    assert records.parse_probabilities(values["probabilities"]) == PROBABILITIES
    assert json.loads(values["segments"]) == {"country": "de"}
    row = (41, 3, 12, "v", values["context"], 0.75, 0, 7, 100.0, 0.0, 0)
    assert records.assignment(row) == records.new_assignment(item, 41)
    assert records.assignment(row, existing=True).existing


def test_experiments_from_rows_group_variants_in_order():
    spec = ExperimentSpec(key="k", name="K", mode="ab", reward="binary", control="a",
                          variants=(Variant("a", {"x": 1}), Variant("b", {})), weights=(0.25, 0.75))
    values = records.experiment_values(spec, 5.0)
    row = (9, *values[:11], "running", None, *values[11:], '["b"]')  # ... stopped_variants
    variant_rows = [(9, 100 + position, key, payload, weight)
                    for _id, key, position, payload, weight in records.variant_values(9, spec)]
    [experiment] = records.experiments([row], variant_rows)
    assert (experiment.id, experiment.key, experiment.weights) == (9, "k", (0.25, 0.75))
    assert experiment.stopped_variants == ("b",)
    assert [(v.id, v.key, dict(v.payload)) for v in experiment.variants] == [(100, "a", {"x": 1}), (101, "b", {})]
    assert records.experiments([], []) == []


def test_visitor_events_attach_rewards_to_their_assignment():
    rows = [(1, "e", "a", '{"k": 1}', 0.5, 1, 2, 10.0, 3.0, 2), (2, "e", "b", "{}", 0.5, 0, 3, 11.0, 0.0, 0)]
    rewards = [(1, 1.0, None, 12.0), (1, 2.0, "x", 13.0)]
    first, second = records.visitor_events(rows, rewards)
    assert first["context"] == {"k": 1} and first["holdout"] is True
    assert [r["value"] for r in first["rewards"]] == [1.0, 2.0] and second["rewards"] == []


def test_erasures_take_out_the_final_outcome_and_ask_for_the_model_update_lazily():
    row = (41, 3, 11, 1, 7300.0, 0.25, '{"11":0.25,"12":0.75}', 2.0, 1, '{"country":"de"}', '{"k":1}')
    [erased] = records.erasures([row])
    assert (erased.assignment_id, erased.experiment_id, erased.holdout, erased.period) == (41, 3, 1, 7200)
    assert erased.arms == records.decision_increments(11, PROBABILITIES, 0.25, 2.0, 1, sign=-1)
    assert erased.segments == {"country": "de"} and erased.segment_values == (-1, -1, -2.0, -4.0)
    assert erased.model_update(None) is None
    calls = []
    assert erased.model_update(lambda *args: calls.append(args) or "update") == "update"
    assert calls == [(3, {"k": 1}, 7300.0, 2.0)]
    [no_segments] = records.erasures([row[:9] + (None,) + row[10:]])
    assert no_segments.segments == {}


def test_events_page_by_id_until_an_empty_batch():
    table = [(i, "v", "a", "{}", 0.5, 0, 1, float(i), 0.0, 0, 11, "{}") for i in (2, 5, 9)]
    asked = []

    def fetch(after_id):
        asked.append(after_id)
        return [row for row in table if row[0] > after_id][:2]

    assert [e["id"] for e in records.events(fetch)] == [2, 5, 9]
    assert asked == [0, 5, 9]
