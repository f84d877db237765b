"""The metric catalogue, per-metric aggregates, guardrail actions and leases, written once
for both backends (``MetricStore`` is a base of ``SQLiteStorage`` and ``PostgresStorage``).

The aggregate (``metric_sums``) is one statement for every metric of an experiment, a GROUP BY
of the per-visitor relation ``per_visitor_sql`` (which also carries each exposure's propensity):

    exposures e      the visitor's first assignment in the experiment (sticky experiments
                     have one row per visitor; otherwise the lowest id per visitor), with
                     its variant, slice and time t0
    LEFT JOIN events the visitor's events of the metrics' names with
                     t0 - max(cuped_window_s) <= ts <= t0 + max(delay_s + window_s)
                     (the (visitor, name, ts, value) index answers each seek)
    GROUP BY e       one row per exposed visitor: per metric its value y (conversion:
                     any event in the window; count; sum of values; ratio: the numerator a
                     and denominator b), capped with the scalar minimum, and its CUPED
                     pre-period value x (the same metric over [t0 - cuped_window_s, t0))
    GROUP BY slice   n, Σy, Σy², Σx, Σx², Σxy (ratio: Σa, Σa², Σb, Σb², Σab) per
                     (variant, holdout)

so no event ever reaches Python. The only dialect difference is the name of the
two-argument scalar minimum (SQLite ``MIN``, PostgreSQL ``LEAST``): ``_SCALAR_MIN``.

That live statement is the reference. ``metric_sums`` reads the materialised values
instead (``metric_fold``: folded incrementally, sums shifted by each metric's mean, plus
the exact tail of what is not folded yet); a metric whose materialisation is not current
(another worker is rebuilding it) falls back to the live statement. ``materialised_sql``
serves the same per-visitor relation from the materialised rows.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Sequence

from ..domain.audit import AuditEntry
from ..domain.experiments import Experiment
from ..domain.metrics import (
    ExperimentMetrics,
    MetricDefinition,
    RatioPart,
    metric_from_dict,
)
from .base import DuplicateKey
from .metric_fold import (
    MORE,
    SKIPPED,
    SLICE_SUMS,
    SQLITE_PERIOD_OF,
    STATES_SQL,
    Dialect,
    FoldState,
    fingerprint,
    fold,
    snapshot_sql,
    states_from_rows,
)
from .sql import Tx, maybe_audit

#: the five sums per metric, in row order after (variant_id, holdout, visitors)
SUM_FIELDS = ("value_sum", "value_sumsq", "pre_sum", "pre_sumsq", "pre_cross_sum")
RATIO_FIELDS = ("numerator_sum", "numerator_sumsq", "denominator_sum", "denominator_sumsq", "cross_sum")
#: how long a rebuild waits before trying again for the fold lock another folder holds
REBUILD_WAIT_S = 0.2
#: reads of the watermarks and the snapshot before a metric that keeps being folded meanwhile goes live
SNAPSHOT_TRIES = 3


@dataclass(frozen=True)
class MetricSums:
    """Sums over the exposed visitors of one variant in one slice, for one metric
    (the fields of ``stats.metric_inputs.MetricSlice``; unused ones stay 0)."""

    variant_id: int
    holdout: bool
    visitors: int
    value_sum: float = 0.0
    value_sumsq: float = 0.0
    numerator_sum: float = 0.0
    numerator_sumsq: float = 0.0
    denominator_sum: float = 0.0
    denominator_sumsq: float = 0.0
    cross_sum: float = 0.0
    pre_sum: float = 0.0
    pre_sumsq: float = 0.0
    pre_cross_sum: float = 0.0
    #: the sums are of (value - shift): value_*, pre_*, numerator_*, denominator_* (issue #16)
    value_shift: float = 0.0
    pre_shift: float = 0.0
    numerator_shift: float = 0.0
    denominator_shift: float = 0.0

    def unshifted(self) -> "MetricSums":
        """The plain sums (Σy, Σy², ...; loses the precision the shifts keep): with K the shift,
        Σy = Σ(y-K) + nK, Σy² = Σ(y-K)² + 2KΣ(y-K) + nK², Σxy = Σ(x-L)(y-K) + LΣ(y-K) + KΣ(x-L) + nLK."""
        n = self.visitors

        def plain(total: float, squares: float, shift: float) -> tuple[float, float]:
            return total + n * shift, squares + 2 * shift * total + n * shift * shift

        value_sum, value_sumsq = plain(self.value_sum, self.value_sumsq, self.value_shift)
        pre_sum, pre_sumsq = plain(self.pre_sum, self.pre_sumsq, self.pre_shift)
        numerator_sum, numerator_sumsq = plain(self.numerator_sum, self.numerator_sumsq, self.numerator_shift)
        denominator_sum, denominator_sumsq = plain(self.denominator_sum, self.denominator_sumsq,
                                                   self.denominator_shift)
        ky, kx, ka, kb = self.value_shift, self.pre_shift, self.numerator_shift, self.denominator_shift
        return MetricSums(
            self.variant_id, self.holdout, n, value_sum, value_sumsq, numerator_sum, numerator_sumsq,
            denominator_sum, denominator_sumsq,
            self.cross_sum + kb * self.numerator_sum + ka * self.denominator_sum + n * ka * kb,
            pre_sum, pre_sumsq, self.pre_cross_sum + kx * self.value_sum + ky * self.pre_sum + n * kx * ky)


def shifted_sums(definition: MetricDefinition, variant_id: int, holdout: bool, visitors: int,
                  sums: Sequence[float], shift_y: float, shift_x: float) -> MetricSums:
    """Slice sums (Σ(fy-K), Σ(fy-K)², Σ(fx-L), Σ(fx-L)², Σ(fx-L)(fy-K)) as the fields of the type."""
    if definition.type == "ratio":
        return MetricSums(variant_id, holdout, visitors, **dict(zip(RATIO_FIELDS, sums)),
                          numerator_shift=shift_y, denominator_shift=shift_x)
    return MetricSums(variant_id, holdout, visitors, **dict(zip(SUM_FIELDS, sums)),
                      value_shift=shift_y, pre_shift=shift_x)


@dataclass(frozen=True)
class GuardrailAction:
    experiment_id: int
    metric: str
    variant: str
    action: str
    at: float
    evidence: dict[str, Any]


def _capped(expression: str, cap: float | None, scalar_min: str, params: list[Any]) -> str:
    if cap is None:
        return expression
    params.append(cap)
    return f"{scalar_min}({expression}, ?)"


def _window_sum(name: str, amount: str, low: str, high: str, params: list[Any], bounds: Sequence[float]) -> str:
    """SUM over the joined events of ``name`` with t0 + bounds[0] <= ts ``high`` t0 + bounds[1]."""
    params.extend((name, *bounds))
    return f"SUM(CASE WHEN ev.name = ? AND ev.ts {low} e.t0 + ? AND ev.ts {high} e.t0 + ? THEN {amount} ELSE 0 END)"


def _value(definition: MetricDefinition, event: str, amount: str, pre: bool, scalar_min: str,
           params: list[Any]) -> str:
    """A visitor's value of one event stream: in the window after t0, or (pre) the CUPED pre-period."""
    if pre:
        bounds, high = (-float(definition.cuped_window_s), 0.0), "<"
    else:
        bounds, high = (float(definition.delay_s), float(definition.delay_s + definition.window_s)), "<="
    if definition.type == "conversion":
        params.extend((event, *bounds))
        return f"MAX(CASE WHEN ev.name = ? AND ev.ts >= e.t0 + ? AND ev.ts {high} e.t0 + ? THEN 1 ELSE 0 END)"
    return _capped(_window_sum(event, amount, ">=", high, params, bounds), definition.cap, scalar_min, params)


