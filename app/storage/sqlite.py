"""SQLite backend: one file, WAL mode, decision counters folded in batches.

Counters: a reward updates its counters in its own transaction, as every write does in
PostgreSQL. An assignment only inserts its row; the counters of every assignment logged
since the last fold (ids above the ``counters_folded_through`` watermark in ``meta``) are
added in one aggregate statement per table, by ``_fold`` — which runs before any read of
the counters (learning refresh, stats, report) and at the start of every transaction that
needs them complete (erasure, pruning, rebuild). So readers always see every committed
assignment, and the hot path of a decision is one INSERT: each upsert per assign cost
more than the insert itself. Ids never go below the watermark again: SQLite hands out
max(id) + 1, and after deleting the newest rows the watermark is lowered to match.

Concurrency model: every gunicorn worker (and every thread) has its own connection;
writes take the database lock up front (BEGIN IMMEDIATE) so a transaction never has to
upgrade a read lock, which in SQLite would fail at once instead of waiting for the
busy timeout. Readers never block writers in WAL mode.
"""
from __future__ import annotations

import fcntl
import functools
import json
import os
import sqlite3
import threading
import time
import urllib.parse
import weakref
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Mapping, Sequence

import sqlite_utils

from ..domain.audit import AuditEntry
from ..domain.experiments import Experiment, ExperimentSpec
from . import records
from .accounts import AccountStore
from .audit import AuditStore
from .base import (
    COUNTER_COLUMNS,
    PERIOD_SECONDS,
    DuplicateKey,
    ModelRemoval,
    ModelUpdate,
    NewAssignment,
    PrunedLog,
    RewardResult,
    StorageBusy,
    StoredAssignment,
    period_of,
)
from .batching import GroupCommitOptions, GroupCommitter
from .events import ERASE_EVENTS_SQL, PRUNE_EVENTS_SQL, EventStore
from .metric_adaptive import MetricAdaptiveStore
from .metric_fold import erase_values, forget_all, lower_watermarks
from .metrics import MetricStore
from .repair import RepairStore
from .schema import FOLDED_THROUGH_KEY, MIGRATIONS, SCHEMA_VERSION
from .sql import STORED_SHIFT_COLUMN, Query, Rows, SqlStorage, T, Tx, maybe_audit, rebuild_shift, reward_shift_for
from .webhooks import WebhookStore


@functools.lru_cache(maxsize=64)
def _counter_increment_sql(rows: int = 1) -> str:
    """Add to the counters of ``rows`` arms in one statement (insert the row if missing)."""
    columns = ", ".join(COUNTER_COLUMNS)
    row = "(?, ?, ?, ?, 0, " + ", ".join("?" for _ in COUNTER_COLUMNS) + ")"
    updates = ", ".join(f"{c} = {c} + excluded.{c}" for c in COUNTER_COLUMNS)
    return (
        f"INSERT INTO arm_stats (experiment_id, variant_id, holdout, period, shard, {columns}) "
        f"VALUES {', '.join(row for _ in range(rows))} "
        f"ON CONFLICT (experiment_id, variant_id, holdout, period, shard) DO UPDATE SET {updates}"
    )


_INCREMENT_SQL = _counter_increment_sql(1)
_ASSIGNMENT_INSERT_SQL = (f"INSERT INTO assignments ({records.ASSIGNMENT_INSERT_COLUMNS}) "
                          "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (experiment_id, sticky_key) DO NOTHING")

