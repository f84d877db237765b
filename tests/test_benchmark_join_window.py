"""The benchmark's join window: how a peer behind a service learns delayed clicks."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

from bandits_agents import _JoinWindow  # noqa: E402


def test_a_decision_is_released_once_at_the_end_of_its_window_with_the_click_only_if_reported_by_then():
    joins = _JoinWindow(90.0)
    joins.push(decided_at=0.0, delay=30.0, reward=1.0, item=("early",))  # reported in time
    joins.push(decided_at=5.0, delay=120.0, reward=1.0, item=("late",))  # reported after its window: lost
    joins.push(decided_at=10.0, delay=1.0, reward=0.0, item=("no click",))
    assert list(joins.due(89.9)) == []
    assert list(joins.due(90.0)) == [(1.0, "early")]
    assert list(joins.due(100.0)) == [(0.0, "late"), (0.0, "no click")]
    assert list(joins.due(1e9)) == []