def _part(definition: MetricDefinition, part: RatioPart, scalar_min: str, params: list[Any]) -> str:
    amount = "ev.value" if part.aggregate == "sum" else "1"
    return _value(definition, part.event, amount, False, scalar_min, params)


def per_visitor_columns(definitions: Sequence[MetricDefinition]) -> list[str]:
    """The value columns of ``per_visitor_sql``, in order: per metric i ``y{i}`` and ``x{i}``
    (the CUPED pre-period value), or for a ratio ``a{i}`` and ``b{i}``."""
    return [column for index, definition in enumerate(definitions)
            for column in ((f"a{index}", f"b{index}") if definition.type == "ratio" else (f"y{index}", f"x{index}"))]


def per_visitor_sql(experiment: Experiment, definitions: Sequence[MetricDefinition],
                    scalar_min: str) -> tuple[str, list[Any]]:
    """One row per exposed visitor: ``id`` (the exposure's assignment id), ``v`` (variant id),
    ``h`` (holdout), ``t0``, ``p`` (the exposure's logged propensity), then the value columns of
    ``per_visitor_columns`` (capped). The relation every metric aggregate is a GROUP BY of."""
    inner: list[str] = []
    inner_params: list[Any] = []
    for index, definition in enumerate(definitions):
        if definition.type == "ratio":
            assert definition.numerator is not None and definition.denominator is not None
            a = _part(definition, definition.numerator, scalar_min, inner_params)
            b = _part(definition, definition.denominator, scalar_min, inner_params)
            inner += [f"{a} AS a{index}", f"{b} AS b{index}"]
            continue
        amount = "1" if definition.type == "count" else "ev.value"
        y = _value(definition, definition.event or "", amount, False, scalar_min, inner_params)
        x = _value(definition, definition.event or "", amount, True, scalar_min, inner_params)
        inner += [f"{y} AS y{index}", f"{x} AS x{index}"]
    names = sorted({name for definition in definitions for name in definition.events})
    before = float(max(d.cuped_window_s for d in definitions))
    after = float(max(d.delay_s + d.window_s for d in definitions))
    if experiment.sticky:  # one assignment per visitor: it is the exposure
        exposures = ("SELECT id, visitor, variant_id, holdout, propensity, created_at AS t0 FROM assignments "
                     "WHERE experiment_id = ?")
    else:  # the visitor's first assignment decides variant, slice and t0
        exposures = ("SELECT a.id, a.visitor, a.variant_id, a.holdout, a.propensity, a.created_at AS t0 "
                     "FROM assignments a JOIN (SELECT MIN(id) AS first_id FROM assignments WHERE experiment_id = ? "
                     "GROUP BY visitor) f ON f.first_id = a.id")
    sql = (
        f"SELECT e.id AS id, e.variant_id AS v, e.holdout AS h, e.t0 AS t0, e.propensity AS p, {', '.join(inner)} "
        f"FROM ({exposures}) e "
        f"LEFT JOIN events ev ON ev.visitor = e.visitor AND ev.name IN ({', '.join('?' for _ in names)}) "
        "AND ev.ts >= e.t0 - ? AND ev.ts <= e.t0 + ? "
        "GROUP BY e.id, e.variant_id, e.holdout, e.t0, e.propensity"
    )
    return sql, [*inner_params, experiment.id, *names, before, after]


