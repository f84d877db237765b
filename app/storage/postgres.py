"""PostgreSQL backend (psycopg 3): the same tables, counters and transactions as the SQLite one.

Connections. Each process has its own small ``psycopg_pool.ConnectionPool``, opened on
first use and re-opened when the pid changes (gunicorn forks workers after import; a
child never touches its parent's sockets). Connections are in autocommit mode: a read
is one statement, a write is an explicit ``BEGIN`` … ``COMMIT`` driven by ``_run``,
so the runner always knows whether a failure happened before or during the commit.
The URL is used as given, so ``?options=-csearch_path%3D<schema>`` (the tests' per-test
schema) is honoured; table names are never schema-qualified.

Concurrency. Transactions run at READ COMMITTED and lock exactly what they
read-modify-write: ``record_reward`` re-reads the assignment ``FOR UPDATE`` (at most
one binary conversion; numeric ones are de-duplicated by the unique (assignment_id,
event_id) index), ``_update_model_state`` locks the state row (inserting a placeholder
row first when missing, so two first writers queue on it), and the sticky race is
settled by ``INSERT … ON CONFLICT (experiment_id, sticky_key) DO NOTHING`` exactly as
in SQLite. Counter increments (arm_stats and segment_stats) go to one of ``postgres_counters.SHARDS``
rows per key, chosen at random per transaction, so concurrent writers rarely queue on
the same hot row; reads sum over shards. Within a transaction rows are locked in one
global order (assignments — by experiment when inserted, ``FOR UPDATE`` when rewarded or
erased — then arm_stats rows sorted by key, then segment_stats rows sorted by key, then
model states sorted by key) so two writers cannot deadlock on each other; if PostgreSQL
still reports a
deadlock or serialization failure the transaction is retried once. ``migrate`` and
``rebuild_arm_stats`` serialise with a transaction-scoped advisory lock and a table lock
respectively.

Failures and the one retry. A dropped connection (``pg_terminate_backend``, a restart,
a network cut) before ``COMMIT`` was sent means the server rolled the transaction back:
the whole transaction is retried once on a fresh connection (after a ``pool.check()``
has thrown out the pool's other dead connections). A drop *during* ``COMMIT`` is
ambiguous: the commit may or may not have happened. The transaction is then retried only
when doing it twice is harmless (``idempotent=True``: migrate, set_meta_default,
set_status, rebuild, erase_visitor, prune_events — the last two then report 0 rows, the
first attempt having done the work) or when the outcome can be settled first: writes that insert a new
row name it as their *witness*; the runner waits until the old backend has ended (gone
from ``pg_stat_activity`` or idle: its transaction is finished either way), then looks
for the witness row. Present → the commit happened, the result is returned as if nothing
went wrong; absent → nothing was written and the retry is safe. If it cannot be settled
(the database stays unreachable) the caller gets ``StorageOutcomeUnknown`` (a 503
``outcome_unknown``): the one case in which a 503 may have written something, and says so
(the client's retry is then absorbed by the sticky / event-id / one-conversion idempotency
rules where they apply). Pool timeouts,
lock timeouts and statement timeouts are ``StorageBusy`` without a retry (they already
waited).
"""
from __future__ import annotations

import functools
import json
import logging
import os
import threading
import time
from typing import Any, Callable, Iterator, Sequence, TypeVar

import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import ConnectionPool, PoolTimeout

from ..domain.audit import AuditEntry
from ..domain.experiments import Experiment, ExperimentSpec
from . import records
from .accounts import AccountStore
from .audit import AuditStore
from .base import (
    PERIOD_SECONDS,
    DuplicateKey,
    ModelRemoval,
    ModelUpdate,
    NewAssignment,
    PrunedLog,
    RewardResult,
    StorageBusy,
    StorageOutcomeUnknown,
    StoredAssignment,
    period_of,
)
from .batching import GroupCommitOptions, GroupCommitter
from .events import ERASE_EVENTS_SQL, PRUNE_EVENTS_SQL, EventStore
from .metric_adaptive import MetricAdaptiveStore
from .metric_fold import FOLD_LAG_S, FOLD_LOCK, POSTGRES_PERIOD_OF, erase_values, fold_lock_key, forget_all
from .metrics import MetricStore
from .postgres_counters import Counters
from .postgres_tx import Batch, PostgresTx, TxInfo, normalise_url, placeholders
from .repair import RepairStore
from .schema_postgres import MIGRATIONS, SCHEMA_VERSION
from .sql import STORED_SHIFT_COLUMN, Query, SqlStorage, Tx, maybe_audit, rebuild_shift, reward_shift_for
from .webhooks import WebhookStore

