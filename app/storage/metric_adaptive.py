"""Per-hour metric sums for the adaptive (every-visitor) estimators, both backends.

Under bandit and contextual allocation each exposed visitor i was served with the logged
propensity p_i of its exposure, so the AIPW estimators of ``stats.metric_adaptive`` need,
per (hour period of the exposure t0, variant, slice) and per conversion/count/sum metric,

    n, Σ1/p, Σ1/p², Σy, Σy², Σy/p, Σy²/p², Σy/p²

(the fields of ``stats.inputs.SliceAggregate``; the policy's expected assignments come from
the reward counters, ``period_totals``). One statement, a GROUP BY of the per-visitor
relation, the live ``metrics.per_visitor_sql``, on PostgreSQL (whose fold lag leaves a tail), and on
SQLite one GROUP BY of the folded ``metric_values`` rows per (hour, variant, slice, metric) (every
exposure has a row per metric, so no pivot per visitor) — also carries the five
plain sums per metric; ``slice_sums`` adds the period rows up to per-slice ``MetricSums`` (a check
against ``metric_sums``; the stats take the shifted, stable per-slice sums from ``metric_sums``).

Ratio metrics get only their five sums (their all-visitor estimator is not offered, see
``stats.metric_adaptive``). The period is ``base.period_of(t0)``, written per dialect
(``_PERIOD_OF_T0``: SQLite truncates a positive CAST, PostgreSQL rounds it, so it floors).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Sequence

from ..domain.experiments import Experiment
from ..domain.metrics import MetricDefinition
from .base import PERIOD_SECONDS
from .metrics import RATIO_FIELDS, SUM_FIELDS, MetricSums, per_visitor_sql

#: Σy/p, Σy²/p², Σy/p² of a non-ratio metric, in row order after its five sums
IPS_FIELDS = ("ips_reward_sum", "ips_reward_sumsq", "ips_cross_sum")


@dataclass(frozen=True)
class MetricPeriodSums:
    """One (hour period, variant, slice) of an experiment's exposed visitors."""

    period: int
    variant_id: int
    holdout: bool
    visitors: int
    inv_propensity_sum: float
    inv_propensity_sumsq: float
    metrics: tuple[MetricSums, ...]  # per definition, in the order asked
    #: per definition: (Σy/p, Σy²/p², Σy/p²), None for a ratio
    ips: tuple[tuple[float, float, float] | None, ...]


def metric_period_sql(experiment: Experiment, definitions: Sequence[MetricDefinition], scalar_min: str,
                      period_of_t0: str) -> tuple[str, list[Any]]:
    """The per-hour statement over the live per-visitor relation (the reference; the folded
    ``metric_values`` rows give the same sums by ``_MATERIALISED_PERIOD_SUMS``)."""
    outer = ["COUNT(*)", "SUM(1.0 / p)", "SUM(1.0 / (p * p))"]
    for index, definition in enumerate(definitions):
        if definition.type == "ratio":
            a, b = f"a{index}", f"b{index}"
            outer += [f"SUM({a})", f"SUM({a} * {a})", f"SUM({b})", f"SUM({b} * {b})", f"SUM({a} * {b})"]
            continue
        y, x = f"y{index}", f"x{index}"
        outer += [f"SUM({y})", f"SUM({y} * {y})", f"SUM({x})", f"SUM({x} * {x})", f"SUM({x} * {y})",
                  f"SUM({y} / p)", f"SUM({y} * {y} / (p * p))", f"SUM({y} / (p * p))"]
    per_visitor, params = per_visitor_sql(experiment, definitions, scalar_min)
    sql = (f"SELECT {period_of_t0} AS period, v, h, {', '.join(outer)} FROM ({per_visitor}) per_visitor "
           "GROUP BY 1, 2, 3 ORDER BY 1, 2, 3")
    return sql, params


def _row(row: Sequence[Any], definitions: Sequence[MetricDefinition]) -> MetricPeriodSums:
    variant_id, holdout, visitors = int(row[1]), bool(row[2]), int(row[3])
    at = 6
    metrics: list[MetricSums] = []
    ips: list[tuple[float, float, float] | None] = []
    for definition in definitions:
        names = RATIO_FIELDS if definition.type == "ratio" else SUM_FIELDS
        values = [float(v or 0.0) for v in row[at: at + 5]]
        metrics.append(MetricSums(variant_id, holdout, visitors, **dict(zip(names, values))))
        at += 5
        if definition.type == "ratio":
            ips.append(None)
            continue
        s, q, x = (float(v or 0.0) for v in row[at: at + 3])
        ips.append((s, q, x))
        at += 3
    return MetricPeriodSums(int(row[0]), variant_id, holdout, visitors, float(row[4] or 0.0),
                            float(row[5] or 0.0), tuple(metrics), tuple(ips))