def metric_sums_sql(experiment: Experiment, definitions: Sequence[MetricDefinition],
                    scalar_min: str) -> tuple[str, list[Any]]:
    """The one aggregate statement (``?`` placeholders) and its parameters (module docstring)."""
    outer: list[str] = []
    for index, definition in enumerate(definitions):
        if definition.type == "ratio":  # Σa, Σa², Σb, Σb², Σab
            outer += [f"SUM(a{index})", f"SUM(a{index} * a{index})", f"SUM(b{index})", f"SUM(b{index} * b{index})",
                      f"SUM(a{index} * b{index})"]
        else:  # Σy, Σy², Σx, Σx², Σxy
            outer += [f"SUM(y{index})", f"SUM(y{index} * y{index})", f"SUM(x{index})", f"SUM(x{index} * x{index})",
                      f"SUM(x{index} * y{index})"]
    per_visitor, params = per_visitor_sql(experiment, definitions, scalar_min)
    sql = f"SELECT v, h, COUNT(*), {', '.join(outer)} FROM ({per_visitor}) per_visitor GROUP BY v, h ORDER BY v, h"
    return sql, params


def materialised_sql(experiment: Experiment, definitions: Sequence[MetricDefinition]) -> tuple[str, list[Any]]:
    """``per_visitor_sql``'s relation (id, v, h, t0, p, then ``per_visitor_columns``) from the
    materialised values, as of the last fold (its tail is not in it: fold first)."""
    columns = per_visitor_columns(definitions)
    picks = [f"MAX(CASE WHEN metric_key = ? THEN {'fy' if i % 2 == 0 else 'fx'} END) AS {column}"
             for i, column in enumerate(columns)]
    params: list[Any] = [definitions[i // 2].key for i in range(len(columns))]
    sql = (f"SELECT assignment_id AS id, variant_id AS v, holdout AS h, t0, propensity AS p, {', '.join(picks)} "
           f"FROM metric_values WHERE experiment_id = ? AND metric_key IN ({', '.join('?' for _ in definitions)}) "
           "GROUP BY assignment_id, variant_id, holdout, t0, propensity")
    return sql, [*params, experiment.id, *(d.key for d in definitions)]


class MetricStore:
    """Mixin: needs the backend's ``_read``, ``_transact``, ``_SCALAR_MIN`` and ``_FOLD_LOCK_SQL``."""

    _SCALAR_MIN = "MIN"
    #: ``base.period_of`` of a column ``{t0}`` in the backend's SQL
    _PERIOD_OF = SQLITE_PERIOD_OF
    #: PostgreSQL: the advisory lock that serialises folders (None: the write transaction does)
    _FOLD_LOCK_SQL: str | None = None
    #: PostgreSQL: rows younger than this are left to the read-time tail (``metric_fold``)
    fold_lag_s = 0.0
    #: new exposures folded per transaction (SQLite: short write transactions; None: all at once)
    fold_chunk: int | None = 20_000

    # -- the catalogue --------------------------------------------------------------------
    @staticmethod
    def _definition_json(definition: MetricDefinition) -> str:
        data = definition.to_dict()
        data.pop("created_at")
        data.pop("updated_at")
        return json.dumps(data, sort_keys=True)

    def create_metric(self, definition: MetricDefinition, now: float,
                      audit: AuditEntry | None = None) -> MetricDefinition:
        def body(tx: Tx) -> int:
            created = tx.execute("INSERT INTO metrics (key, definition, created_at, updated_at) VALUES (?, ?, ?, ?) "
                                 "ON CONFLICT (key) DO NOTHING",
                                 (definition.key, self._definition_json(definition), now, now)).rowcount
            if created:
                maybe_audit(tx, audit)
            return created

        if self._transact(body, idempotent=False) == 0:  # type: ignore[attr-defined]
            raise DuplicateKey(definition.key)
        created = self.get_metric(definition.key)
        assert created is not None
        return created

    def update_metric(self, definition: MetricDefinition, now: float,
                      audit: AuditEntry | None = None) -> MetricDefinition | None:
        def body(tx: Tx) -> int:
            changed = tx.execute("UPDATE metrics SET definition = ?, updated_at = ? WHERE key = ?",
                                 (self._definition_json(definition), now, definition.key)).rowcount
            if changed:
                maybe_audit(tx, audit)
            return changed

        if self._transact(body, idempotent=audit is None) == 0:  # type: ignore[attr-defined]
            return None
        return self.get_metric(definition.key)

    @staticmethod
    def _metrics(rows: Sequence[Sequence[Any]]) -> list[MetricDefinition]:
        return [metric_from_dict({**json.loads(definition), "created_at": created, "updated_at": updated})
                for _key, definition, created, updated in rows]

    def get_metric(self, key: str) -> MetricDefinition | None:
        found = self._metrics(self._read(  # type: ignore[attr-defined]
            "SELECT key, definition, created_at, updated_at FROM metrics WHERE key = ?", (key,)))
        return found[0] if found else None

    def list_metrics(self, keys: Sequence[str] | None = None) -> list[MetricDefinition]:
        if keys is None:
            return self._metrics(self._read(  # type: ignore[attr-defined]
                "SELECT key, definition, created_at, updated_at FROM metrics ORDER BY key"))
        if not keys:
            return []
        return self._metrics(self._read(  # type: ignore[attr-defined]
            "SELECT key, definition, created_at, updated_at FROM metrics WHERE key IN "
            f"({', '.join('?' for _ in keys)}) ORDER BY key", tuple(keys)))

    # -- an experiment's metrics ----------------------------------------------------------
    def set_experiment_metrics(self, experiment_id: int, metrics: ExperimentMetrics, now: float,
                               audit: AuditEntry | None = None) -> None:
        """Replace the experiment's ``metrics`` (kept in its options JSON), in one transaction."""
        def body(tx: Tx) -> None:
            row = tx.execute("SELECT options FROM experiments WHERE id = ?", (experiment_id,)).fetchone()
            options = json.loads(row[0]) if row and row[0] else {}
            options["metrics"] = metrics.to_dict()
            tx.execute("UPDATE experiments SET options = ?, updated_at = ? WHERE id = ?",
                       (json.dumps(options), now, experiment_id))
            maybe_audit(tx, audit)

        self._transact(body, idempotent=audit is None)  # type: ignore[attr-defined]

    def fold_metrics(self, experiment: Experiment, definitions: Sequence[MetricDefinition],
                     now: float | None = None, rebuild: bool = False) -> bool:
        """Fold what is final into the materialised values (``metric_fold.fold``), one chunk of
        new exposures per transaction until caught up; False when another worker is folding.
        ``rebuild``: build every metric again from scratch (waits for a running fold to let go)."""
        dialect = Dialect(self._SCALAR_MIN, self.fold_lag_s, self._FOLD_LOCK_SQL, self._PERIOD_OF, self.fold_chunk)
        at = time.time() if now is None else now
        first = [rebuild]

        def body(tx: Tx) -> str:
            self._fold_setup(tx)
            return fold(tx, experiment, definitions, dialect, at, rebuild=first[0])

        outcome = MORE
        while outcome == MORE or (first[0] and outcome == SKIPPED):
            if outcome == SKIPPED:  # a rebuild waits for the other folder's transaction
                time.sleep(REBUILD_WAIT_S)
            outcome = self._transact(body, idempotent=True)  # type: ignore[attr-defined]
            if outcome != SKIPPED:
                first[0] = False
        return outcome != SKIPPED

    def _fold_setup(self, tx: Tx) -> None:
        """Backend settings of a fold transaction (PostgreSQL: no statement timeout for a rebuild)."""

    def _read_seeking(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        """A read whose joins should seek indexes (PostgreSQL: planner settings; SQLite does)."""
        return self._read(sql, params)  # type: ignore[attr-defined]

    def metric_sums(self, experiment: Experiment,
                    definitions: Sequence[MetricDefinition]) -> dict[str, list[MetricSums]]:
        """Per metric key: the sums of every (variant, slice) with exposed visitors: the folded
        slices plus the exact tail, read in one statement (module docstring)."""
        if not definitions:
            return {}
        current, cells = self.folded_cells(experiment, definitions, by_period=False)
        found: dict[str, list[MetricSums]] = {d.key: [] for d in definitions}
        for (index, variant_id, holdout, _period), totals in sorted(cells.items()):
            if index in current and round(totals[0]) > 0:
                found[definitions[index].key].append(shifted_sums(
                    definitions[index], variant_id, bool(holdout), int(round(totals[0])), totals[1:6],
                    *current[index]))
        stale = [d for i, d in enumerate(definitions) if i not in current]
        if stale:  # being rebuilt by another worker: the live statement
            found.update(self.live_metric_sums(experiment, stale))
        return found

    def folded_cells(self, experiment: Experiment, definitions: Sequence[MetricDefinition], by_period: bool
                     ) -> tuple[dict[int, tuple[float, float]], dict[tuple[int, int, int, int], list[float]]]:
        """Fold, then read the slices and their tail in one snapshot (``snapshot_sql``): per metric
        index its shifts (K, L) where its state is current (absent: being rebuilt elsewhere), per
        (index, variant, slice, hour of t0 — 0 unless ``by_period``) the ``SLICE_SUMS``."""
        self.fold_metrics(experiment, definitions)
        for _ in range(SNAPSHOT_TRIES):
            states = states_from_rows(self._read(STATES_SQL, (experiment.id,)))  # type: ignore[attr-defined]
            current, cells = self._snapshot(experiment, definitions, states, by_period)
            expected = {i for i, d in enumerate(definitions)
                        if d.key in states and states[d.key].fingerprint == fingerprint(d)}
            if expected <= set(current):
                break  # every current metric read its watermarks unchanged (else a fold committed between)
        return current, cells

    def _snapshot(self, experiment: Experiment, definitions: Sequence[MetricDefinition],
                  states: dict[str, FoldState], by_period: bool
                  ) -> tuple[dict[int, tuple[float, float]], dict[tuple[int, int, int, int], list[float]]]:
        """``snapshot_sql``'s rows: per metric index its shifts (where current), per (index,
        variant, slice, period) the sums, slices and tail added."""
        current: dict[int, tuple[float, float]] = {}
        cells: dict[tuple[int, int, int, int], list[float]] = {}
        sql, params = snapshot_sql(experiment, definitions, states, self._SCALAR_MIN, self._PERIOD_OF, by_period)
        if not sql:
            return current, cells
        for row in self._read_seeking(sql, params):
            index, variant_id, holdout = int(row[0]), int(row[1]), int(row[2])
            if variant_id == -1:
                current[index] = (float(row[7]), float(row[8]))
                continue
            period = int(row[3]) if by_period else 0
            totals = cells.setdefault((index, variant_id, holdout, period), [0.0] * len(SLICE_SUMS))
            for i, value in enumerate(row[4:4 + len(SLICE_SUMS)]):
                totals[i] += float(value or 0.0)
        return current, cells

    def live_metric_sums(self, experiment: Experiment,
                         definitions: Sequence[MetricDefinition]) -> dict[str, list[MetricSums]]:
        """The same sums from the live reference statement (``metric_sums_sql``), unshifted."""
        if not definitions:
            return {}
        sql, params = metric_sums_sql(experiment, definitions, self._SCALAR_MIN)
        rows = self._read(sql, params)  # type: ignore[attr-defined]
        found: dict[str, list[MetricSums]] = {d.key: [] for d in definitions}
        for row in rows:
            variant_id, holdout, visitors = row[0], bool(row[1]), int(row[2])
            for index, definition in enumerate(definitions):
                values = [float(v or 0.0) for v in row[3 + 5 * index: 8 + 5 * index]]
                names = RATIO_FIELDS if definition.type == "ratio" else SUM_FIELDS
                found[definition.key].append(MetricSums(variant_id, holdout, visitors, **dict(zip(names, values))))
        return found

    # -- guardrail actions ----------------------------------------------------------------
    def record_guardrail_action(self, experiment_id: int, metric: str, variant: str, action: str, at: float,
                                evidence: dict[str, Any], audit: AuditEntry | None = None) -> bool:
        """Record an action once per (experiment, metric, variant, action); ``stop_variant`` also adds the
        variant to the experiment's stopped variants, in the same transaction. True when new."""
        def body(tx: Tx) -> bool:
            inserted = tx.execute(
                "INSERT INTO guardrail_actions (experiment_id, metric, variant, action, at, evidence) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (experiment_id, metric, variant, action) DO NOTHING",
                (experiment_id, metric, variant, action, at, json.dumps(evidence, allow_nan=False)),
            ).rowcount
            if inserted and action == "stop_variant":
                row = tx.execute("SELECT stopped_variants FROM experiments WHERE id = ?", (experiment_id,)).fetchone()
                stopped = json.loads(row[0]) if row and row[0] else []
                if variant not in stopped:
                    tx.execute("UPDATE experiments SET stopped_variants = ?, updated_at = ? WHERE id = ?",
                               (json.dumps(stopped + [variant]), at, experiment_id))
            if inserted:
                maybe_audit(tx, audit)
            return bool(inserted)

        return self._transact(body, idempotent=True)  # type: ignore[attr-defined]

    def guardrail_actions(self, experiment_id: int) -> list[GuardrailAction]:
        rows = self._read(  # type: ignore[attr-defined]
            "SELECT experiment_id, metric, variant, action, at, evidence FROM guardrail_actions "
            "WHERE experiment_id = ? ORDER BY id", (experiment_id,))
        return [GuardrailAction(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]) if r[5] else {}) for r in rows]

    # -- leases ---------------------------------------------------------------------------
    def take_lease(self, name: str, holder: str, now: float, ttl_s: float) -> bool:
        """True when ``holder`` now holds lease ``name`` until now + ttl_s (it was free or expired):
        one process per interval, across workers and instances, runs what the lease guards."""
        def body(tx: Tx) -> int:
            return tx.execute(
                "INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE "
                "SET holder = excluded.holder, expires_at = excluded.expires_at WHERE leases.expires_at <= ?",
                (name, holder, now + ttl_s, now),
            ).rowcount

        return self._transact(body, idempotent=True) > 0  # type: ignore[attr-defined]