_PERIOD_SQL = f"CAST(a.created_at / {PERIOD_SECONDS} AS INTEGER) * {PERIOD_SECONDS}"  # = base.period_of
_ADD_COUNTERS = ", ".join(f"{c} = {c} + excluded.{c}" for c in COUNTER_COLUMNS)
def _decision_counter_sql(where: str) -> tuple[str, ...]:
    """Statements that add the decision part of the counters of the assignments ``a`` that
    match ``where`` (``records.decision_increments`` with no outcome yet: rewards add their
    own increments when they arrive): the served arm's count and inverse-propensity
    weights, every arm's expected count (SRM), and the segment counts."""
    return (
        "INSERT INTO arm_stats (experiment_id, variant_id, holdout, period, shard, assignments, inv_propensity_sum, "
        f"inv_propensity_sumsq) SELECT a.experiment_id, a.variant_id, a.holdout, {_PERIOD_SQL}, 0, COUNT(*), "
        "SUM(1.0 / a.propensity), SUM(1.0 / (a.propensity * a.propensity)) FROM assignments a "
        f"WHERE {where} GROUP BY 1, 2, 3, 4 "
        f"ON CONFLICT (experiment_id, variant_id, holdout, period, shard) DO UPDATE SET {_ADD_COUNTERS}",
        # Decisions between two refreshes share one allocation vector, so rows are first grouped
        # by it and json_each parses each distinct vector once (2 for 750 assigns of a bandit).
        "INSERT INTO arm_stats (experiment_id, variant_id, holdout, period, shard, expected_assignments) "
        "SELECT g.experiment_id, CAST(p.key AS INTEGER), g.holdout, g.period, 0, SUM(p.value * g.n) "
        f"FROM (SELECT a.experiment_id, a.holdout, {_PERIOD_SQL} AS period, a.probabilities, COUNT(*) AS n "
        f"FROM assignments a WHERE {where} GROUP BY 1, 2, 3, 4) g, "
        "json_each(g.probabilities) p GROUP BY 1, 2, 3, 4 "
        f"ON CONFLICT (experiment_id, variant_id, holdout, period, shard) DO UPDATE SET {_ADD_COUNTERS}",
        "INSERT INTO segment_stats (experiment_id, feature, level, variant_id, holdout, shard, assignments) "
        "SELECT g.experiment_id, s.key, s.value, g.variant_id, g.holdout, 0, SUM(g.n) "
        "FROM (SELECT a.experiment_id, a.variant_id, a.holdout, a.segments, COUNT(*) AS n FROM assignments a "
        f"WHERE {where} AND a.segments IS NOT NULL GROUP BY 1, 2, 3, 4) g, "
        "json_each(g.segments) s GROUP BY 1, 2, 3, 4, 5 "
        "ON CONFLICT (experiment_id, feature, level, variant_id, holdout, shard) "
        "DO UPDATE SET assignments = assignments + excluded.assignments",
    )


# the fold: ids in (?, ?] of every experiment but the one numbered by the third parameter
# (rebuild recounts that one)
_FOLD_SQL = _decision_counter_sql("a.id > ? AND a.id <= ? AND a.experiment_id != ?")
# rebuild: every decision of one experiment (parameter: its id), then the outcomes of the rewarded
# ones (parameters: K, id), what their rewards' ``records.reward_increments`` added up to: sums of
# z = reward_total - K over the rewarded assignments (``base.ArmTotals``)
_REBUILD_DECISIONS_SQL = _decision_counter_sql("a.experiment_id = ?")
_Z = "(a.reward_total - s.k)"
_REBUILD_OUTCOMES_SQL = (
    "INSERT INTO arm_stats (experiment_id, variant_id, holdout, period, shard, conversions, reward_events, "
    "reward_sum, reward_sumsq, ips_reward_sum, ips_reward_sumsq, ips_cross_sum, rewarded_inv_sum, "
    "rewarded_inv_sumsq) "
    f"SELECT a.experiment_id, a.variant_id, a.holdout, {_PERIOD_SQL}, 0, COUNT(*), SUM(a.reward_count), "
    f"SUM({_Z}), SUM({_Z} * {_Z}), SUM({_Z} / a.propensity), "
    f"SUM({_Z} * {_Z} / (a.propensity * a.propensity)), "
    f"SUM({_Z} / (a.propensity * a.propensity)), SUM(1.0 / a.propensity), "
    "SUM(1.0 / (a.propensity * a.propensity)) FROM assignments a, (SELECT ? AS k) s "
    "WHERE a.experiment_id = ? AND a.reward_count > 0 GROUP BY 1, 2, 3, 4 "
    f"ON CONFLICT (experiment_id, variant_id, holdout, period, shard) DO UPDATE SET {_ADD_COUNTERS}",
    "INSERT INTO segment_stats (experiment_id, feature, level, variant_id, holdout, shard, conversions, reward_sum, "
    "reward_sumsq) SELECT a.experiment_id, j.key, j.value, a.variant_id, a.holdout, 0, COUNT(*), "
    f"SUM({_Z}), SUM({_Z} * {_Z}) "
    "FROM assignments a, (SELECT ? AS k) s, json_each(a.segments) j WHERE a.experiment_id = ? AND a.reward_count > 0 "
    "AND a.segments IS NOT NULL GROUP BY 1, 2, 3, 4, 5 "
    "ON CONFLICT (experiment_id, feature, level, variant_id, holdout, shard) DO UPDATE SET "
    "conversions = conversions + excluded.conversions, reward_sum = reward_sum + excluded.reward_sum, "
    "reward_sumsq = reward_sumsq + excluded.reward_sumsq",
)


