"""The materialised per-visitor metric values, maintained incrementally (issue #15).

Three tables (schema v7), written once for both backends:

    metric_values  one row per (experiment, metric, exposure): variant, slice, t0, propensity,
                   the *raw* additive amounts y and x (conversion and count: the number of
                   matching events; sum: their values; ratio: y = numerator, x = denominator;
                   x of the other types: the same amount over the CUPED pre-period) and the
                   visitor's metric values fy = f(y), fx = f(x) (conversion: y > 0, count
                   and sum: capped, ratio: each part capped), exactly what the live
                   ``metrics.per_visitor_sql`` computes per visitor.
    metric_slices  per (experiment, metric, variant, slice, hour of t0) (schema v9): n, Σ(fy-K),
                   Σ(fy-K)², Σ(fx-L), Σ(fx-L)², Σ(fx-L)(fy-K) and, for the adaptive estimators
                   under a bandit, Σ1/p, Σ1/p², Σ(fy-K)/p, Σ(fy-K)²/p², Σ(fy-K)/p² with p the
                   exposure's logged propensity (``SLICE_SUMS``), kept current with every change
                   of metric_values, so a stats request reads a few rows per hour (no GROUP BY
                   over visitors). Every sum is additive: a slice's sums are its hours' sums.
    metric_state   per (experiment, metric): the definition's fingerprint (what changes the
                   per-visitor values: events, type, window, delay, cap, CUPED window), the
                   watermarks ``events_through`` / ``assignments_through`` (ids folded) and
                   the shifts K, L (below).

The fold. With ew, aw the watermarks and E, A the new targets, one fold adds

    (1) events with id in (ew, E]  ×  exposures with id <= aw   (already materialised)
    (2) exposures with id in (aw, A]  ×  events with id <= E     (new rows, zeros included)

as *delta rows* (exposure, Δy, Δx), a GROUP BY of the joined pairs. Folded before:
(exposure <= aw, event <= ew); (1) and (2) are disjoint and together with it cover every
pair (exposure <= A, event <= E): each (exposure, event) pair is counted exactly once. An
event belongs to a visitor's exposure when its name is the metric's and its ts lies in the
metric's window around t0 (ts before t0 — backfilled — included: the pre-period), whatever
order the rows arrived in. For (1) the slices of the hour of each touched row's t0 change by
f(new) - f(old) (and the weighted sums by the same over p or p²: an exposure's p and t0 never
change; an upsert that adds), then metric_values adds the deltas; (2) only inserts rows (none
exists above the watermark), whose slice sums are then read back from them. A definition
change, a metric new to the experiment or an experiment with nothing materialised yet
rebuilds the metric (from watermarks 0: (2) alone), like ``rebuild=True`` (``flask
rebuild-stats``). A fold takes at most ``Dialect.chunk`` new exposures per transaction (a
build of a million exposures is fifty transactions of 20,000, each one index seek per
exposure and metric, on both backends) and says MORE until it has caught up. Folders are
serialised: SQLite folds in its write transaction (BEGIN IMMEDIATE); PostgreSQL takes the
advisory lock (namespace, hash of schema and experiment id) with pg_try_advisory_xact_lock, and a request that
cannot get it skips the fold.

Which ids are final. SQLite commits one writer at a time and a row's id is given inside
the write transaction, so every id <= MAX(id) is visible; the one hole is id reuse (an
INTEGER PRIMARY KEY takes MAX(id)+1): erasure lowers the watermarks to the newest
remaining ids (``lower_watermarks``). PostgreSQL hands out sequence values before commit:
a transaction holding a lower id may commit after a higher id is visible. Its target is
therefore E = the largest visible id below the smallest *young* visible id above the
watermark (young: created_at > now - lag). Claim: no id <= E becomes visible later,
provided a row commits within D of its created_at (the app's clock; statement_timeout
15 s, idle_in_transaction 60 s and one retry bound it) and lag >= 2D + clock skew.
Proof: let i <= E commit after the fold at time F. Then i < j for a visible old id j <= E
(E itself is visible and old). i was drawn before j, and i's transaction began after
c_i >= F - D (it commits after F, within D of c_i), so j was drawn after F - D, and j's
created_at c_j >= F - 2D > F - lag: j is young — a contradiction. (``FOLD_LAG_S`` = 300:
D <= 2 min, skew <= 1 min.)

Reads are exact anyway: ``metric_sums`` reads the watermarks, then, in one statement (one
snapshot on both backends), each metric's slices plus its *tail*: the delta rows of
(ew, ∞) × (<= aw) and (aw, ∞) × all, corrected against the stored rows exactly as a fold
would, and the state row only where the watermarks are still those (else it reads again). Shifts: the
sums are of (f - K) with K, L the metric's mean fy, fx over the visitors materialised at
its (re)build (0 for conversion, whose sums are counts), so Σ(f-K)² stays small for large
near-constant values (issue #16); ``stats.metric_inputs.MetricSlice`` carries K and L.

Floating point: a visitor's sums are added in fold order rather than the live
statement's order, so they equal the live values exactly when the additions are exact
(integers, values in binary fractions); otherwise to the last bits.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Sequence

from ..domain.experiments import Experiment
from ..domain.metrics import MetricDefinition
from .base import PERIOD_SECONDS
from .sql import Tx

#: PostgreSQL folds only rows older than this (module docstring); SQLite needs no lag
FOLD_LAG_S = 300.0
#: PostgreSQL advisory lock namespace of the folders ('Lv' 'mf'); key 2: ``fold_lock_key``
FOLD_LOCK = 0x4C76_6D66


def fold_lock_key(experiment_id_sql: str) -> str:
    """Key 2 of an experiment's fold lock: a hash of (schema, experiment id). Advisory locks
    belong to the database, and every schema of it (instances, test runs) has an experiment 1."""
    return f"hashtext(coalesce(current_schema(), '') || ':' || CAST({experiment_id_sql} AS text))"
#: above every id: the open upper bound of the read-time tail
NO_LIMIT = 2 ** 62
#: the slice sums in column order: n, Σ(fy-K), Σ(fy-K)², Σ(fx-L), Σ(fx-L)², Σ(fx-L)(fy-K), then the
#: propensity sums of the adaptive estimators: Σ1/p, Σ1/p², Σ(fy-K)/p, Σ(fy-K)²/p², Σ(fy-K)/p²
SLICE_SUMS = ("visitors", "s_y", "s_yy", "s_x", "s_xx", "s_xy", "s_w", "s_ww", "s_yw", "s_yyww", "s_yww")
#: ``base.period_of`` of a t0 column as SQL, written as a floor on both: SQLite's CAST truncates
#: towards zero (one hour less below zero where it truncated), PostgreSQL's ::bigint rounds
SQLITE_PERIOD_OF = (f"((CAST({{t0}} / {PERIOD_SECONDS} AS INTEGER) - ({{t0}} < CAST({{t0}} / {PERIOD_SECONDS} "
                    f"AS INTEGER) * {PERIOD_SECONDS})) * {PERIOD_SECONDS})")
POSTGRES_PERIOD_OF = f"((floor({{t0}} / {PERIOD_SECONDS}))::bigint * {PERIOD_SECONDS})"


@dataclass(frozen=True)
class Dialect:
    """What differs between the backends: the scalar minimum, the fold's serialisation and the hour's SQL."""

    scalar_min: str  # "MIN" (SQLite) | "LEAST" (PostgreSQL)
    lag_s: float  # 0: every visible id is final (SQLite)
    lock_sql: str | None  # returns one boolean: this transaction may fold the experiment
    period_of: str  # the hour of a t0 column ``{t0}`` (SQLITE_PERIOD_OF | POSTGRES_PERIOD_OF)
    chunk: int | None = None  # at most this many new exposures per transaction (None: all)


#: what one fold transaction did: another folder holds the lock, caught up, or more to do
SKIPPED, DONE, MORE = "skipped", "done", "more"


@dataclass(frozen=True)
class FoldState:
    fingerprint: str
    events_through: int
    assignments_through: int
    shift_y: float
    shift_x: float


def fingerprint(definition: MetricDefinition) -> str:
    """What the per-visitor values depend on (name and direction do not matter)."""
    data = definition.to_dict()
    for name in ("key", "name", "higher_is_better", "created_at", "updated_at"):
        data.pop(name)
    return json.dumps(data, sort_keys=True)


# -- SQL builders --------------------------------------------------------------------------

def value_expr(definition: MetricDefinition, column: str, scalar_min: str, params: list[Any]) -> str:
    """f(raw amount): the visitor's metric value as the live statement computes it."""
    if definition.type == "conversion":
        return f"(CASE WHEN {column} > 0 THEN 1 ELSE 0 END)"
    if definition.cap is None:
        return column
    params.append(definition.cap)
    return f"{scalar_min}({column}, ?)"