def slice_sums(rows: Sequence[MetricPeriodSums], definitions: Sequence[MetricDefinition]) -> dict[str, list[MetricSums]]:
    """``MetricStore.metric_sums`` from the period rows: per metric, each (variant, slice) summed."""
    out: dict[str, list[MetricSums]] = {}
    for index, definition in enumerate(definitions):
        cells: dict[tuple[int, bool], MetricSums] = {}
        for row in rows:
            part = row.metrics[index]
            key = (part.variant_id, part.holdout)
            if key not in cells:
                cells[key] = part
                continue
            seen = cells[key]
            cells[key] = replace(seen, visitors=seen.visitors + part.visitors, **{
                name: getattr(seen, name) + getattr(part, name) for name in (*SUM_FIELDS, *RATIO_FIELDS)})
        out[definition.key] = [cells[key] for key in sorted(cells)]
    return out


#: per (period, variant, slice, metric) over the materialised rows: n, Σ1/p, Σ1/p², the five sums of
#: (fy, fx) — (y, x) of a conversion/count/sum metric, (a, b) of a ratio — and Σy/p, Σy²/p², Σy/p²
_MATERIALISED_PERIOD_SUMS = (
    "SELECT {period} AS period, variant_id, holdout, metric_key, COUNT(*), SUM(1.0 / propensity), "
    "SUM(1.0 / (propensity * propensity)), SUM(fy), SUM(fy * fy), SUM(fx), SUM(fx * fx), SUM(fx * fy), "
    "SUM(fy / propensity), SUM(fy * fy / (propensity * propensity)), SUM(fy / (propensity * propensity)) "
    "FROM metric_values WHERE experiment_id = ? AND metric_key IN ({keys}) GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3")


def materialised_period_sums(rows: Sequence[Sequence[Any]],
                             definitions: Sequence[MetricDefinition]) -> list[MetricPeriodSums] | None:
    """The rows of ``_MATERIALISED_PERIOD_SUMS`` as ``MetricPeriodSums`` (None when the metrics'
    rows do not cover the same exposures, e.g. one of them is being rebuilt: read live instead).
    Every exposure has one row per metric, so one GROUP BY of the rows needs no pivot per visitor."""
    cells: dict[tuple[int, int, bool], dict[str, Sequence[Any]]] = {}
    for row in rows:
        cells.setdefault((int(row[0]), int(row[1]), bool(row[2])), {})[row[3]] = row
    out = []
    for (period, variant_id, holdout), by_key in cells.items():
        if set(by_key) != {d.key for d in definitions} or len({int(r[4]) for r in by_key.values()}) != 1:
            return None
        first = by_key[definitions[0].key]
        visitors = int(first[4])
        metrics, ips = [], []
        for definition in definitions:
            values = [float(v or 0.0) for v in by_key[definition.key][7:15]]
            names = RATIO_FIELDS if definition.type == "ratio" else SUM_FIELDS
            metrics.append(MetricSums(variant_id, holdout, visitors, **dict(zip(names, values[:5]))))
            ips.append(None if definition.type == "ratio" else (values[5], values[6], values[7]))
        out.append(MetricPeriodSums(period, variant_id, holdout, visitors, float(first[5] or 0.0),
                                    float(first[6] or 0.0), tuple(metrics), tuple(ips)))
    return out


class MetricAdaptiveStore:
    """Mixin next to ``MetricStore``: needs the backend's ``_read`` and ``_SCALAR_MIN``."""

    _PERIOD_OF_T0 = f"CAST(t0 / {PERIOD_SECONDS} AS INTEGER) * {PERIOD_SECONDS}"  # SQLite: t0 > 0 truncates

    def metric_period_sums(self, experiment: Experiment,
                           definitions: Sequence[MetricDefinition]) -> list[MetricPeriodSums]:
        """Every (hour period, variant, slice) with exposed visitors, oldest first (one statement).

        Where folds leave no tail (SQLite: ``fold_lag_s`` 0, every committed row is folded by
        ``fold_metrics``) it reads the materialised per-visitor rows; PostgreSQL leaves rows younger
        than its fold lag to a read-time tail, so there it runs the exact live statement."""
        if not definitions:
            return []
        if self.fold_lag_s == 0:  # type: ignore[attr-defined]
            self.fold_metrics(experiment, definitions)  # type: ignore[attr-defined]
            keys = [d.key for d in definitions]
            sql = _MATERIALISED_PERIOD_SUMS.format(period=self._PERIOD_OF_T0, keys=", ".join("?" for _ in keys))
            found = materialised_period_sums(self._read(sql, [experiment.id, *keys]),  # type: ignore[attr-defined]
                                             definitions)
            if found is not None:
                return found
        sql, params = metric_period_sql(experiment, definitions, self._SCALAR_MIN,  # type: ignore[attr-defined]
                                        self._PERIOD_OF_T0)
        return [_row(row, definitions) for row in self._read(sql, params)]  # type: ignore[attr-defined]
