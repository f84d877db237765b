"""Per-hour metric sums for the adaptive (every-visitor) estimators, both backends.

Under bandit and contextual allocation each exposed visitor i was served with the logged
propensity p_i of its exposure, so the AIPW estimators of ``stats.metric_adaptive`` need,
per (hour period of the exposure t0, variant, slice) and per conversion/count/sum metric,

    n, Σ1/p, Σ1/p², Σy, Σy², Σy/p, Σy²/p², Σy/p²

(the fields of ``stats.inputs.SliceAggregate``; the policy's expected assignments come from
the reward counters, ``period_totals``). The fold maintains them: ``metric_slices`` is kept per
(metric, variant, slice, hour of t0) and carries, besides the shifted sums Σ(y-K), Σ(y-K)², ...,
Σ1/p, Σ1/p², Σ(y-K)/p, Σ(y-K)²/p², Σ(y-K)/p² (``metric_fold``); a read is one snapshot of those
rows plus the period-wise tail above the watermarks (empty on SQLite after its fold), a few
thousand rows whatever the number of visitors. ``slice_sums`` adds the period rows up to the
per-slice ``MetricSums`` (shifted: the same sums ``metric_sums`` reads, in one read with the periods).
The live statement ``metric_period_sql``, a GROUP BY of ``metrics.per_visitor_sql``, is the
reference and the fallback while a metric is being rebuilt by another worker.

Ratio metrics get only their five sums (their all-visitor estimator is not offered, see
``stats.metric_adaptive``). The period is ``base.period_of(t0)``, a floor written per dialect
(``metric_fold.SQLITE_PERIOD_OF``, ``POSTGRES_PERIOD_OF``).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Sequence

from ..domain.experiments import Experiment
from ..domain.metrics import MetricDefinition
from .metrics import RATIO_FIELDS, SUM_FIELDS, MetricSums, shifted_sums, per_visitor_sql

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
    #: per definition, in the order asked: the five sums, shifted by the metric's K, L (the
    #: ``MetricSums`` shifts; 0 from the live statement): ``.unshifted()`` gives Σy, Σy², ...
    metrics: tuple[MetricSums, ...]
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


def _folded_rows(definitions: Sequence[MetricDefinition], shifts: dict[int, tuple[float, float]],
                 cells: dict[tuple[int, int, int, int], list[float]]) -> list[MetricPeriodSums] | None:
    """The maintained period slices (``MetricStore.folded_cells`` by period) as ``MetricPeriodSums``:
    the five sums stay shifted (K, L in the ``MetricSums``' shifts), the propensity-weighted ones
    are unshifted, with K the metric's shift: Σy/p = Σ(y-K)/p + KΣ1/p, Σy/p² = Σ(y-K)/p² + KΣ1/p²,
    Σy²/p² = Σ(y-K)²/p² + 2KΣ(y-K)/p² + K²Σ1/p². None when the metrics do not cover the same
    exposures of an hour (cannot happen within one snapshot; a guard, read live then)."""
    periods = sorted({(period, v, h) for (_i, v, h, period), totals in cells.items() if round(totals[0]) > 0})
    out = []
    for period, variant_id, holdout in periods:
        parts = [cells.get((index, variant_id, holdout, period)) for index in range(len(definitions))]
        if any(part is None or round(part[0]) != round(parts[0][0]) for part in parts):  # type: ignore[index]
            return None
        visitors = int(round(parts[0][0]))  # type: ignore[index]
        metrics, ips = [], []
        for index, (definition, part) in enumerate(zip(definitions, parts)):
            assert part is not None
            ky, kx = shifts[index]
            metrics.append(shifted_sums(definition, variant_id, bool(holdout), visitors, part[1:6], ky, kx))
            w, ww, yw, yyww, yww = part[6:11]
            ips.append(None if definition.type == "ratio" else
                       (yw + ky * w, yyww + 2 * ky * yww + ky * ky * ww, yww + ky * ww))
        first = parts[0]
        assert first is not None
        out.append(MetricPeriodSums(period, variant_id, bool(holdout), visitors, first[6], first[7],
                                    tuple(metrics), tuple(ips)))
    return out


class MetricAdaptiveStore:
    """Mixin next to ``MetricStore``: needs its ``folded_cells``, ``_PERIOD_OF`` and the backend's
    ``_read`` and ``_SCALAR_MIN``."""

    def metric_period_sums(self, experiment: Experiment,
                           definitions: Sequence[MetricDefinition]) -> list[MetricPeriodSums]:
        """Every (hour period, variant, slice) with exposed visitors, oldest first: the maintained
        period slices plus the period-wise tail, in one snapshot checked against the metrics'
        watermarks (``metric_fold.snapshot_sql``; on SQLite the tail is empty after the fold). A
        metric being rebuilt by another worker (no current state) sends the whole read to the live
        statement (``metric_period_sql``), so that every metric counts the same exposures."""
        if not definitions:
            return []
        shifts, cells = self.folded_cells(experiment, definitions, by_period=True)  # type: ignore[attr-defined]
        if len(shifts) == len(definitions):
            found = _folded_rows(definitions, shifts, cells)
            if found is not None:
                return found
        sql, params = metric_period_sql(experiment, definitions, self._SCALAR_MIN,  # type: ignore[attr-defined]
                                        self._PERIOD_OF.format(t0="t0"))  # type: ignore[attr-defined]
        return [_row(row, definitions) for row in self._read(sql, params)]  # type: ignore[attr-defined]
