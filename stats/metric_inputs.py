"""Inputs of the metric analysis: what a metric is, and the per-variant sums SQL produces.

A metric is measured per *exposed visitor* (a visitor counts from their first
exposure to the experiment; which events count, i.e. the attribution window, is the
storage layer's rule, not this package's). For visitor i let

* conversion: y_i = 1 when i had at least one matching event, else 0;
* count:      y_i = the number of matching events;
* sum:        y_i = the sum of the matching events' values, 0 when none (already
              winsorised per visitor by storage when the metric has a ``cap``);
* ratio:      a_i, b_i = the visitor's numerator and denominator (each an event sum
              or count); the metric is sum a_i / sum b_i over visitors (e.g. AOV =
              purchase value / purchase count, CTR = clicks / impressions).

For CUPED, x_i is the same metric's per-visitor value over the pre-period window
(``cuped_window_s`` before first exposure; 0 when none).

Every field of ``MetricSlice`` is therefore a plain sum over visitors, which one
``GROUP BY variant, holdout`` over the per-visitor values produces, and slices merge
by field-wise addition.

Shifts (issue #16). The one-pass variance (Σy² - (Σy)²/n)/(n-1) cancels catastrophically
when the values are large and nearly constant (1e9 + noise: Σy² ~ n 1e18 carries an
absolute error of ~n 1e2, far above the spread). So the sums may be of (y - K) for a
constant K per metric (storage uses the metric's mean): ``value_sum`` = Σ(y-K),
``value_sumsq`` = Σ(y-K)², ``pre_*`` of (x-L), ``pre_cross_sum`` = Σ(x-L)(y-K), ratio
parts of (a-Ka), (b-Kb). Variances and covariances are shift-invariant, so every
formula keeps its form; only means add the shift back: mean = K + Σ(y-K)/n (``mean``).
Merging slices with different shifts re-centres them on one (``reshift``).
"""
from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from stats import slices as traffic
from stats.inputs import PeriodAggregate
from stats.results import Reason
from stats.validation import MAX_MAGNITUDE

CONVERSION, COUNT, SUM, RATIO = "conversion", "count", "sum", "ratio"
METRIC_TYPES = (CONVERSION, COUNT, SUM, RATIO)
PRIMARY, SECONDARY, GUARDRAIL = "primary", "secondary", "guardrail"
ROLES = (PRIMARY, SECONDARY, GUARDRAIL)
ACTIONS = ("alert", "stop_variant")

# Sums beyond stats.validation.MAX_MAGNITUDE (1e100) are refused as non-finite input,
# as in the experiment report: every statistic multiplies at most two sums.


class MetricReason(Reason):
    """Reason codes of the metric analysis (plain strings in the JSON), on top of ``Reason``."""

    INVALID_SPEC = "invalid_spec"  # unknown type / role / action, or max_regression not finite >= 0
    # NON_FINITE_INPUT (from Reason): a sum is NaN/inf or beyond MAX_MAGNITUDE
    INVALID_INPUT = "invalid_input"  # not a number, negative or fractional visitors, rate outside [0, 1]
    NUMERICAL_ERROR = "numerical_error"  # finite inputs, but a statistic came out non-finite
    NO_PRE_PERIOD_DATA = "no_pre_period_data"  # CUPED: sum x^2 = 0, nobody has a pre-period value
    ZERO_COVARIATE_VARIANCE = "zero_covariate_variance"  # CUPED: every visitor has the same x
    CUPED_UNSUPPORTED = "cuped_unsupported"  # CUPED is not offered for ratio metrics
    DENOMINATOR_ZERO = "denominator_zero"  # ratio: an arm's denominator sum is 0


@dataclass(frozen=True)
class MetricSpec:
    """One metric of one experiment, as configured.

    ``max_regression`` is relative (0.02 = the guardrail tolerates a 2% change in the
    bad direction) and only used for ``role == "guardrail"``; ``action`` is what the
    app should do when the guardrail fails (this package only reports it).
    """

    key: str
    type: str  # "conversion" | "count" | "sum" | "ratio"
    higher_is_better: bool = True
    role: str = SECONDARY  # "primary" | "secondary" | "guardrail"
    max_regression: float = 0.0
    action: str = "alert"  # "alert" | "stop_variant"