def _amounts(definition: MetricDefinition, params: list[Any]) -> tuple[str, str]:
    """SUM expressions of Δy and Δx over joined (exposure a, event ev) pairs."""
    start, end = float(definition.delay_s), float(definition.delay_s + definition.window_s)
    if definition.type == "ratio":
        assert definition.numerator is not None and definition.denominator is not None
        parts = []
        for part in (definition.numerator, definition.denominator):
            amount = "ev.value" if part.aggregate == "sum" else "1"
            params.extend((part.event, start, end))
            parts.append(f"SUM(CASE WHEN ev.name = ? AND ev.ts >= a.created_at + ? AND ev.ts <= a.created_at + ? "
                         f"THEN {amount} ELSE 0 END)")
        return parts[0], parts[1]
    amount = "ev.value" if definition.type == "sum" else "1"
    params.extend((start, end, -float(definition.cuped_window_s)))
    return (f"SUM(CASE WHEN ev.ts >= a.created_at + ? AND ev.ts <= a.created_at + ? THEN {amount} ELSE 0 END)",
            f"SUM(CASE WHEN ev.ts >= a.created_at + ? AND ev.ts < a.created_at THEN {amount} ELSE 0 END)")


def _range(definition: MetricDefinition) -> tuple[float, float]:
    before = 0.0 if definition.type == "ratio" else float(definition.cuped_window_s)
    return before, float(definition.delay_s + definition.window_s)