def _folded_through(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (FOLDED_THROUGH_KEY,)).fetchone()
    return int(row[0]) if row else 0


def _set_folded_through(conn: sqlite3.Connection, assignment_id: int) -> None:
    conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                 (FOLDED_THROUGH_KEY, str(assignment_id)))


def _fold(conn: sqlite3.Connection, skip_experiment_id: int = -1) -> None:
    """Inside a write transaction: count every assignment above the watermark, move it up."""
    folded = _folded_through(conn)
    newest = conn.execute("SELECT MAX(id) FROM assignments").fetchone()[0] or 0
    if newest > folded:
        for sql in _FOLD_SQL:
            conn.execute(sql, (folded, newest, skip_experiment_id))
        _set_folded_through(conn, newest)


def _lower_watermark(conn: sqlite3.Connection) -> None:
    """After deleting assignments (all folded): SQLite may reuse the ids above the newest
    remaining row, so the watermark must not stay above it."""
    newest = conn.execute("SELECT MAX(id) FROM assignments").fetchone()[0] or 0
    if newest < _folded_through(conn):
        _set_folded_through(conn, newest)


@functools.lru_cache(maxsize=64)
def _segment_increment_sql(rows: int) -> str:
    row = "(?, ?, ?, ?, ?, 0, ?, ?, ?, ?)"
    return (
        "INSERT INTO segment_stats (experiment_id, feature, level, variant_id, holdout, shard, assignments, "
        f"conversions, reward_sum, reward_sumsq) VALUES {', '.join(row for _ in range(rows))} "
        "ON CONFLICT (experiment_id, feature, level, variant_id, holdout, shard) DO UPDATE SET "
        "assignments = assignments + excluded.assignments, conversions = conversions + excluded.conversions, "
        "reward_sum = reward_sum + excluded.reward_sum, reward_sumsq = reward_sumsq + excluded.reward_sumsq"
    )


def _counter_params(experiment_id: int, holdout: bool, period: int,
                    arms: Sequence[tuple[int, Sequence[float]]]) -> list[Any]:
    """Parameters of one multi-row counter upsert of (arm id, counter values) ``arms``."""
    params: list[Any] = []
    for arm_id, values in arms:
        params.extend((experiment_id, arm_id, int(holdout), period, *values))
    return params


def _count_segments(conn: sqlite3.Connection, experiment_id: int, variant_id: int, holdout: bool,
                    segments: Mapping[str, str], increments: tuple[int, int, float, float]) -> None:
    if not segments:
        return
    params: list[Any] = []
    for feature, level in segments.items():
        params.extend((experiment_id, feature, level, variant_id, int(holdout), *increments))
    conn.execute(_segment_increment_sql(len(segments)), params)