@dataclass(frozen=True)
class MetricSlice:
    """Sums over the exposed visitors of one variant in one traffic slice.

    ``holdout``: True for the uniform-random holdout, False for policy traffic (as in
    ``stats.inputs.SliceAggregate``). Fields a metric type does not use stay 0.
    """

    variant: str
    holdout: bool
    visitors: int = 0  # n: exposed visitors
    value_sum: float = 0.0  # sum y_i (conversion: converted visitors)
    value_sumsq: float = 0.0  # sum y_i^2 (conversion: ignored, equals value_sum)
    numerator_sum: float = 0.0  # ratio: sum a_i
    numerator_sumsq: float = 0.0  # ratio: sum a_i^2
    denominator_sum: float = 0.0  # ratio: sum b_i
    denominator_sumsq: float = 0.0  # ratio: sum b_i^2
    cross_sum: float = 0.0  # ratio: sum a_i b_i
    pre_sum: float = 0.0  # CUPED: sum x_i
    pre_sumsq: float = 0.0  # CUPED: sum x_i^2
    pre_cross_sum: float = 0.0  # CUPED: sum x_i y_i
    # the constants subtracted before summing (module docstring): value_* and pre_cross_sum
    # are sums of (y - value_shift), pre_* of (x - pre_shift), ratio parts likewise
    value_shift: float = 0.0
    pre_shift: float = 0.0
    numerator_shift: float = 0.0
    denominator_shift: float = 0.0


@dataclass(frozen=True)
class MetricAggregate:
    """Everything the engine needs for one metric of one experiment."""

    metric: str  # the MetricSpec key these sums belong to
    mode: str  # "ab" | "bandit" | "contextual": decides the analysed traffic
    control: str
    variants: tuple[str, ...]  # configured order
    slices: tuple[MetricSlice, ...] = field(default_factory=tuple)  # missing = zeros
    #: bandit / contextual: per (hour period, variant, slice) sums of the metric's outcome y per
    #: exposed visitor in ``SliceAggregate`` form (assignments = visitors, reward_sum = Σy,
    #: reward_sumsq = Σy², the inverse-propensity sums, expected_assignments = the policy's
    #: allocation); they let every visitor count (``stats.metric_adaptive``). Empty: holdout only.
    periods: tuple[PeriodAggregate, ...] = field(default_factory=tuple)


SHIFTS = ("value_shift", "pre_shift", "numerator_shift", "denominator_shift")
SUMMED = tuple(f.name for f in dataclasses.fields(MetricSlice) if f.name not in ("variant", "holdout", *SHIFTS))
SQUARES = ("value_sumsq", "numerator_sumsq", "denominator_sumsq", "pre_sumsq")
#: (shift, sum, sum of squares) per shifted quantity, and the cross sums of two of them
_SHIFTED = {"value_shift": ("value_sum", "value_sumsq"), "pre_shift": ("pre_sum", "pre_sumsq"),
            "numerator_shift": ("numerator_sum", "numerator_sumsq"),
            "denominator_shift": ("denominator_sum", "denominator_sumsq")}
_CROSS = {"pre_cross_sum": ("pre_shift", "value_shift"), "cross_sum": ("numerator_shift", "denominator_shift")}


def mean(n, shifted_sum, shift):
    """K + Σ(y-K)/n: the mean from a shifted sum (vectorised; NaN when n = 0)."""
    n = np.asarray(n, dtype=float)
    with np.errstate(all="ignore"):
        return np.where(n > 0, np.asarray(shift, dtype=float) + np.asarray(shifted_sum, dtype=float) / n, np.nan)


def raw_sumsq(n, shifted_sum, shifted_sumsq, shift):
    """Σy² = Σ(y-K)² + 2K Σ(y-K) + n K² (used only where the sign of Σy² matters)."""
    return shifted_sumsq + 2 * shift * shifted_sum + n * shift * shift


