"""PostgreSQL's counter writes: the increments of one transaction summed per row, written sharded
and in key order (see ``postgres`` on the lock order)."""
from __future__ import annotations

import functools
import random
from collections import defaultdict
from typing import Any, Mapping, Sequence

import psycopg

from . import records
from .base import COUNTER_COLUMNS

#: counter rows per (experiment, variant, slice); increments pick one at random
SHARDS = 8


@functools.lru_cache(maxsize=64)
def counter_increment_sql(rows: int) -> str:
    """Add to the counters of ``rows`` (experiment, variant, slice, period, shard) rows in one statement."""
    columns = ", ".join(COUNTER_COLUMNS)
    row = "(" + ", ".join("%s" for _ in range(5 + len(COUNTER_COLUMNS))) + ")"
    updates = ", ".join(f"{c} = arm_stats.{c} + excluded.{c}" for c in COUNTER_COLUMNS)
    return (
        f"INSERT INTO arm_stats (experiment_id, variant_id, holdout, period, shard, {columns}) "
        f"VALUES {', '.join(row for _ in range(rows))} "
        f"ON CONFLICT (experiment_id, variant_id, holdout, period, shard) DO UPDATE SET {updates}"
    )


_SEGMENT_COUNTERS = ("assignments", "conversions", "reward_sum", "reward_sumsq")


@functools.lru_cache(maxsize=64)
def _segment_increment_sql(rows: int) -> str:
    row = "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
    updates = ", ".join(f"{c} = segment_stats.{c} + excluded.{c}" for c in _SEGMENT_COUNTERS)
    return (
        "INSERT INTO segment_stats (experiment_id, feature, level, variant_id, holdout, shard, "
        f"{', '.join(_SEGMENT_COUNTERS)}) VALUES {', '.join(row for _ in range(rows))} "
        f"ON CONFLICT (experiment_id, feature, level, variant_id, holdout, shard) DO UPDATE SET {updates}"
    )


class Counters:
    """The counter increments of one transaction, summed per row and written in key order.

    PostgreSQL refuses one upsert that touches a row twice, and writing rows in one global
    order means two transactions can never wait for each other's rows crosswise.
    """

    def __init__(self) -> None:
        self.shard = random.randrange(SHARDS)  # one spread-out hot row per transaction
        self.arms: dict[tuple[int, int, int, int, int], list[float]] = defaultdict(
            lambda: [0.0] * len(COUNTER_COLUMNS))
        self.segments: dict[tuple[int, str, str, int, int, int], list[float]] = defaultdict(
            lambda: [0.0] * len(_SEGMENT_COUNTERS))

    def add_arm(self, experiment_id: int, variant_id: int, holdout: bool, period: int, values: Sequence[float]) -> None:
        row = self.arms[(experiment_id, variant_id, int(holdout), period, self.shard)]
        for position, value in enumerate(values):
            row[position] += value

    def add_arms(self, experiment_id: int, holdout: bool, period: int,
                 arms: Sequence[tuple[int, Sequence[float]]]) -> None:
        """Add (arm id, counter values) ``arms``, e.g. ``records.decision_increments``."""
        for arm_id, values in arms:
            self.add_arm(experiment_id, arm_id, holdout, period, values)

    def add_segments(self, experiment_id: int, variant_id: int, holdout: bool, segments: Mapping[str, str],
                     values: Sequence[float]) -> None:
        for feature, level in segments.items():
            row = self.segments[(experiment_id, feature, level, variant_id, int(holdout), self.shard)]
            for position, value in enumerate(values):
                row[position] += value

    def flush(self, conn: psycopg.Connection) -> None:
        if self.arms:
            params: list[Any] = []
            for key in sorted(self.arms):
                params.extend(key)
                params.extend(int(v) if c in records.INTEGER_COUNTERS else float(v)
                              for c, v in zip(COUNTER_COLUMNS, self.arms[key]))
            conn.execute(counter_increment_sql(len(self.arms)), params)
        if self.segments:
            params = []
            for key in sorted(self.segments):
                assignments, conversions, total, total_sq = self.segments[key]
                params.extend((*key, int(assignments), int(conversions), float(total), float(total_sq)))
            conn.execute(_segment_increment_sql(len(self.segments)), params)
        self.arms.clear()
        self.segments.clear()