#: seconds between two background WAL checkpoints of a process (see ``WalCheckpointer``)
CHECKPOINT_INTERVAL_S = 0.25
#: WAL pages after which a commit checkpoints by itself: SQLite's safety net, should the
#: background thread fall behind (its default, 1,000 pages, is what puts the work on requests)
AUTOCHECKPOINT_PAGES = 10_000


class WalCheckpointer:
    """Copies the write-ahead log back into the database file from a daemon thread.

    By default the commit that takes the WAL past 1,000 pages runs the checkpoint
    itself, and its request waits while SQLite copies the pages and fsyncs the log and
    the database file (~15 ms on this disk, every few hundred assigns). A PASSIVE
    checkpoint blocks neither readers nor writers, and sqlite3 releases the GIL while it
    runs, so here it costs a request nothing. One per process and database file; it
    stops with ``stop()`` or when its storage is garbage-collected.
    """

    def __init__(self, path: str, interval_s: float = CHECKPOINT_INTERVAL_S) -> None:
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(path, interval_s, self._stopped),
                                        name="lever-wal-checkpoint", daemon=True)
        self._thread.start()

    @staticmethod
    def _run(path: str, interval_s: float, stopped: threading.Event) -> None:
        try:  # mode=rw: never create a file that was deleted meanwhile
            conn = sqlite3.connect(f"file:{urllib.parse.quote(os.path.abspath(path))}?mode=rw", uri=True,
                                   isolation_level=None, check_same_thread=False)
        except sqlite3.Error:
            return
        try:
            while not stopped.wait(interval_s):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.OperationalError:
                    continue  # busy (a TRUNCATE checkpoint of another process): the next round
        except sqlite3.Error:
            return  # the file went away
        finally:
            conn.close()

    def stop(self) -> None:
        self._stopped.set()


class _SQLiteTx(Tx):
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Rows:
        return self.conn.execute(sql, params)

    def insert(self, sql: str, params: Sequence[Any] = ()) -> int:
        return int(self.conn.execute(sql, params).lastrowid)