def reshift(s: MetricSlice, **shifts: float) -> MetricSlice:
    """The same visitors' sums about other shifts: with d = K_old - K_new,
    Σ(y-K_new) = Σ(y-K_old) + n d, Σ(y-K_new)² = Σ(y-K_old)² + 2 d Σ(y-K_old) + n d²,
    Σ(x-L_new)(y-K_new) = Σ(x-L_old)(y-K_old) + e Σ(y-K_old) + d Σ(x-L_old) + n d e."""
    n = float(s.visitors)
    moved = {name: getattr(s, name) - shifts.get(name, getattr(s, name)) for name in SHIFTS}
    fields: dict[str, float] = {}
    for shift, (total, squares) in _SHIFTED.items():
        d, old = moved[shift], getattr(s, total)
        fields[total] = old + n * d
        fields[squares] = getattr(s, squares) + 2 * d * old + n * d * d
    for cross, (first, second) in _CROSS.items():
        d1, d2 = moved[first], moved[second]
        sum1, sum2 = getattr(s, _SHIFTED[first][0]), getattr(s, _SHIFTED[second][0])
        fields[cross] = getattr(s, cross) + d1 * sum2 + d2 * sum1 + n * d1 * d2
    return dataclasses.replace(s, **fields, **{name: shifts.get(name, getattr(s, name)) for name in SHIFTS})


def spec_problem(spec: MetricSpec) -> str | None:
    """``invalid_spec`` when the configuration cannot be analysed, else None."""
    max_regression = _as_float(spec.max_regression)
    ok = (
        spec.type in METRIC_TYPES
        and spec.role in ROLES
        and spec.action in ACTIONS
        and isinstance(spec.higher_is_better, bool)
        and max_regression is not None
        and max_regression >= 0
    )
    return None if ok else MetricReason.INVALID_SPEC


def _real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _as_float(value) -> float | None:
    """float(value) for a finite real number; None for NaN, inf, huge ints, non-numbers."""
    if not _real(value):
        return None
    try:
        number = float(value)
    except (OverflowError, ValueError):
        return None
    return number if math.isfinite(number) else None


def slice_problem(s: MetricSlice, metric_type: str) -> str | None:
    """Reason code when a slice's sums cannot be analysed (never raises)."""
    raw = [getattr(s, name) for name in (*SUMMED, *SHIFTS)]
    if not all(_real(v) for v in raw):
        return MetricReason.INVALID_INPUT
    values = dict(zip((*SUMMED, *SHIFTS), (_as_float(v) for v in raw)))
    if any(v is None or abs(v) > MAX_MAGNITUDE for v in values.values()):
        return MetricReason.NON_FINITE_INPUT
    visitors = values["visitors"]
    if visitors < 0 or visitors != int(visitors) or any(values[name] < 0 for name in SQUARES):
        return MetricReason.INVALID_INPUT
    converted = values["value_sum"] + visitors * values["value_shift"]  # Σy = Σ(y-K) + nK
    if metric_type == CONVERSION and not 0 <= converted <= values["visitors"]:
        return MetricReason.INVALID_INPUT
    return None


def merge(parts: Iterable[MetricSlice], variant: str, holdout: bool) -> MetricSlice:
    """Field-wise sum of valid slices, relabelled (the sum of disjoint visitor sets), about
    the first slice's shifts (the others re-centred on them)."""
    parts = list(parts)
    shifts = {name: float(getattr(parts[0], name)) for name in SHIFTS} if parts else {}
    totals = dict.fromkeys(SUMMED, 0.0)
    for s in parts:
        if any(getattr(s, name) != shifts[name] for name in SHIFTS):
            s = reshift(s, **shifts)
        for name in SUMMED:
            totals[name] += float(getattr(s, name))
    totals["visitors"] = int(totals["visitors"])
    return MetricSlice(variant=variant, holdout=holdout, **totals, **shifts)


def pick(
    parts: Iterable[MetricSlice], variant: str | None, which: str, metric_type: str
) -> tuple[MetricSlice, str | None]:
    """Sum of the slices of ``variant`` (every variant when None) in traffic ``which``
    ("all" | "holdout" | "policy"), with the reason code of the first invalid slice.
    The merged total is checked again: two valid sums can overflow together."""
    wanted = {traffic.ALL: (True, False), traffic.HOLDOUT: (True,), "policy": (False,)}[which]
    chosen = [
        s for s in parts if s.holdout in wanted and (variant is None or s.variant == variant)
    ]
    label = variant if variant is not None else "*"
    problems = [p for p in (slice_problem(s, metric_type) for s in chosen) if p is not None]
    if problems:
        return MetricSlice(variant=label, holdout=which == traffic.HOLDOUT), problems[0]
    merged = merge(chosen, label, which == traffic.HOLDOUT)
    return merged, slice_problem(merged, metric_type)
