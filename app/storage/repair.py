"""Repair of values older versions let into the event log (``flask repair-values``).

Before every value was bounded (LEVER_MAX_ABS_VALUE), a reward of 1e308 was stored as
sent and its square made the counters infinite. ``RepairStore.repair_values`` finds, in
one experiment, the rewards with |value| beyond a bound (NaN and infinities included:
PostgreSQL orders NaN above every number, and SQLite cannot store NaN in a NOT NULL REAL
column) and the assignments whose total no bounded rewards can sum to (|total| > count ×
bound), clamps each bad reward to ±bound or deletes it (NaN has no sign to clamp to: it is
always deleted), and recomputes the reward total and count of every assignment it touched
from its remaining rewards, all in one transaction. The caller then rebuilds the counters
from the repaired log (``rebuild_arm_stats``). Written once for both backends.
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from ..domain.audit import AuditEntry
from .sql import Query, Tx, maybe_audit

#: what ``repair_values`` does with a reward beyond the bound
ACTIONS = ("clamp", "exclude")
#: finite counters are at most this big: anything above (inf, and NaN on PostgreSQL) is not
_FLOAT_MAX = sys.float_info.max
_COUNTER_SUMS = ("reward_sum", "reward_sumsq", "ips_reward_sum", "ips_reward_sumsq", "ips_cross_sum")


@dataclass(frozen=True)
class BadValues:
    """What ``repair_values`` found in one experiment (and, unless a dry run, repaired)."""

    rewards: int  # rewards with |value| beyond the bound, non-finite ones included
    non_finite: int  # of those, NaN or infinite
    clamped: int
    excluded: int
    assignments: int  # assignments whose reward total and count are (to be) recomputed
    counter_rows: int  # arm_stats rows holding a non-finite sum (the rebuild replaces them)


def _queries(experiment_id: int, bound: float) -> Sequence[Query]:
    non_finite = " OR ".join(f"ABS({column}) > ?" for column in _COUNTER_SUMS)
    return (
        ("SELECT id, assignment_id, value FROM rewards WHERE experiment_id = ? AND ABS(value) > ? ORDER BY id",
         (experiment_id, bound)),
        ("SELECT id FROM assignments WHERE experiment_id = ? AND ABS(reward_total) > reward_count * ? ORDER BY id",
         (experiment_id, bound)),
        (f"SELECT COUNT(*) FROM arm_stats WHERE experiment_id = ? AND ({non_finite})",
         (experiment_id, *(_FLOAT_MAX for _ in _COUNTER_SUMS))),
    )


def _plan(action: str, rewards: Sequence[Sequence[Any]]) -> tuple[list[tuple[int, float]], list[int]]:
    """(reward id, clamped value) to update and reward ids to delete."""
    clamp, exclude = [], []
    for reward_id, _assignment_id, value in rewards:
        if action == "clamp" and not math.isnan(value):
            clamp.append((reward_id, value))
        else:
            exclude.append(reward_id)
    return clamp, exclude


def _found(action: str, rewards: Sequence[Sequence[Any]], totals: Sequence[Sequence[Any]],
           counter_rows: int) -> BadValues:
    clamp, exclude = _plan(action, rewards)
    assignments = {row[1] for row in rewards} | {row[0] for row in totals}
    return BadValues(rewards=len(rewards), non_finite=sum(not math.isfinite(row[2]) for row in rewards),
                     clamped=len(clamp), excluded=len(exclude), assignments=len(assignments),
                     counter_rows=int(counter_rows))


class RepairStore:
    """Mixin of ``SQLiteStorage`` and ``PostgresStorage``."""

    _transact: Callable[..., Any]
    _read_together: Callable[[Sequence[Query]], list[list[tuple]]]
    get_meta: Callable[[str], str | None]
    rebuild_arm_stats: Callable[..., None]

    def repair_values(self, experiment_id: int, bound: float, action: str, dry_run: bool = False,
                      audit: Callable[[BadValues], AuditEntry] | None = None) -> BadValues:
        """Clamp (``action`` "clamp") or delete ("exclude") the rewards of the experiment with
        |value| > ``bound`` and recompute the totals they and any impossible total belong to;
        with ``dry_run`` only count them. The counters are left to ``rebuild_arm_stats``. ``audit``
        makes the audit entry from what was found; it is written in the same transaction."""
        if action not in ACTIONS:
            raise ValueError(f"action must be one of {', '.join(ACTIONS)}")
        if dry_run:
            rewards, totals, counters = self._read_together(_queries(experiment_id, bound))
            return _found(action, rewards, totals, counters[0][0])

        def body(tx: Tx) -> BadValues:
            rewards, totals, counters = (tx.execute(sql, params).fetchall()
                                         for sql, params in _queries(experiment_id, bound))
            found = _found(action, rewards, totals, counters[0][0])
            clamp, exclude = _plan(action, rewards)
            for reward_id, value in clamp:
                tx.execute("UPDATE rewards SET value = ? WHERE id = ?", (math.copysign(bound, value), reward_id))
            for reward_id in exclude:
                tx.execute("DELETE FROM rewards WHERE id = ?", (reward_id,))
            for assignment_id in sorted({row[1] for row in rewards} | {row[0] for row in totals}):
                tx.execute(
                    "UPDATE assignments SET "
                    "reward_total = COALESCE((SELECT SUM(value) FROM rewards WHERE assignment_id = ?), 0), "
                    "reward_count = (SELECT COUNT(*) FROM rewards WHERE assignment_id = ?) WHERE id = ?",
                    (assignment_id, assignment_id, assignment_id),
                )
            maybe_audit(tx, audit(found) if audit is not None else None)
            return found

        return self._transact(body, idempotent=True)