class SQLiteStorage(AccountStore, AuditStore, WebhookStore, MetricStore, MetricAdaptiveStore, EventStore,
                    RepairStore, SqlStorage):
    def __init__(self, url: str, synchronous: str = "NORMAL", busy_timeout_ms: int = 5000,
                 background_checkpoints: bool = True, group_commit: GroupCommitOptions | None = None) -> None:
        """``group_commit``: assignments and rewards go through a per-process batching writer
        (``batching``); None: each in its own transaction on the request's thread."""
        self.url = url
        path = url[len("sqlite:///"):]
        self.path = path if path else "lever.db"
        self.synchronous = synchronous
        self.busy_timeout_ms = busy_timeout_ms
        self.background_checkpoints = background_checkpoints
        self._local = threading.local()
        self._checkpointer: tuple[int, WalCheckpointer] | None = None  # (pid, thread)
        self._checkpointer_lock = threading.Lock()
        self._group_commit = (GroupCommitter(self._transact_batch, group_commit, name="lever-sqlite-writer")
                              if group_commit is not None else None)

    def _start_checkpointer(self) -> None:
        """One checkpoint thread per process (threads do not survive gunicorn's fork)."""
        with self._checkpointer_lock:
            if self._checkpointer is None or self._checkpointer[0] != os.getpid():
                checkpointer = WalCheckpointer(self.path)
                weakref.finalize(self, checkpointer.stop)
                self._checkpointer = (os.getpid(), checkpointer)

    # -- connections ---------------------------------------------------------------
    @property
    def conn(self) -> sqlite3.Connection:
        """This thread's connection (opened lazily; re-opened after a fork)."""
        conn = getattr(self._local, "conn", None)
        if conn is None or self._local.pid != os.getpid():
            lock_file = open(self.path + ".lock", "a+b")
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=True,
                                   timeout=self.busy_timeout_ms / 1000)
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                # Switching a new file to WAL needs it to itself: two workers booting on a
                # fresh database would otherwise race ("database is locked"). WAL persists,
                # so this happens once per database file.
                self._acquire(lock_file.fileno())
                try:
                    conn.execute("PRAGMA journal_mode=WAL")
                finally:
                    fcntl.flock(lock_file.fileno(), fcntl.LOCK_UN)
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            conn.execute(f"PRAGMA busy_timeout={self.busy_timeout_ms}")
            conn.execute("PRAGMA foreign_keys=ON")
            if self.background_checkpoints:
                conn.execute(f"PRAGMA wal_autocheckpoint={AUTOCHECKPOINT_PAGES}")
                self._start_checkpointer()
            self._local.conn, self._local.pid, self._local.lock_file = conn, os.getpid(), lock_file
        return conn

    def close(self) -> None:
        self._run_close_hooks()
        if self._group_commit is not None:
            self._group_commit.stop()  # its thread's connection goes with the thread
        if self._checkpointer is not None and self._checkpointer[0] == os.getpid():
            self._checkpointer[1].stop()
            self._checkpointer = None
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.lock_file.close()
            self._local.conn = None

    def release(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None and conn.in_transaction:
            conn.rollback()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; rolled back on any error; busy → StorageBusy.

        Writers of this service first queue on an advisory file lock beside the
        database (see ``_acquire``). SQLite's own busy handler polls with sleeps of 1
        to 100 ms, which under load turns lock waits into latency. The busy timeout
        still covers other processes (a CLI, sqlite3) that do not take the file lock.
        """
        conn = self.conn
        lock_fd = self._local.lock_file.fileno()
        self._acquire(lock_fd)
        try:
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as error:
                raise StorageBusy(str(error)) from error
            try:
                yield conn
            except BaseException:
                conn.rollback()
                raise
            try:
                conn.execute("COMMIT")
            except sqlite3.OperationalError as error:
                conn.rollback()
                raise StorageBusy(str(error)) from error
        finally:
            fcntl.flock(lock_fd, fcntl.LOCK_UN)

    def _acquire(self, lock_fd: int) -> None:
        """Take the writers' file lock, polling with sleeps of 0.1 to 2 ms, for at most the busy timeout.

        A blocking flock would wait forever behind a stuck writer; polling keeps the wait
        bounded (→ StorageBusy, a 503) while its short sleeps keep the hand-over between
        two workers far below SQLite's 1-to-100 ms busy-handler steps.
        """
        deadline = time.monotonic() + self.busy_timeout_ms / 1000
        pause = 0.0001
        while True:
            try:
                fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise StorageBusy("another writer held the database lock for longer than the busy timeout")
                time.sleep(pause)
                pause = min(pause * 2, 0.002)

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        try:
            return self.conn.execute(sql, params).fetchall()
        except sqlite3.OperationalError as error:
            raise StorageBusy(str(error)) from error

    # -- lifecycle -----------------------------------------------------------------
    def migrate(self) -> int:
        with self._write() as conn:
            db = sqlite_utils.Database(conn)
            if "meta" not in db.table_names():
                db["meta"].create({"key": str, "value": str}, pk="key")
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            version = int(row[0]) if row else 0
            for target, migration in sorted(MIGRATIONS.items()):
                if target > version:
                    migration(db)
                    version = target
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (str(version),)
            )
        assert version == SCHEMA_VERSION
        return version

    def healthy(self) -> bool:
        try:
            return self.conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() is not None
        except sqlite3.Error:
            return False

    # -- experiments -----------------------------------------------------------------
    def create_experiment(self, spec: ExperimentSpec, now: float, audit: AuditEntry | None = None) -> Experiment:
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM experiments WHERE key = ?", (spec.key,)).fetchone():
                raise DuplicateKey(spec.key)
            cursor = conn.execute(
                f"INSERT INTO experiments ({records.EXPERIMENT_INSERT_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'running', NULL, ?, ?)", records.experiment_values(spec, now),
            )
            for values in records.variant_values(cursor.lastrowid, spec):
                conn.execute("INSERT INTO variants (experiment_id, key, position, payload, weight) "
                             "VALUES (?, ?, ?, ?, ?)", values)
            maybe_audit(_SQLiteTx(conn), audit)
        experiment = self.get_experiment(spec.key)
        assert experiment is not None
        return experiment

    def _experiments(self, where: str, params: Sequence[Any]) -> list[Experiment]:
        rows = self._read(f"SELECT {records.EXPERIMENT_COLUMNS} FROM experiments {where} ORDER BY id", params)
        if not rows:
            return []
        ids = [row[0] for row in rows]
        variant_rows = self._read(
            f"SELECT {records.VARIANT_COLUMNS} FROM variants WHERE experiment_id IN "
            f"({', '.join('?' for _ in ids)}) ORDER BY experiment_id, position", ids
        )
        return records.experiments(rows, variant_rows)

    # -- assignments -------------------------------------------------------------------
    def _transact_batch(self, body: Callable[[sqlite3.Connection], list[Any]]) -> list[Any]:
        """The group committer's transaction: the writer thread's own connection."""
        with self._write() as conn:
            return body(conn)

    def _write_event(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """An assignment or reward write: in the next group commit, or in its own transaction."""
        if self._group_commit is not None:
            return self._group_commit.submit(work)
        with self._write() as conn:
            return work(conn)

    def _transact_batched(self, body: Callable[[Tx], T], order: tuple = ()) -> T:
        """``_transact`` for a per-visitor event write of a mixin (events, …): ``body`` runs in the
        next group commit, beside the assignments and rewards of other requests."""
        return self._write_event(lambda conn: body(_SQLiteTx(conn)))

    def record_assignments(self, items: Sequence[NewAssignment]) -> list[StoredAssignment]:
        return self._write_event(functools.partial(self._insert_assignments, items))

    def _insert_assignments(self, items: Sequence[NewAssignment], conn: sqlite3.Connection) -> list[StoredAssignment]:
        stored: list[StoredAssignment] = []
        for item in items:
            cursor = conn.execute(_ASSIGNMENT_INSERT_SQL, records.assignment_values(item))
            if cursor.rowcount == 0:  # a concurrent request assigned this sticky visitor first
                row = conn.execute(
                    f"SELECT {records.ASSIGNMENT_COLUMNS} FROM assignments "
                    "WHERE experiment_id = ? AND sticky_key = ?",
                    (item.experiment_id, item.visitor),
                ).fetchone()
                stored.append(records.assignment(row, existing=True))
                continue
            if item.model_update is not None:
                self._update_model_state(conn, item.experiment_id, item.variant_id, item.model_update)
            stored.append(records.new_assignment(item, cursor.lastrowid))
        return stored

    @staticmethod
    def _update_model_state(conn: sqlite3.Connection, experiment_id: int, variant_id: int, update: ModelUpdate) -> None:
        row = conn.execute(
            "SELECT state FROM model_state WHERE experiment_id = ? AND variant_id = ?", (experiment_id, variant_id)
        ).fetchone()
        state = update(row[0] if row else None)
        conn.execute(
            "INSERT INTO model_state (experiment_id, variant_id, state) VALUES (?, ?, ?) "
            "ON CONFLICT (experiment_id, variant_id) DO UPDATE SET state = excluded.state",
            (experiment_id, variant_id, state),
        )

    # -- rewards ---------------------------------------------------------------------
    def record_reward(
        self,
        assignment: StoredAssignment,
        value: float,
        event_id: str | None,
        binary: bool,
        now: float,
        model_update: ModelUpdate | None = None,
    ) -> RewardResult:
        return self._write_event(functools.partial(self._insert_reward, assignment, value, event_id, binary, now,
                                                   model_update))

    def _insert_reward(self, assignment: StoredAssignment, value: float, event_id: str | None, binary: bool,
                       now: float, model_update: ModelUpdate | None, conn: sqlite3.Connection) -> RewardResult:
        # Re-read under the write lock: another worker may have rewarded it meanwhile.
        total, count, segments_json, stored_shift = conn.execute(
            f"SELECT reward_total, reward_count, segments, {STORED_SHIFT_COLUMN} FROM assignments WHERE id = ?",
            (assignment.id,)
        ).fetchone()
        if binary and count > 0:
            return RewardResult(accepted=False, reward_total=total, reward_count=count)
        cursor = conn.execute(
            "INSERT INTO rewards (assignment_id, experiment_id, value, event_id, created_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (assignment_id, event_id) DO NOTHING",
            (assignment.id, assignment.experiment_id, value, event_id, now),
        )
        if cursor.rowcount == 0:  # the same event_id was seen before
            return RewardResult(accepted=False, reward_total=total, reward_count=count)
        new_total, new_count = total + value, count + 1
        conn.execute(
            "UPDATE assignments SET reward_total = ?, reward_count = ? WHERE id = ?",
            (new_total, new_count, assignment.id),
        )
        shift = 0.0 if binary else reward_shift_for(_SQLiteTx(conn), assignment.experiment_id, value, stored_shift)
        arm_values, segment_values = records.reward_increments(total, count, value, assignment.propensity, shift)
        conn.execute(_INCREMENT_SQL, (assignment.experiment_id, assignment.variant_id, int(assignment.holdout),
                                      period_of(assignment.created_at), *arm_values))
        if segments_json:
            _count_segments(conn, assignment.experiment_id, assignment.variant_id, assignment.holdout,
                            json.loads(segments_json), segment_values)
        if model_update is not None:
            self._update_model_state(conn, assignment.experiment_id, assignment.variant_id, model_update)
        return RewardResult(accepted=True, reward_total=new_total, reward_count=new_count)

    # -- learning and analysis reads ---------------------------------------------------------
    def _transact(self, body: Callable[[Tx], T], *, idempotent: bool = False) -> T:
        with self._write() as conn:
            return body(_SQLiteTx(conn))

    def _read_together(self, queries: Sequence[Query]) -> list[list[tuple]]:
        conn = self.conn
        try:
            conn.execute("BEGIN")  # one read transaction: in WAL mode a consistent snapshot, no lock taken
            try:
                return [conn.execute(sql, params).fetchall() for sql, params in queries]
            finally:
                conn.execute("ROLLBACK")
        except sqlite3.OperationalError as error:
            raise StorageBusy(str(error)) from error

    def _counters_current(self) -> None:
        self._fold_pending()

    def _fold_pending(self) -> None:
        """Before reading counters: fold the assignments logged since the last fold.

        The check reads two values without the writers' lock; only when something is
        pending does it take the lock (and re-check inside the transaction, in case
        another worker folded meanwhile).
        """
        conn = self.conn
        try:
            newest = conn.execute("SELECT MAX(id) FROM assignments").fetchone()[0] or 0
            pending = newest > _folded_through(conn)
        except sqlite3.OperationalError as error:
            raise StorageBusy(str(error)) from error
        if pending:
            with self._write() as conn:
                _fold(conn)

    def iter_events(self, experiment_id: int, batch_size: int = 1000) -> Iterator[dict[str, Any]]:
        return records.events(lambda after_id: self._read(
            f"SELECT {records.EVENT_COLUMNS} FROM assignments a JOIN variants v ON v.id = a.variant_id "
            "WHERE a.experiment_id = ? AND a.id > ? ORDER BY a.id LIMIT ?", (experiment_id, after_id, batch_size)
        ))

    # -- privacy and retention -----------------------------------------------------------
    def erase_visitor(self, visitor: str, model_removal: ModelRemoval | None = None,
                      audit: AuditEntry | None = None) -> int:
        with self._write() as conn:
            _fold(conn)  # the erasure subtracts each row's counters: they must all be in
            rows = conn.execute(
                f"SELECT {records.ERASE_COLUMNS} FROM assignments WHERE visitor = ?", (visitor,)
            ).fetchall()
            erase_values(_SQLiteTx(conn), [row[0] for row in rows], self._PERIOD_OF)
            for erased in records.erasures(rows):
                conn.execute(_counter_increment_sql(len(erased.arms)),
                             _counter_params(erased.experiment_id, erased.holdout, erased.period, erased.arms))
                _count_segments(conn, erased.experiment_id, erased.variant_id, erased.holdout, erased.segments,
                                erased.segment_values)
                update = erased.model_update(model_removal)
                if update is not None:
                    self._update_model_state(conn, erased.experiment_id, erased.variant_id, update)
                conn.execute("DELETE FROM rewards WHERE assignment_id = ?", (erased.assignment_id,))
                conn.execute("DELETE FROM assignments WHERE id = ?", (erased.assignment_id,))
            conn.execute(ERASE_EVENTS_SQL, (visitor,))
            _lower_watermark(conn)
            lower_watermarks(_SQLiteTx(conn))
            maybe_audit(_SQLiteTx(conn), audit)
        return len(rows)

    def prune_events(self, before: float) -> int:
        with self._write() as conn:
            _fold(conn)  # pruned rows keep their place in the totals
            conn.execute("DELETE FROM rewards WHERE assignment_id IN (SELECT id FROM assignments WHERE created_at < ?)",
                         (before,))
            deleted = conn.execute("DELETE FROM assignments WHERE created_at < ?", (before,)).rowcount
            conn.execute(PRUNE_EVENTS_SQL, (before,))
            _lower_watermark(conn)
            forget_all(_SQLiteTx(conn))
            if deleted:
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('pruned_before', ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = MAX(CAST(value AS REAL), excluded.value)", (before,)
                )
        return deleted

    def rewards_for_rebuild(self, experiment_id: int) -> list[tuple[int, float, float]]:
        """(assignment_id, value, created_at) of every reward, in arrival order."""
        return self._read(
            "SELECT assignment_id, value, created_at FROM rewards WHERE experiment_id = ? ORDER BY id", (experiment_id,)
        )

    def rebuild_arm_stats(self, experiment: Experiment, model_rebuild: Callable[..., Any] | None = None) -> None:
        if self.get_meta("pruned_before") is not None:
            raise PrunedLog("raw events were pruned (LEVER_RETENTION_DAYS): the counters can no longer be rebuilt")
        with self._write() as conn:
            _fold(conn, skip_experiment_id=experiment.id)  # this one is recounted from its rows below
            conn.execute("DELETE FROM arm_stats WHERE experiment_id = ?", (experiment.id,))
            conn.execute("DELETE FROM segment_stats WHERE experiment_id = ?", (experiment.id,))
            for sql in _REBUILD_DECISIONS_SQL:
                conn.execute(sql, (experiment.id,))
            shift = rebuild_shift(_SQLiteTx(conn), experiment)
            for sql in _REBUILD_OUTCOMES_SQL:
                conn.execute(sql, (shift, experiment.id))
            if model_rebuild is not None:
                conn.execute("DELETE FROM model_state WHERE experiment_id = ?", (experiment.id,))
                states = model_rebuild(self.iter_events(experiment.id), self.rewards_for_rebuild(experiment.id))
                for variant_id, state in states.items():
                    conn.execute(
                        "INSERT INTO model_state (experiment_id, variant_id, state) VALUES (?, ?, ?)",
                        (experiment.id, variant_id, state),
                    )

