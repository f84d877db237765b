"""Defence in depth: refuse non-finite or overflowing aggregates before any arithmetic.

The storage should never hand over NaN/inf sums, but a corrupted counter (e.g.
``reward_sumsq = inf`` after an overflowing reward) must not make the engine raise or
emit non-finite numbers. ``non_finite(agg)`` names the first offending field; the
report then carries the reason code ``non_finite_input`` instead of statistics.

A finite sum can still overflow downstream: squares of sums (S^2 / n), products of
inverse propensities, Beta draws with astronomic parameters. Every sum is therefore
bounded by ``MAX_MAGNITUDE``: 1e100 squared is 1e200, still far from the float limit
(1.8e308), and no real counter comes near it (1e9 visitors x revenue 1e6 squared is
1e21).
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable

from stats.inputs import ExperimentAggregate, SliceAggregate

MAX_MAGNITUDE = 1e100

_SLICE_NUMBERS = tuple(
    f.name for f in dataclasses.fields(SliceAggregate) if f.name not in ("variant", "holdout")
)


def _bad(value) -> bool:
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return True
    return not math.isfinite(number) or abs(number) > MAX_MAGNITUDE


def _slice_problem(where: str, s: SliceAggregate) -> str | None:
    for name in _SLICE_NUMBERS:
        if _bad(getattr(s, name)):
            return f"{where}.{name}"
    return None


def _all_slices(agg: ExperimentAggregate) -> Iterable[tuple[str, SliceAggregate]]:
    for s in agg.slices:
        yield "slices", s
    for seg in agg.segments:
        yield f"segments[{seg.feature}={seg.level}]", seg.slice
    for period in agg.periods:
        for s in period.slices:
            yield f"periods[{period.period}]", s


def non_finite(agg: ExperimentAggregate) -> str | None:
    """The first field of ``agg`` that is NaN, infinite or beyond MAX_MAGNITUDE, else None."""
    for where, s in _all_slices(agg):
        problem = _slice_problem(where, s)
        if problem is not None:
            return problem
    for name in ("weights", "current_allocation"):
        values = getattr(agg, name)
        if values is not None and any(_bad(v) for v in values):
            return name
    if _bad(agg.holdout_share):
        return "holdout_share"
    if agg.planned_visitors is not None and _bad(agg.planned_visitors):
        return "planned_visitors"
    return None