log = logging.getLogger("lever.storage")

T = TypeVar("T")

#: advisory lock key namespace for migrations ('Lv' 'mi')
_MIGRATE_LOCK = 0x4C76_6D69
#: how long to wait for a dropped backend to finish before an ambiguous commit is settled
_SETTLE_TIMEOUT_S = 3.0
#: session settings of every pooled connection (set_config: one round trip, URL options untouched)
_SESSION_SETTINGS = {
    "lock_timeout": "5s",
    "statement_timeout": "15s",
    "idle_in_transaction_session_timeout": "60s",
}

#: taken by every reward that may meet an unset reward shift and by every erasure before they read
#: a shift: ROW EXCLUSIVE conflicts with the SHARE ROW EXCLUSIVE lock of ``rebuild_arm_stats``
#: (which may set the shift) and with no other writer
_SERIALISE_WITH_REBUILD = "LOCK TABLE arm_stats IN ROW EXCLUSIVE MODE"

_ASSIGNMENT_INSERT_SQL = (
    f"INSERT INTO assignments ({records.ASSIGNMENT_INSERT_COLUMNS}) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (experiment_id, sticky_key) DO NOTHING RETURNING id"
)


#: planner settings of metric folds and tail reads: a chunk's 20,000 exposures (or the tail's
#: new events) find their rows by index seeks of (visitor, name, ts) and (visitor); the cost
#: model prefers hashing every event or exposure (one scan of millions per chunk and metric)
_SEEK_SETTINGS = ("enable_hashjoin", "enable_mergejoin", "jit")


