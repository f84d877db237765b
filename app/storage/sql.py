"""What both SQL backends do the same way, written once.

``SqlStorage`` implements the read paths of the interface in portable SQL with ``?``
placeholders; a backend supplies ``_read`` (one statement → rows, translating the
placeholders where its driver wants ``%s``), ``_read_together`` (several statements in
one read transaction, so they see one state), ``_transact`` (one write transaction
through a ``Tx``) and ``_counters_current`` (SQLite folds pending decisions into the
counters there; PostgreSQL keeps them current on write).

New features write their SQL once against ``Tx`` (portable SQL: ``?`` placeholders,
``ON CONFLICT … DO …`` upserts, no backend-only functions) in a mixin module of this
package, and both backends inherit it.
"""
from __future__ import annotations

import abc
import json
import time
from typing import Any, Callable, Protocol, Sequence, TypeVar

T = TypeVar("T")


class Rows(Protocol):
    """What a statement returns: the DB-API cursor subset both drivers share."""

    rowcount: int

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Tx(abc.ABC):
    """One write transaction, the same for both backends (``?`` placeholders)."""

    @abc.abstractmethod
    def execute(self, sql: str, params: Sequence[Any] = ()) -> Rows: ...

    @abc.abstractmethod
    def insert(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one ``INSERT`` of a row into a table with an integer ``id`` and return the new id
        (on PostgreSQL it is also the proof, should the connection drop during COMMIT, that
        the transaction committed)."""

from ..domain.audit import AuditEntry
from ..domain.experiments import Experiment
from . import records
from .base import (
    ArmTotals,
    LearningSnapshot,
    SegmentTotals,
    Storage,
    StoredAssignment,
    TimeBucket,
)

Query = tuple[str, Sequence[Any]]


def _audit_json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


def write_audit(tx: Tx, entry: AuditEntry) -> int:
    """Append an audit entry inside ``tx`` (the transaction of the change it records); returns its id.

    ``Tx.insert``: on PostgreSQL the entry's row is then the witness that settles an ambiguous
    commit, so a change carrying an entry is never blindly retried (which would log it twice).
    """
    at = entry.at if entry.at is not None else time.time()
    return tx.insert(
        "INSERT INTO audit_log (at, actor, action, experiment_key, target, before_json, after_json) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (at, entry.actor, entry.action, entry.experiment_key, entry.target, _audit_json(entry.before),
         _audit_json(entry.after)),
    )


def maybe_audit(tx: Tx, entry: AuditEntry | None) -> None:
    if entry is not None:
        write_audit(tx, entry)


#: read with the rewarded assignment's row (``assignments`` in FROM): the experiment's stored shift
STORED_SHIFT_COLUMN = "(SELECT e.reward_shift FROM experiments e WHERE e.id = assignments.experiment_id)"


def reward_shift_for(tx: Tx, experiment_id: int, value: float, stored: float | None,
                     serialise: str | None = None) -> float:
    """K for a numeric reward of ``value`` being counted in ``tx`` (issue #16, ``base.ArmTotals``).

    A set K is final except for a rebuild of an experiment without one. NULL: when the
    experiment already has rewards (counted before schema v8 as raw sums) K is 0 and stays
    NULL, so ``rebuild-stats`` may still choose one; else this, its first reward, sets K =
    ``value``. ``serialise`` (PostgreSQL: a lock on arm_stats that a rebuild's lock excludes)
    runs before the NULL case is decided, so a concurrent rebuild that sets K cannot slip
    between this read and this reward's counter update. A concurrent first reward waits on
    the row lock of the UPDATE and then reads the winner's K. ``stored``: the shift as read with
    the assignment (``STORED_SHIFT_COLUMN``), so the common case costs no statement of its own.
    """
    if stored is not None:
        return float(stored)
    if serialise is not None:
        tx.execute(serialise)
        row = tx.execute("SELECT reward_shift FROM experiments WHERE id = ?", (experiment_id,)).fetchone()
        if row is not None and row[0] is not None:
            return float(row[0])
    if tx.execute("SELECT 1 FROM arm_stats WHERE experiment_id = ? AND reward_events != 0 LIMIT 1",
                  (experiment_id,)).fetchone() is not None:
        return 0.0
    tx.execute("UPDATE experiments SET reward_shift = ? WHERE id = ? AND reward_shift IS NULL", (value, experiment_id))
    row = tx.execute("SELECT reward_shift FROM experiments WHERE id = ?", (experiment_id,)).fetchone()
    return float(row[0]) if row is not None and row[0] is not None else 0.0


def rebuild_shift(tx: Tx, experiment: Experiment) -> float:
    """K for a rebuild of ``experiment``'s counters, stored: binary 0; numeric: the stored K, or
    when there is none (no reward yet, or rewards from before v8) the mean outcome of the
    rewarded assignments (NULL again when there are none)."""
    if experiment.reward == "binary":
        return 0.0
    row = tx.execute("SELECT reward_shift FROM experiments WHERE id = ?", (experiment.id,)).fetchone()
    if row is not None and row[0] is not None:
        return float(row[0])
    mean = tx.execute("SELECT AVG(reward_total) FROM assignments WHERE experiment_id = ? AND reward_count > 0",
                      (experiment.id,)).fetchone()[0]
    tx.execute("UPDATE experiments SET reward_shift = ? WHERE id = ?", (mean, experiment.id))
    return float(mean) if mean is not None else 0.0


class SqlStorage(Storage):
    @abc.abstractmethod
    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        """Rows of one statement written with ``?`` placeholders."""

    @abc.abstractmethod
    def _read_together(self, queries: Sequence[Query]) -> list[list[tuple]]:
        """Rows of each statement, all read in one transaction."""

    @abc.abstractmethod
    def _transact(self, body: Callable[[Tx], T], *, idempotent: bool = False) -> T:
        """Run ``body`` as one write transaction; a raise rolls everything back. ``idempotent``: a
        retry after an ambiguous commit cannot double anything (else PostgreSQL settles it by the
        id of a row ``body`` inserted, or answers ``StorageOutcomeUnknown``)."""

    def _counters_current(self) -> None:
        """Called before any read of the counters (default: they always are)."""

    @abc.abstractmethod
    def _experiments(self, where: str, params: Sequence[Any]) -> list[Experiment]: ...

    # -- settings kept in the database ---------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        rows = self._read("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    def set_meta_default(self, key: str, value: str) -> str:
        def body(tx: Tx) -> str:
            tx.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING", (key, value))
            return tx.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()[0]

        return self._transact(body, idempotent=True)

    # -- experiments -------------------------------------------------------------------
    def set_status(self, key: str, status: str, winner: str | None, now: float,
                   audit: AuditEntry | None = None) -> Experiment | None:
        def body(tx: Tx) -> int:
            changed = tx.execute("UPDATE experiments SET status = ?, winner = ?, updated_at = ? WHERE key = ?",
                                 (status, winner, now, key)).rowcount
            if changed:
                maybe_audit(tx, audit)
            return changed

        # with an entry, a retry after an ambiguous commit is settled by the entry's row instead
        if self._transact(body, idempotent=audit is None) == 0:
            return None
        return self.get_experiment(key)

    def get_experiment(self, key: str) -> Experiment | None:
        found = self._experiments("WHERE key = ?", (key,))
        return found[0] if found else None

    def list_experiments(self) -> list[Experiment]:
        return self._experiments("", ())

    # -- the event log -------------------------------------------------------------------
    def find_sticky_assignment(self, experiment_id: int, visitor: str) -> StoredAssignment | None:
        rows = self._read(
            f"SELECT {records.ASSIGNMENT_COLUMNS} FROM assignments WHERE experiment_id = ? AND sticky_key = ?",
            (experiment_id, visitor),
        )
        return records.assignment(rows[0], existing=True) if rows else None

    def get_assignment(self, assignment_id: int) -> StoredAssignment | None:
        rows = self._read(f"SELECT {records.ASSIGNMENT_COLUMNS} FROM assignments WHERE id = ?", (assignment_id,))
        return records.assignment(rows[0]) if rows else None

    def latest_assignment(self, experiment_id: int, visitor: str) -> StoredAssignment | None:
        rows = self._read(
            f"SELECT {records.ASSIGNMENT_COLUMNS} FROM assignments WHERE experiment_id = ? AND visitor = ? "
            "ORDER BY id DESC LIMIT 1", (experiment_id, visitor),
        )
        return records.assignment(rows[0]) if rows else None

    def recent_contexts(self, experiment_id: int, limit: int) -> list[dict[str, Any]]:
        """The logged (enriched) contexts of the experiment's newest ``limit`` assignments."""
        rows = self._read("SELECT context FROM assignments WHERE experiment_id = ? ORDER BY id DESC LIMIT ?",
                          (experiment_id, limit))
        return [json.loads(row[0]) for row in rows]

    def visit_count(self, visitor: str) -> int:
        return int(self._read("SELECT COUNT(*) FROM assignments WHERE visitor = ?", (visitor,))[0][0])

    # -- learning and analysis reads ---------------------------------------------------------
    def learning_snapshot(self, experiment_id: int) -> LearningSnapshot:
        self._counters_current()
        rows, states = self._read_together((
            (f"SELECT variant_id, holdout, {records.COUNTER_SUMS}, {records.REWARD_SHIFT_COLUMN} FROM arm_stats "
             "WHERE experiment_id = ? GROUP BY variant_id, holdout ORDER BY variant_id, holdout",
             (experiment_id, experiment_id)),
            ("SELECT variant_id, state FROM model_state WHERE experiment_id = ?", (experiment_id,)),
        ))
        return LearningSnapshot(totals=records.arm_totals(rows),
                                model_states={row[0]: bytes(row[1]) for row in states if row[1] is not None})

    def period_totals(self, experiment_id: int) -> list[tuple[int, tuple[ArmTotals, ...]]]:
        """Every counter per hour period, variant and slice (summed over shards), oldest period first:
        what the adaptive estimators weight period by period."""
        self._counters_current()
        rows = self._read(
            f"SELECT period, variant_id, holdout, {records.COUNTER_SUMS}, {records.REWARD_SHIFT_COLUMN} FROM arm_stats "
            "WHERE experiment_id = ? GROUP BY period, variant_id, holdout ORDER BY period, variant_id, holdout",
            (experiment_id, experiment_id)
        )
        by_period: dict[int, list[Sequence[Any]]] = {}
        for row in rows:
            by_period.setdefault(int(row[0]), []).append(row[1:])
        return [(period, records.arm_totals(cells)) for period, cells in by_period.items()]

    def segment_totals(self, experiment_id: int) -> list[SegmentTotals]:
        self._counters_current()
        rows = self._read(
            "SELECT feature, level, variant_id, holdout, SUM(assignments), SUM(conversions), SUM(reward_sum), "
            f"SUM(reward_sumsq), {records.REWARD_SHIFT_COLUMN} FROM segment_stats WHERE experiment_id = ? "
            "GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4", (experiment_id, experiment_id),
        )
        return records.segment_totals(rows)

    def time_series(self, experiment_id: int) -> list[TimeBucket]:
        self._counters_current()
        rows = self._read(
            f"SELECT period, variant_id, holdout, SUM(assignments), SUM(conversions), SUM(reward_sum), "
            f"{records.REWARD_SHIFT_COLUMN} FROM arm_stats WHERE experiment_id = ? GROUP BY 1, 2, 3 "
            "ORDER BY 1, 2, 3", (experiment_id, experiment_id),
        )
        return records.time_buckets(rows)

    # -- privacy -----------------------------------------------------------------------------
    def visitor_events(self, visitor: str) -> list[dict[str, Any]]:
        rows, rewards = self._read_together((
            (f"SELECT {records.VISITOR_COLUMNS} FROM assignments a JOIN experiments e ON e.id = a.experiment_id "
             "JOIN variants v ON v.id = a.variant_id WHERE a.visitor = ? ORDER BY a.id", (visitor,)),
            (f"SELECT {records.VISITOR_REWARD_COLUMNS} FROM rewards r "
             "JOIN assignments a ON a.id = r.assignment_id WHERE a.visitor = ? ORDER BY r.id", (visitor,)),
        ))
        return records.visitor_events(rows, rewards)