@dataclass(frozen=True)
class Bounds:
    """(low, high] id ranges as SQL expressions with their parameters."""

    events_low: tuple[str, Sequence[Any]]
    events_high: tuple[str, Sequence[Any]]
    assignments_low: tuple[str, Sequence[Any]]
    assignments_high: tuple[str, Sequence[Any]]


def fixed_bounds(ev_low: int, ev_high: int, as_low: int, as_high: int) -> Bounds:
    return Bounds(("?", (ev_low,)), ("?", (ev_high,)), ("?", (as_low,)), ("?", (as_high,)))


def delta_sql(experiment: Experiment, definition: MetricDefinition, bounds: Bounds) -> tuple[str, list[Any]]:
    """Delta rows (id, v, h, t0, p, dy, dx): pairs (1) and (2) of the module docstring."""
    params: list[Any] = []
    names = definition.events
    before, after = _range(definition)
    exposure = ("" if experiment.sticky else
                " AND NOT EXISTS (SELECT 1 FROM assignments o WHERE o.visitor = a.visitor "
                "AND o.experiment_id = a.experiment_id AND o.id < a.id)")
    name_in = f"ev.name IN ({', '.join('?' for _ in names)})"
    columns = "a.id, a.variant_id, a.holdout, a.created_at, a.propensity"
    dy, dx = _amounts(definition, params)
    ev_low, ev_high = bounds.events_low, bounds.events_high
    as_low, as_high = bounds.assignments_low, bounds.assignments_high
    new_events = (
        f"SELECT {columns}, {dy} AS dy, {dx} AS dx FROM events ev JOIN assignments a ON a.visitor = ev.visitor "
        f"AND a.experiment_id = ? AND a.id <= {as_low[0]} AND ev.ts >= a.created_at - ? "
        f"AND ev.ts <= a.created_at + ?{exposure} "
        f"WHERE ev.id > {ev_low[0]} AND ev.id <= {ev_high[0]} AND {name_in} GROUP BY {columns}")
    params += [experiment.id, *as_low[1], before, after, *ev_low[1], *ev_high[1], *names]
    dy2, dx2 = _amounts(definition, params)
    new_exposures = (
        f"SELECT {columns}, {dy2} AS dy, {dx2} AS dx FROM assignments a LEFT JOIN events ev "
        f"ON ev.visitor = a.visitor AND {name_in} AND ev.ts >= a.created_at - ? AND ev.ts <= a.created_at + ? "
        f"AND ev.id <= {ev_high[0]} "
        f"WHERE a.experiment_id = ? AND a.id > {as_low[0]} AND a.id <= {as_high[0]}{exposure} GROUP BY {columns}")
    params += [*names, before, after, *ev_high[1], experiment.id, *as_low[1], *as_high[1]]
    sql = (f"SELECT id, variant_id AS v, holdout AS h, created_at AS t0, propensity AS p, dy, dx "
           f"FROM ({new_events} UNION ALL {new_exposures}) d")
    return sql, params