class PostgresStorage(AccountStore, AuditStore, WebhookStore, MetricStore, MetricAdaptiveStore, EventStore,
                      RepairStore, SqlStorage):
    _SCALAR_MIN = "LEAST"
    _PERIOD_OF = POSTGRES_PERIOD_OF  # = base.period_of
    _FOLD_LOCK_SQL = f"SELECT pg_try_advisory_xact_lock(CAST(? AS integer), {fold_lock_key('?')})"
    fold_lag_s = FOLD_LAG_S
    # fold_chunk: MetricStore's (a build of 1M exposures: 50 bounded transactions, not one of minutes)

    def _fold_setup(self, tx: Tx) -> None:
        tx.execute("SET LOCAL statement_timeout = 0")  # a rebuild reads every exposure and event
        for setting in _SEEK_SETTINGS:
            tx.execute(f"SET LOCAL {setting} = off")

    def _read_seeking(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        """``_read`` with hash and merge joins off (``_SEEK_SETTINGS``): the metric tail's few new
        events meet their exposures by index seeks, not by hashing a million exposures."""
        def body(conn: psycopg.Connection, _tx: TxInfo) -> list[tuple]:
            for setting in _SEEK_SETTINGS:
                conn.execute(f"SET LOCAL {setting} = off")
            return conn.execute(placeholders(sql), params).fetchall()

        return self._run(body, write=True, idempotent=True)

    def __init__(self, url: str, min_size: int = 1, max_size: int = 5, timeout_s: float = 5.0,
                 group_commit: GroupCommitOptions | None = None) -> None:
        """``max_size`` connections per process: request threads only read (one statement at a
        time), the group-commit writer holds one for its batches. ``group_commit``: assignments
        and rewards go through a per-process batching writer (``batching``)."""
        self.url = url
        self.conninfo = normalise_url(url)
        self.min_size, self.max_size, self.timeout_s = min_size, max_size, timeout_s
        self._pool: ConnectionPool | None = None
        self._pid = 0
        self._lock = threading.Lock()
        self._abandoned: list[ConnectionPool] = []  # a parent's pools, kept so nothing finalises them here
        self._group_commit = (GroupCommitter(self._transact_batch, group_commit, name="lever-postgres-writer")
                              if group_commit is not None else None)

    # -- connections ---------------------------------------------------------------
    @staticmethod
    def _configure(conn: psycopg.Connection) -> None:
        names = list(_SESSION_SETTINGS)
        sql = "SELECT " + ", ".join("set_config(%s, %s, false)" for _ in names)
        conn.execute(sql, [v for name in names for v in (name, _SESSION_SETTINGS[name])])

    @property
    def pool(self) -> ConnectionPool:
        """This process's pool (opened lazily; re-opened after a fork)."""
        pool, pid = self._pool, os.getpid()
        if pool is not None and self._pid == pid:
            return pool
        with self._lock:
            if self._pool is not None and self._pid == pid:
                return self._pool
            if self._pool is not None:
                self._abandoned.append(self._pool)  # the parent's: its sockets are not ours to close
            pool = ConnectionPool(
                self.conninfo, min_size=self.min_size, max_size=self.max_size, timeout=self.timeout_s,
                kwargs={"autocommit": True, "connect_timeout": 5}, configure=self._configure,
                name=f"lever-{pid}", open=False,
            )
            pool.open(wait=False)
            self._pool, self._pid = pool, pid
            return pool

    def close(self) -> None:
        self._run_close_hooks()
        if self._group_commit is not None:
            self._group_commit.stop()
        with self._lock:
            if self._pool is not None and self._pid == os.getpid():
                self._pool.close()
            self._pool = None

    def release(self) -> None:
        """Nothing is request-scoped: every method returns its connection to the pool before it returns."""

    def _getconn(self) -> psycopg.Connection:
        try:
            return self.pool.getconn()
        except PoolTimeout as error:
            raise StorageBusy(f"no database connection within {self.timeout_s} s: {error}") from error

    def _putconn(self, conn: psycopg.Connection) -> None:
        if not conn.broken and conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            try:
                conn.execute("ROLLBACK")
            except psycopg.Error:
                pass
        try:
            self.pool.putconn(conn)
        except Exception:  # a pool closed meanwhile: just drop the connection
            conn.close()

    def _after_drop(self) -> None:
        """A connection died: the pool's other idle connections probably did too (a restart, a kill)."""
        try:
            self.pool.check()
        except Exception:  # checking is best effort; the retry's own errors are what count
            log.debug("pool check failed", exc_info=True)

    @staticmethod
    def _retryable(conn: psycopg.Connection, error: BaseException) -> bool:
        """Dropped connection, deadlock or serialization failure: the transaction did not happen."""
        return conn.broken or conn.closed or isinstance(error, pg_errors.TransactionRollback)

    def _run(self, body: Callable[[psycopg.Connection, TxInfo], T], *, write: bool, idempotent: bool = False) -> T:
        """Run ``body`` as one transaction (``write``) or one autocommit read, with at most one retry."""
        for attempt in (1, 2):
            last = attempt == 2
            conn = self._getconn()
            tx = TxInfo()
            committing = False
            backend_pid = conn.info.backend_pid
            try:
                if write:
                    conn.execute("BEGIN")
                result = body(conn, tx)
                if write:
                    committing = True
                    conn.execute("COMMIT")
                return result
            except psycopg.Error as error:
                dropped = conn.broken or conn.closed
                if dropped:
                    self._after_drop()
                if committing and dropped:
                    # idempotent, or no witness (the body wrote nothing): a retry cannot double anything
                    settled = idempotent or tx.witness is None
                    if not settled:
                        outcome = self._settle(backend_pid, tx.witness)
                        if outcome is True:
                            log.warning("commit confirmed after the connection dropped: %s", error)
                            return result
                        settled = outcome is False
                    if not settled:
                        raise StorageOutcomeUnknown(f"the connection dropped during COMMIT: {error}") from error
                    if last:
                        raise StorageBusy(f"the connection dropped during COMMIT (not committed): {error}") from error
                    log.warning("connection dropped during COMMIT, nothing was written; retrying: %s", error)
                    continue
                if isinstance(error, psycopg.OperationalError) or dropped:
                    if self._retryable(conn, error) and not last:
                        log.warning("database transaction failed (%s); retrying once", error)
                        continue
                    raise StorageBusy(str(error)) from error
                raise
            finally:
                self._putconn(conn)
        raise AssertionError("unreachable")

    def _settle(self, backend_pid: int, witness: tuple[str, int]) -> bool | None:
        """After a drop during COMMIT: did the transaction that inserted ``witness`` commit?

        Waits until the old backend has ended or is idle (its transaction is over, one way or the
        other: a commit is made visible before the backend can process a termination), then looks
        for the row. Connections that drop meanwhile are replaced; None when it cannot tell in time.
        """
        table, row_id = witness
        deadline = time.monotonic() + _SETTLE_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                conn = self._getconn()
            except StorageBusy:
                return None
            try:
                row = conn.execute("SELECT state FROM pg_stat_activity WHERE pid = %s", (backend_pid,)).fetchone()
                if row is None or row[0] == "idle":
                    return conn.execute(f"SELECT 1 FROM {table} WHERE id = %s", (row_id,)).fetchone() is not None
            except psycopg.Error:
                if conn.broken or conn.closed:
                    self._after_drop()
            finally:
                self._putconn(conn)
            time.sleep(0.02)
        return None

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        return self._run(lambda conn, _tx: conn.execute(placeholders(sql), params).fetchall(), write=False)

    def _transact(self, body: Callable[[Tx], T], *, idempotent: bool = False) -> T:
        return self._run(lambda conn, tx: body(PostgresTx(conn, tx)), write=True, idempotent=idempotent)

    def _read_together(self, queries: Sequence[Query]) -> list[list[tuple]]:
        return self._run(lambda conn, _tx: [conn.execute(placeholders(sql), params).fetchall()
                                            for sql, params in queries], write=False)

    # -- lifecycle -----------------------------------------------------------------
    def migrate(self) -> int:
        def body(conn: psycopg.Connection, _tx: TxInfo) -> int:
            conn.execute("SET LOCAL statement_timeout = 0")
            # every worker migrates at start: one at a time per schema, the others then find it done
            conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(coalesce(current_schema(), '')))",
                         (_MIGRATE_LOCK,))
            conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            version = int(row[0]) if row else 0
            for target, statements in sorted(MIGRATIONS.items()):
                if target > version:
                    for statement in statements:
                        conn.execute(statement)
                    version = target
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', %s) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (str(version),)
            )
            return version

        version = self._run(body, write=True, idempotent=True)
        assert version == SCHEMA_VERSION
        return version

    def healthy(self) -> bool:
        """The schema is there; a connection killed since the last request is replaced (one retry)."""
        try:
            return bool(self._read("SELECT value FROM meta WHERE key = 'schema_version'"))
        except Exception:
            return False

    # -- experiments -----------------------------------------------------------------
    def create_experiment(self, spec: ExperimentSpec, now: float, audit: AuditEntry | None = None) -> Experiment:
        def body(conn: psycopg.Connection, tx: TxInfo) -> None:
            if conn.execute("SELECT 1 FROM experiments WHERE key = %s", (spec.key,)).fetchone():
                raise DuplicateKey(spec.key)
            try:
                experiment_id = conn.execute(
                    f"INSERT INTO experiments ({records.EXPERIMENT_INSERT_COLUMNS}) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 'running', NULL, %s, %s) RETURNING id",
                    records.experiment_values(spec, now),
                ).fetchone()[0]
            except pg_errors.UniqueViolation as error:  # created concurrently since the check above
                raise DuplicateKey(spec.key) from error
            tx.witness = ("experiments", experiment_id)
            with conn.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO variants (experiment_id, key, position, payload, weight) VALUES (%s, %s, %s, %s, %s)",
                    records.variant_values(experiment_id, spec),
                )
            maybe_audit(PostgresTx(conn, tx), audit)

        self._run(body, write=True)
        experiment = self.get_experiment(spec.key)
        assert experiment is not None
        return experiment

    def _experiments(self, where: str, params: Sequence[Any]) -> list[Experiment]:
        def body(conn: psycopg.Connection, _tx: TxInfo) -> tuple[list[tuple], list[tuple]]:
            rows = conn.execute(
                f"SELECT {records.EXPERIMENT_COLUMNS} FROM experiments {placeholders(where)} ORDER BY id", params
            ).fetchall()
            if not rows:
                return rows, []
            variant_rows = conn.execute(
                f"SELECT {records.VARIANT_COLUMNS} FROM variants WHERE experiment_id = ANY(%s) "
                "ORDER BY experiment_id, position", ([row[0] for row in rows],)
            ).fetchall()
            return rows, variant_rows

        return records.experiments(*self._run(body, write=False))

    # -- assignments -------------------------------------------------------------------
    def _transact_batch(self, body: Callable[[Batch], list[Any]]) -> list[Any]:
        """One transaction for ``body``'s items, then their summed counters and model updates."""
        def run(conn: psycopg.Connection, tx: TxInfo) -> list[Any]:
            batch = Batch(conn, tx, Counters(), [])
            results = body(batch)
            self._flush_assignments(batch)  # the items' new assignments, in one round trip
            batch.counters.flush(conn)
            for experiment_id, variant_id, update in sorted(batch.updates, key=lambda u: (u[0], u[1])):
                self._update_model_state(conn, experiment_id, variant_id, update)
            return results

        return self._run(run, write=True)

    def _write_event(self, work: Callable[[Batch], T], order: tuple) -> T:
        """An assignment or reward write: in the next group commit (run in ``order`` among the
        batch's items: row locks in one global order), or in its own transaction."""
        if self._group_commit is not None:
            return self._group_commit.submit(work, order)
        return self._transact_batch(lambda batch: [work(batch)])[0]

    def _transact_batched(self, body: Callable[[Tx], T], order: tuple = ()) -> T:
        """``_transact`` for a per-visitor event write of a mixin (events, …): ``body`` runs in the
        next group commit (after the batch's assignments and rewards: ``order`` sorts among the
        other such items), and its ``Tx.insert`` rows settle an ambiguous commit."""
        return self._write_event(lambda batch: body(PostgresTx(batch.conn, batch.tx)), (2, *order))

    def record_assignments(self, items: Sequence[NewAssignment]) -> list[StoredAssignment]:
        first = min(items, key=lambda item: (item.experiment_id, item.visitor))
        return self._write_event(functools.partial(self._insert_assignments, items),
                                 (0, first.experiment_id, first.visitor))

    @staticmethod
    def _insert_assignments(items: Sequence[NewAssignment], batch: Batch) -> list[StoredAssignment]:
        """Queue the rows of ``items`` in the batch (``_flush_assignments`` inserts and fills them
        before the commit); the parameters are built here, so a bad item fails as itself."""
        stored: list[StoredAssignment | None] = [None] * len(items)
        for index, item in enumerate(items):
            batch.assignments.append((item, records.assignment_values(item), stored, index))
        return stored  # type: ignore[return-value]

    @staticmethod
    def _flush_assignments(batch: Batch) -> None:
        """Insert every queued assignment of the batch in one round trip (psycopg's pipelined
        ``executemany``: one result per row, in order), in (experiment, visitor) order, so two
        processes' batches queue on the unique sticky index in the same order."""
        queued = sorted(batch.assignments, key=lambda q: (q[0].experiment_id, q[0].visitor))
        batch.assignments.clear()
        if not queued:
            return
        conn, counters = batch.conn, batch.counters
        with conn.cursor() as cursor:
            cursor.executemany(_ASSIGNMENT_INSERT_SQL, [values for _, values, _, _ in queued], returning=True)
            rows = [cursor.fetchone()]
            while cursor.nextset():
                rows.append(cursor.fetchone())
        assert len(rows) == len(queued)
        for (item, _, stored, index), row in zip(queued, rows):
            if row is None:  # a concurrent request (or an earlier row of this batch) assigned this sticky visitor
                existing = conn.execute(
                    f"SELECT {records.ASSIGNMENT_COLUMNS} FROM assignments "
                    "WHERE experiment_id = %s AND sticky_key = %s",
                    (item.experiment_id, item.visitor),
                ).fetchone()
                stored[index] = records.assignment(existing, existing=True)
                continue
            batch.tx.witness = ("assignments", row[0])
            counters.add_arms(item.experiment_id, item.holdout, period_of(item.created_at),
                              records.decision_increments(item.variant_id, item.probabilities, item.propensity,
                                                          0.0, 0, sign=1))
            counters.add_segments(item.experiment_id, item.variant_id, item.holdout, item.segments,
                                  records.NEW_DECISION_SEGMENT_VALUES)
            if item.model_update is not None:
                batch.updates.append((item.experiment_id, item.variant_id, item.model_update))
            stored[index] = records.new_assignment(item, row[0])

    @staticmethod
    def _update_model_state(conn: psycopg.Connection, experiment_id: int, variant_id: int,
                            update: ModelUpdate) -> None:
        """Read-modify-write of one arm state under its row lock (the first writer inserts the row)."""
        select = "SELECT state FROM model_state WHERE experiment_id = %s AND variant_id = %s FOR UPDATE"
        row = conn.execute(select, (experiment_id, variant_id)).fetchone()
        if row is None:
            # a placeholder, never committed as such: a concurrent first writer waits on it, then sees our state
            conn.execute(
                "INSERT INTO model_state (experiment_id, variant_id, state) VALUES (%s, %s, NULL) "
                "ON CONFLICT (experiment_id, variant_id) DO NOTHING", (experiment_id, variant_id),
            )
            row = conn.execute(select, (experiment_id, variant_id)).fetchone()
        state = update(bytes(row[0]) if row[0] is not None else None)
        conn.execute("UPDATE model_state SET state = %s WHERE experiment_id = %s AND variant_id = %s",
                     (state, experiment_id, variant_id))

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
                                                   model_update), (1, assignment.id))

    @staticmethod
    def _insert_reward(assignment: StoredAssignment, value: float, event_id: str | None, binary: bool, now: float,
                       model_update: ModelUpdate | None, batch: Batch) -> RewardResult:
        conn = batch.conn
        # Re-read under the row lock: another worker may have rewarded it meanwhile.
        total, count, segments_json, stored_shift = conn.execute(
            f"SELECT reward_total, reward_count, segments, {STORED_SHIFT_COLUMN} FROM assignments "
            "WHERE id = %s FOR UPDATE", (assignment.id,),
        ).fetchone()
        if binary and count > 0:
            return RewardResult(accepted=False, reward_total=total, reward_count=count)
        row = conn.execute(
            "INSERT INTO rewards (assignment_id, experiment_id, value, event_id, created_at) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (assignment_id, event_id) DO NOTHING RETURNING id",
            (assignment.id, assignment.experiment_id, value, event_id, now),
        ).fetchone()
        if row is None:  # the same event_id was seen before
            return RewardResult(accepted=False, reward_total=total, reward_count=count)
        batch.tx.witness = ("rewards", row[0])
        new_total, new_count = total + value, count + 1
        conn.execute("UPDATE assignments SET reward_total = %s, reward_count = %s WHERE id = %s",
                     (new_total, new_count, assignment.id))
        shift = 0.0 if binary else reward_shift_for(PostgresTx(conn, batch.tx), assignment.experiment_id, value,
                                                    stored_shift, serialise=_SERIALISE_WITH_REBUILD)
        arm_values, segment_values = records.reward_increments(total, count, value, assignment.propensity, shift)
        batch.counters.add_arm(assignment.experiment_id, assignment.variant_id, assignment.holdout,
                               period_of(assignment.created_at), arm_values)
        if segments_json:
            batch.counters.add_segments(assignment.experiment_id, assignment.variant_id, assignment.holdout,
                                        json.loads(segments_json), segment_values)
        if model_update is not None:
            batch.updates.append((assignment.experiment_id, assignment.variant_id, model_update))
        return RewardResult(accepted=True, reward_total=new_total, reward_count=new_count)

    # -- learning and analysis reads ---------------------------------------------------------
    @staticmethod
    def _events_batch(conn: psycopg.Connection, experiment_id: int, after_id: int, batch_size: int) -> list[tuple]:
        return conn.execute(
            f"SELECT {records.EVENT_COLUMNS} FROM assignments a JOIN variants v ON v.id = a.variant_id "
            "WHERE a.experiment_id = %s AND a.id > %s ORDER BY a.id LIMIT %s", (experiment_id, after_id, batch_size)
        ).fetchall()

    def iter_events(self, experiment_id: int, batch_size: int = 1000) -> Iterator[dict[str, Any]]:
        """One connection per batch, held only while the batch is read (a slow consumer holds none)."""
        return records.events(lambda after_id: self._run(
            lambda conn, _tx: self._events_batch(conn, experiment_id, after_id, batch_size), write=False))

    def _iter_events_on(self, conn: psycopg.Connection, experiment_id: int,
                        batch_size: int = 1000) -> Iterator[dict[str, Any]]:
        return records.events(lambda after_id: self._events_batch(conn, experiment_id, after_id, batch_size))

    @staticmethod
    def _rewards_for_rebuild_on(conn: psycopg.Connection, experiment_id: int) -> list[tuple[int, float, float]]:
        return conn.execute(
            "SELECT assignment_id, value, created_at FROM rewards WHERE experiment_id = %s ORDER BY id",
            (experiment_id,),
        ).fetchall()

    def rewards_for_rebuild(self, experiment_id: int) -> list[tuple[int, float, float]]:
        """(assignment_id, value, created_at) of every reward, in arrival order."""
        return self._run(lambda conn, _tx: self._rewards_for_rebuild_on(conn, experiment_id), write=False)

    # -- privacy and retention -----------------------------------------------------------
    def erase_visitor(self, visitor: str, model_removal: ModelRemoval | None = None,
                      audit: AuditEntry | None = None) -> int:
        """The visitor's assignment rows are locked first (as a reward locks its assignment
        before counters), so an erase and a concurrent reward queue instead of deadlocking.
        Idempotent: after an ambiguous commit the retry finds nothing left (and returns 0);
        with an audit entry, its row settles the commit instead (no second entry).
        """
        def body(conn: psycopg.Connection, tx: TxInfo) -> int:
            conn.execute(_SERIALISE_WITH_REBUILD)  # the reward shifts read below stay those of the counters
            rows = conn.execute(
                f"SELECT {records.ERASE_COLUMNS} FROM assignments WHERE visitor = %s ORDER BY id FOR UPDATE", (visitor,)
            ).fetchall()
            conn.execute(placeholders(ERASE_EVENTS_SQL), (visitor,))
            maybe_audit(PostgresTx(conn, tx), audit)
            if not rows:
                return 0
            for experiment_id in sorted({row[1] for row in rows}):  # no fold of theirs runs meanwhile
                conn.execute(f"SELECT pg_advisory_xact_lock(%s::integer, {fold_lock_key('%s')})",
                             (FOLD_LOCK, experiment_id))
            erase_values(PostgresTx(conn, tx), [row[0] for row in rows], self._PERIOD_OF)
            counters = Counters()
            removals: list[tuple[int, int, int, ModelUpdate]] = []
            for erased in records.erasures(rows):
                counters.add_arms(erased.experiment_id, erased.holdout, erased.period, erased.arms)
                counters.add_segments(erased.experiment_id, erased.variant_id, erased.holdout, erased.segments,
                                      erased.segment_values)
                update = erased.model_update(model_removal)
                if update is not None:
                    removals.append((erased.experiment_id, erased.variant_id, erased.assignment_id, update))
            counters.flush(conn)
            for experiment_id, variant_id, _id, update in sorted(removals, key=lambda r: r[:3]):
                self._update_model_state(conn, experiment_id, variant_id, update)
            ids = [row[0] for row in rows]
            conn.execute("DELETE FROM rewards WHERE assignment_id = ANY(%s)", (ids,))
            conn.execute("DELETE FROM assignments WHERE id = ANY(%s)", (ids,))
            return len(rows)

        return self._run(body, write=True, idempotent=audit is None)

    def prune_events(self, before: float) -> int:
        """Idempotent (a retry after an ambiguous commit deletes nothing more and returns 0)."""
        def body(conn: psycopg.Connection, tx: TxInfo) -> int:
            conn.execute("SET LOCAL statement_timeout = 0")
            conn.execute("DELETE FROM rewards WHERE assignment_id IN "
                         "(SELECT id FROM assignments WHERE created_at < %s)", (before,))
            deleted = conn.execute("DELETE FROM assignments WHERE created_at < %s", (before,)).rowcount
            conn.execute(placeholders(PRUNE_EVENTS_SQL), (before,))
            conn.execute("SET LOCAL lock_timeout = '120s'")  # a running rebuild finishes first
            conn.execute(f"SELECT pg_advisory_xact_lock(%s::integer, {fold_lock_key('id')}) FROM experiments "
                         "ORDER BY id", (FOLD_LOCK,))
            forget_all(PostgresTx(conn, tx))
            if deleted:
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('pruned_before', %s) ON CONFLICT (key) DO UPDATE "
                    "SET value = GREATEST(meta.value::double precision, excluded.value::double precision)::text",
                    (repr(float(before)),),
                )
            return deleted

        return self._run(body, write=True, idempotent=True)

    def rebuild_arm_stats(self, experiment: Experiment, model_rebuild: Callable[..., Any] | None = None) -> None:
        """The SHARE ROW EXCLUSIVE lock on arm_stats makes concurrent event writers wait at their
        counter update until this commits; their events are not in the recomputed sums (not yet
        committed when read) and their increments land on top of them afterwards, so nothing is
        lost or counted twice. A reward that may meet an unset reward shift, and every erasure,
        take a lock this one excludes before reading the shift (``_SERIALISE_WITH_REBUILD``), so the
        shift this rebuild chooses (``sql.rebuild_shift``) is the one their increments use."""
        if self.get_meta("pruned_before") is not None:
            raise PrunedLog("raw events were pruned (LEVER_RETENTION_DAYS): the counters can no longer be rebuilt")
        period = f"(floor(created_at / {PERIOD_SECONDS}))::bigint * {PERIOD_SECONDS}"

        def body(conn: psycopg.Connection, _tx: TxInfo) -> None:
            conn.execute("SET LOCAL statement_timeout = 0")
            conn.execute("LOCK TABLE arm_stats, segment_stats IN SHARE ROW EXCLUSIVE MODE")
            conn.execute("DELETE FROM arm_stats WHERE experiment_id = %s", (experiment.id,))
            conn.execute("DELETE FROM segment_stats WHERE experiment_id = %s", (experiment.id,))
            shift = rebuild_shift(PostgresTx(conn, _tx), experiment)
            # outcome sums over the rewarded assignments only, of z = reward_total - K (base.ArmTotals)
            z = "CASE WHEN reward_count > 0 THEN reward_total - %(k)s ELSE 0 END"
            rewarded = "CASE WHEN reward_count > 0 THEN 1.0 ELSE 0 END"
            conn.execute(
                "INSERT INTO arm_stats (experiment_id, variant_id, holdout, period, shard, assignments, conversions, "
                "reward_events, reward_sum, reward_sumsq, expected_assignments, inv_propensity_sum, "
                "inv_propensity_sumsq, ips_reward_sum, ips_reward_sumsq, ips_cross_sum, rewarded_inv_sum, "
                "rewarded_inv_sumsq) "
                f"SELECT experiment_id, variant_id, holdout, {period}, 0, COUNT(*), SUM((reward_count > 0)::int), "
                f"SUM(reward_count), SUM({z}), SUM(({z}) * ({z})), 0, SUM(1.0 / propensity), "
                f"SUM(1.0 / (propensity * propensity)), SUM(({z}) / propensity), "
                f"SUM(({z}) * ({z}) / (propensity * propensity)), "
                f"SUM(({z}) / (propensity * propensity)), SUM({rewarded} / propensity), "
                f"SUM({rewarded} / (propensity * propensity)) "
                "FROM assignments WHERE experiment_id = %(id)s GROUP BY experiment_id, variant_id, holdout, 4",
                {"k": shift, "id": experiment.id}
            )
            # expected counts: sum of every variant's probability over the decisions of each slice
            conn.execute(
                "INSERT INTO arm_stats (experiment_id, variant_id, holdout, period, shard, expected_assignments) "
                f"SELECT a.experiment_id, p.key::bigint, a.holdout, {period}, 0, SUM(p.value::double precision) "
                "FROM assignments a, jsonb_each_text(a.probabilities::jsonb) p WHERE a.experiment_id = %s "
                "GROUP BY a.experiment_id, p.key::bigint, a.holdout, 4 "
                "ON CONFLICT (experiment_id, variant_id, holdout, period, shard) "
                "DO UPDATE SET expected_assignments = excluded.expected_assignments", (experiment.id,)
            )
            segment_z = "CASE WHEN a.reward_count > 0 THEN a.reward_total - %(k)s ELSE 0 END"
            conn.execute(
                "INSERT INTO segment_stats (experiment_id, feature, level, variant_id, holdout, shard, assignments, "
                "conversions, reward_sum, reward_sumsq) "
                "SELECT a.experiment_id, s.key, s.value, a.variant_id, a.holdout, 0, COUNT(*), "
                f"SUM((a.reward_count > 0)::int), SUM({segment_z}), SUM(({segment_z}) * ({segment_z})) "
                "FROM assignments a, jsonb_each_text(a.segments::jsonb) s "
                "WHERE a.experiment_id = %(id)s AND a.segments IS NOT NULL GROUP BY 1, 2, 3, 4, 5",
                {"k": shift, "id": experiment.id}
            )
            if model_rebuild is not None:
                conn.execute("DELETE FROM model_state WHERE experiment_id = %s", (experiment.id,))
                states = model_rebuild(self._iter_events_on(conn, experiment.id),
                                       self._rewards_for_rebuild_on(conn, experiment.id))
                for variant_id, state in sorted(states.items()):
                    conn.execute("INSERT INTO model_state (experiment_id, variant_id, state) VALUES (%s, %s, %s)",
                                 (experiment.id, variant_id, state))

        self._run(body, write=True, idempotent=True)
