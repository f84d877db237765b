"""Stored reward counters → the engines' inputs (issue #16).

The counters keep their outcome sums over the *rewarded* assignments, of y - K with the
experiment's reward shift K (``storage.ArmTotals``); ``stats.welford`` turns them into sums
of y - K over every assignment, which add up across slices and hours like any other sum.
"""
from __future__ import annotations

from typing import Sequence

from bandits import ArmStatistics
from stats import SliceAggregate
from stats.welford import reshift, slice_from_counters

from ..storage import COUNTER_COLUMNS, ArmTotals, SegmentTotals


def counter_slice(key: str, totals: ArmTotals) -> SliceAggregate:
    """The engine's slice (outcome sums of y - K over every assignment, ``reward_shift`` K)."""
    counters = {name: getattr(totals, name) for name in COUNTER_COLUMNS}
    return slice_from_counters(key, totals.holdout, counters, totals.reward_shift)


def segment_slice(key: str, cell: SegmentTotals) -> SliceAggregate:
    counters = {"assignments": cell.assignments, "conversions": cell.conversions, "reward_sum": cell.reward_sum,
                "reward_sumsq": cell.reward_sumsq}
    return slice_from_counters(key, cell.holdout, counters, cell.reward_shift)


def snapshot_shift(totals: Sequence[ArmTotals]) -> float:
    """The experiment's reward shift K, read with its counters (0 without any)."""
    return totals[0].reward_shift if totals else 0.0


def arm_statistics(parts: Sequence[ArmTotals], shift: float) -> ArmStatistics:
    """One arm's outcome statistics over ``parts`` (its slices) for a bandit policy: sums of
    y - ``shift`` over every decision (``NormalThompson``'s empirical-Bayes posterior is
    shift-equivariant: fitted on y - K it is the posterior of y moved by K)."""
    merged = [reshift(counter_slice("", t), shift) for t in parts]
    return ArmStatistics(float(sum(s.assignments for s in merged)), float(sum(s.conversions for s in merged)),
                         float(sum(s.reward_sum for s in merged)), float(sum(s.reward_sumsq for s in merged)))