def _shifted(expression: str, shift: str) -> str:
    return f"({expression} - {shift})"


def correction_sql(experiment: Experiment, definition: MetricDefinition, bounds: Bounds, scalar_min: str,
                   shifts: tuple[str, Sequence[Any]], period_of: str, label: str = "") -> tuple[str, list[Any]]:
    """Per (v, h, hour of t0): what the delta rows change in the slice sums, f(new) - f(old) of
    every touched visitor (a new one: n + 1, Σ1/p, Σ1/p² of its propensity p and its f(new)
    alone); the propensity-weighted sums change by the same difference over p or p² (the
    exposure's p and t0 never change). ``shifts``: an SQL source of columns ``ky``, ``kx`` (one
    row). ``label``: leading constant columns (e.g. the metric's index)."""
    delta, params = delta_sql(experiment, definition, bounds)
    new_params: list[Any] = []
    new_y = value_expr(definition, "(COALESCE(mv.y, 0) + d.dy)", scalar_min, new_params)
    new_x = value_expr(definition, "(COALESCE(mv.x, 0) + d.dx)", scalar_min, new_params)
    ny, nx, oy, ox = (_shifted(new_y, "k.ky"), _shifted(new_x, "k.kx"), _shifted("mv.fy", "k.ky"),
                      _shifted("mv.fx", "k.kx"))
    sums = ["SUM(CASE WHEN mv.assignment_id IS NULL THEN 1 ELSE 0 END)"]
    for new, old in ((ny, oy), (f"{ny} * {ny}", f"{oy} * {oy}"), (nx, ox), (f"{nx} * {nx}", f"{ox} * {ox}"),
                     (f"{nx} * {ny}", f"{ox} * {oy}")):
        sums.append(f"SUM({new} - COALESCE({old}, 0))")
    sums += ["SUM(CASE WHEN mv.assignment_id IS NULL THEN 1.0 / d.p ELSE 0 END)",
             "SUM(CASE WHEN mv.assignment_id IS NULL THEN 1.0 / (d.p * d.p) ELSE 0 END)",
             f"SUM(({ny} - COALESCE({oy}, 0)) / d.p)",
             f"SUM(({ny} * {ny} - COALESCE({oy} * {oy}, 0)) / (d.p * d.p))",
             f"SUM(({ny} - COALESCE({oy}, 0)) / (d.p * d.p))"]
    # every placeholder of ny / nx appears once per use: repeat their parameters in textual order
    uses = [ny, ny, ny, nx, nx, nx, nx, ny,  # s_y, s_yy (2), s_x, s_xx (2), s_xy (nx, ny)
            ny, ny, ny, ny]  # s_yw, s_yyww (2), s_yww
    expr_params: list[Any] = []
    y_params = new_params[: len(new_params) // 2]
    x_params = new_params[len(new_params) // 2:]
    for use in uses:
        expr_params += y_params if use is ny else x_params
    period = period_of.format(t0="d.t0")
    sql = (f"SELECT {label}d.v, d.h, {period}, {', '.join(sums)} FROM ({delta}) d CROSS JOIN ({shifts[0]}) k "
           "LEFT JOIN metric_values mv ON mv.experiment_id = ? AND mv.metric_key = ? AND mv.variant_id = d.v "
           f"AND mv.holdout = d.h AND mv.assignment_id = d.id GROUP BY d.v, d.h, {period}")
    return sql, [*expr_params, *params, *shifts[1], experiment.id, definition.key]


_SLICE_UPSERT = (
    f"INSERT INTO metric_slices (experiment_id, metric_key, variant_id, holdout, period, {', '.join(SLICE_SUMS)}) "
    "{select} ON CONFLICT (experiment_id, metric_key, variant_id, holdout, period) DO UPDATE SET "
    + ", ".join(f"{name} = metric_slices.{name} + excluded.{name}" for name in SLICE_SUMS)
)
#: the slice sums of metric_values rows ``mv`` about shifts ``{ky}``, ``{kx}`` (SQL; Σ of each)
_ROW_SUMS = ("{sign}COUNT(*), {sign}SUM(mv.fy - {ky}), {sign}SUM((mv.fy - {ky}) * (mv.fy - {ky})), "
             "{sign}SUM(mv.fx - {kx}), {sign}SUM((mv.fx - {kx}) * (mv.fx - {kx})), "
             "{sign}SUM((mv.fx - {kx}) * (mv.fy - {ky})), {sign}SUM(1.0 / mv.propensity), "
             "{sign}SUM(1.0 / (mv.propensity * mv.propensity)), {sign}SUM((mv.fy - {ky}) / mv.propensity), "
             "{sign}SUM((mv.fy - {ky}) * (mv.fy - {ky}) / (mv.propensity * mv.propensity)), "
             "{sign}SUM((mv.fy - {ky}) / (mv.propensity * mv.propensity))")


# -- the fold --------------------------------------------------------------------------------

def read_state(tx: Tx, experiment_id: int, key: str) -> FoldState | None:
    row = tx.execute("SELECT fingerprint, events_through, assignments_through, shift_y, shift_x FROM metric_state "
                     "WHERE experiment_id = ? AND metric_key = ?", (experiment_id, key)).fetchone()
    return None if row is None else FoldState(row[0], int(row[1]), int(row[2]), float(row[3]), float(row[4]))


def _target(tx: Tx, table: str, low: int, cutoff: float | None) -> int:
    """The largest id every id at or below which is final (module docstring)."""
    if cutoff is None:
        return max(low, int(tx.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table}").fetchone()[0]))
    young = tx.execute(f"SELECT MIN(id) FROM {table} WHERE id > ? AND created_at > ?", (low, cutoff)).fetchone()[0]
    if young is None:
        found = tx.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table}").fetchone()[0]
    else:
        found = tx.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table} WHERE id < ?", (young,)).fetchone()[0]
    return max(low, int(found))


def _values_upsert(experiment: Experiment, definition: MetricDefinition, bounds: Bounds,
                   scalar_min: str, new_rows: bool = False) -> tuple[str, list[Any]]:
    """Add the delta rows to metric_values. ``new_rows``: only exposures above the watermark,
    which have no row yet: a plain INSERT (a row there would be a bug: it fails, never adds twice)."""
    delta, params = delta_sql(experiment, definition, bounds)
    f_params: list[Any] = []
    fy = value_expr(definition, "d.dy", scalar_min, f_params)
    fx = value_expr(definition, "d.dx", scalar_min, f_params)
    sql = ("INSERT INTO metric_values (experiment_id, metric_key, variant_id, holdout, assignment_id, t0, "
           f"propensity, y, x, fy, fx) SELECT ?, ?, d.v, d.h, d.id, d.t0, d.p, d.dy, d.dx, {fy}, {fx} "
           f"FROM ({delta}) d")
    if new_rows:
        return sql, [experiment.id, definition.key, *f_params, *params]
    u_params: list[Any] = []
    uy = value_expr(definition, "(metric_values.y + excluded.y)", scalar_min, u_params)
    ux = value_expr(definition, "(metric_values.x + excluded.x)", scalar_min, u_params)
    sql += (" WHERE true ON CONFLICT (experiment_id, metric_key, variant_id, holdout, assignment_id) "
            f"DO UPDATE SET y = metric_values.y + excluded.y, x = metric_values.x + excluded.x, fy = {uy}, fx = {ux}")
    return sql, [experiment.id, definition.key, *f_params, *params, *u_params]


def _slices_from_values(tx: Tx, key: tuple[int, str], low: int, high: int, ky: float, kx: float,
                        period_of: str) -> None:
    """Add the rows of exposures (low, high] to the slices of their t0's hour: they were all new
    (n + 1 each). ``+experiment_id`` keeps the planners off the primary key (whose prefix would
    read every row of the metric, once per chunk: quadratic) and on the (assignment_id) index's range."""
    period = period_of.format(t0="mv.t0")
    sums = _ROW_SUMS.format(sign="", ky="?", kx="?")
    tx.execute(_SLICE_UPSERT.format(select=(
        f"SELECT mv.experiment_id, mv.metric_key, mv.variant_id, mv.holdout, {period}, {sums} FROM metric_values mv "
        "WHERE +mv.experiment_id = ? AND mv.metric_key = ? AND mv.assignment_id > ? AND mv.assignment_id <= ? "
        f"GROUP BY mv.experiment_id, mv.metric_key, mv.variant_id, mv.holdout, {period}")),
        (ky, ky, ky, kx, kx, kx, kx, ky, ky, ky, ky, ky, *key, low, high))


def _rebuild(tx: Tx, experiment: Experiment, definition: MetricDefinition, ev: int, asg: int,
             dialect: Dialect) -> None:
    key = (experiment.id, definition.key)
    for table in ("metric_values", "metric_slices"):
        tx.execute(f"DELETE FROM {table} WHERE experiment_id = ? AND metric_key = ?", key)
    tx.execute(*_values_upsert(experiment, definition, fixed_bounds(0, ev, 0, asg), dialect.scalar_min,
                               new_rows=True))
    if definition.type == "conversion":  # the sums are counts: exact without a shift
        ky, kx = 0.0, 0.0
    else:  # the first pass: each value's mean over the visitors (the shift of issue #16)
        row = tx.execute("SELECT AVG(fy), AVG(fx) FROM metric_values WHERE experiment_id = ? AND metric_key = ?",
                         key).fetchone()
        ky, kx = float(row[0] or 0.0), float(row[1] or 0.0)
    _slices_from_values(tx, key, 0, asg, ky, kx, dialect.period_of)
    tx.execute("INSERT INTO metric_state (experiment_id, metric_key, fingerprint, events_through, "
               "assignments_through, shift_y, shift_x) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT "
               "(experiment_id, metric_key) DO UPDATE SET fingerprint = excluded.fingerprint, "
               "events_through = excluded.events_through, assignments_through = excluded.assignments_through, "
               "shift_y = excluded.shift_y, shift_x = excluded.shift_x",
               (*key, fingerprint(definition), ev, asg, ky, kx))


def _advance(tx: Tx, experiment: Experiment, definition: MetricDefinition, state: FoldState, ev: int, asg: int,
             dialect: Dialect) -> None:
    """Pairs (1) and (2) of the module docstring in two steps. (1), the new events of stored
    exposures, changes stored rows: the slices take f(new) - f(old) (``correction_sql``), then
    the rows add the deltas. (2), the new exposures, only adds rows (none exists above the
    watermark): they are inserted and their slice sums read back from them, one pass over
    the events (a chunked build is all (2))."""
    aw, scalar_min = state.assignments_through, dialect.scalar_min
    if ev > state.events_through:
        bounds = fixed_bounds(state.events_through, ev, aw, aw)
        correction, params = correction_sql(experiment, definition, bounds, scalar_min,
                                            ("SELECT ? AS ky, ? AS kx", (state.shift_y, state.shift_x)),
                                            dialect.period_of, label="?, ?, ")
        tx.execute(_SLICE_UPSERT.format(select=f"SELECT * FROM ({correction}) c WHERE true"),
                   [experiment.id, definition.key, *params])
        tx.execute(*_values_upsert(experiment, definition, bounds, scalar_min))
    if asg > aw:
        tx.execute(*_values_upsert(experiment, definition, fixed_bounds(ev, ev, aw, asg), scalar_min, new_rows=True))
        _slices_from_values(tx, (experiment.id, definition.key), aw, asg, state.shift_y, state.shift_x,
                            dialect.period_of)
    tx.execute("UPDATE metric_state SET events_through = ?, assignments_through = ? "
               "WHERE experiment_id = ? AND metric_key = ?", (ev, asg, experiment.id, definition.key))


def _empty(tx: Tx, experiment_id: int, key: str) -> bool:
    row = tx.execute("SELECT COALESCE(SUM(visitors), 0) FROM metric_slices WHERE experiment_id = ? "
                     "AND metric_key = ?", (experiment_id, key)).fetchone()
    return int(row[0]) == 0


def _chunk_end(tx: Tx, experiment_id: int, low: int, target: int, chunk: int | None) -> int:
    """The id of the ``chunk``-th assignment of the experiment above ``low`` (at most ``target``)."""
    if chunk is None:
        return target
    row = tx.execute("SELECT id FROM assignments WHERE experiment_id = ? AND id > ? AND id <= ? ORDER BY id "
                     "LIMIT 1 OFFSET ?", (experiment_id, low, target, chunk - 1)).fetchone()
    return target if row is None else int(row[0])


def fold(tx: Tx, experiment: Experiment, definitions: Sequence[MetricDefinition], dialect: Dialect,
         now: float, rebuild: bool = False) -> str:
    """Bring every metric of the experiment up to the final ids (module docstring), at most
    ``dialect.chunk`` new exposures at a time (SQLite: a rebuild of a million exposures is many
    short write transactions, so writers wait seconds, not a minute): DONE, MORE (call again)
    or SKIPPED (another transaction is folding it; the read then computes the tail).
    ``rebuild``: every metric is built again from scratch (its first chunk in this transaction)."""
    if dialect.lock_sql is not None and not tx.execute(dialect.lock_sql, (FOLD_LOCK, experiment.id)).fetchone()[0]:
        return SKIPPED
    states = {d.key: None if rebuild else read_state(tx, experiment.id, d.key) for d in definitions}
    low_ev = min((s.events_through for s in states.values() if s is not None), default=0)
    low_as = min((s.assignments_through for s in states.values() if s is not None), default=0)
    cutoff = None if dialect.lag_s <= 0 else now - dialect.lag_s
    events_to, assignments_to = _target(tx, "events", low_ev, cutoff), _target(tx, "assignments", low_as, cutoff)
    outcome = DONE
    for definition in definitions:
        state = states[definition.key]
        if state is None or state.fingerprint != fingerprint(definition) or _empty(tx, experiment.id, definition.key):
            asg = _chunk_end(tx, experiment.id, 0, assignments_to, dialect.chunk)
            _rebuild(tx, experiment, definition, events_to, asg, dialect)
        else:
            ev = max(events_to, state.events_through)
            asg = _chunk_end(tx, experiment.id, state.assignments_through,
                             max(assignments_to, state.assignments_through), dialect.chunk)
            if (ev, asg) != (state.events_through, state.assignments_through):
                _advance(tx, experiment, definition, state, ev, asg, dialect)
        if asg < assignments_to:
            outcome = MORE
    return outcome


# -- reads ------------------------------------------------------------------------------------

#: every metric state of an experiment (``states_from_rows`` reads the rows)
STATES_SQL = ("SELECT metric_key, fingerprint, events_through, assignments_through, shift_y, shift_x "
              "FROM metric_state WHERE experiment_id = ?")


def states_from_rows(rows: Sequence[Sequence[Any]]) -> dict[str, FoldState]:
    return {row[0]: FoldState(row[1], int(row[2]), int(row[3]), float(row[4]), float(row[5])) for row in rows}


def snapshot_sql(experiment: Experiment, definitions: Sequence[MetricDefinition], states: dict[str, FoldState],
                 scalar_min: str, period_of: str, by_period: bool = False) -> tuple[str, list[Any]]:
    """One statement (one snapshot): per metric index i with a current state in ``states``, its
    state row (v = -1: shifts as s_x, s_xx) only if the stored watermarks are still the ones
    given, its slice rows (``by_period``: per hour of t0; else each slice's hours added up, as
    period 0), and its tail corrections from those watermarks (per hour). The watermarks are
    literals so that the planner sees how few rows lie above them (as subqueries it hashed
    every exposure to meet a few hundred new events); a fold that committed since ``states``
    was read shows as a missing state row (read again). Columns: i, v, h, period, SLICE_SUMS."""
    parts: list[str] = []
    params: list[Any] = []
    zeros = ", ".join("0.0" for _ in SLICE_SUMS[5:])
    if by_period:
        slices = f"period, {', '.join(SLICE_SUMS)} FROM metric_slices WHERE experiment_id = ? AND metric_key = ?"
    else:
        slices = (f"0, {', '.join(f'SUM({name})' for name in SLICE_SUMS)} FROM metric_slices "
                  "WHERE experiment_id = ? AND metric_key = ? GROUP BY variant_id, holdout")
    for index, definition in enumerate(definitions):
        state = states.get(definition.key)
        if state is None or state.fingerprint != fingerprint(definition):
            continue
        key = (experiment.id, definition.key)
        parts.append(f"SELECT {index}, -1, -1, 0, 0, 0.0, 0.0, shift_y, shift_x, {zeros} FROM metric_state "
                     "WHERE experiment_id = ? AND metric_key = ? AND fingerprint = ? AND events_through = ? "
                     "AND assignments_through = ?")
        params += [*key, state.fingerprint, state.events_through, state.assignments_through]
        parts.append(f"SELECT {index}, variant_id, holdout, {slices}")
        params += key
        shifts = ("SELECT shift_y AS ky, shift_x AS kx FROM metric_state WHERE experiment_id = ? AND metric_key = ?",
                  key)
        bounds = fixed_bounds(state.events_through, NO_LIMIT, state.assignments_through, NO_LIMIT)
        correction, more = correction_sql(experiment, definition, bounds, scalar_min, shifts, period_of,
                                          label=f"{index}, ")
        parts.append(f"SELECT * FROM ({correction}) t{index}")
        params += more
    return " UNION ALL ".join(parts), params


# -- erasure and retention ----------------------------------------------------------------------

def erase_values(tx: Tx, assignment_ids: Sequence[int], period_of: str) -> None:
    """Take erased exposures out of the slices (of their t0's hour) and the materialised values
    (same transaction as the erasure; PostgreSQL callers hold the fold locks of the experiments involved)."""
    if not assignment_ids:
        return
    marks = ", ".join("?" for _ in assignment_ids)
    period = period_of.format(t0="mv.t0")
    tx.execute(_SLICE_UPSERT.format(select=(
        f"SELECT mv.experiment_id, mv.metric_key, mv.variant_id, mv.holdout, {period}, "
        f"{_ROW_SUMS.format(sign='-', ky='s.shift_y', kx='s.shift_x')} "
        "FROM metric_values mv JOIN metric_state s ON s.experiment_id = mv.experiment_id "
        f"AND s.metric_key = mv.metric_key WHERE mv.assignment_id IN ({marks}) "
        f"GROUP BY mv.experiment_id, mv.metric_key, mv.variant_id, mv.holdout, {period}")), tuple(assignment_ids))
    tx.execute(f"DELETE FROM metric_values WHERE assignment_id IN ({marks})", tuple(assignment_ids))


def lower_watermarks(tx: Tx) -> None:
    """SQLite after deletions: ids above the newest remaining row may be handed out again."""
    for column, table in (("events_through", "events"), ("assignments_through", "assignments")):
        tx.execute(f"UPDATE metric_state SET {column} = (SELECT COALESCE(MAX(id), 0) FROM {table}) "
                   f"WHERE {column} > (SELECT COALESCE(MAX(id), 0) FROM {table})")


def forget_all(tx: Tx) -> None:
    """Retention pruned events and exposures (a pruned first exposure hands the visitor's t0 to
    the next assignment; pruned events leave windows): every metric is rebuilt when next read."""
    for table in ("metric_state", "metric_slices", "metric_values"):
        tx.execute(f"DELETE FROM {table}")
