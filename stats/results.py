"""Shared result vocabulary: reason codes, the comparison record, JSON conversion.

Every public result of the package is a frozen dataclass. A number that cannot be
computed is ``None`` (never NaN or inf) and the record that holds it carries a
``reason`` code saying why, so an API client can tell "no effect" from "no data".
"""
from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

ALPHA = 0.05  # two-sided level of every interval and test in the package (95%)
SRM_THRESHOLD = 0.001  # sample-ratio mismatch is flagged when its p-value is below this


class Reason:
    """Reason codes: why a field is ``None`` (kept as plain strings in the JSON)."""

    NOT_ENOUGH_DATA = "not_enough_data"  # fewer than 2 units in an arm / no units at all
    NO_CONTROL_DATA = "no_control_data"  # the control arm has no units in the analysed slice
    NO_HOLDOUT = "no_holdout"  # bandit modes: the uniform holdout slice is empty
    ZERO_VARIANCE = "zero_variance"  # every outcome identical: no standard error exists
    CONTROL_MEAN_ZERO = "control_mean_zero"  # relative uplift is undefined (division by 0)
    CONTROL_MEAN_NOT_POSITIVE = "control_mean_not_positive"  # relative credible interval undefined
    NO_PROPENSITIES = "no_propensities"  # the inverse-propensity sums were not logged
    NO_SUPPORT = "no_support"  # a target policy plays a variant that was never logged
    NO_CURRENT_ALLOCATION = "no_current_allocation"  # nothing to evaluate off-policy
    INVALID_ALLOCATION = "invalid_allocation"  # wrong length / negative / does not sum to 1
    UNKNOWN_CONTROL = "unknown_control"  # the control key is not one of the variants
    UNSUPPORTED = "unsupported"  # unknown mode or reward type
    NON_FINITE_INPUT = "non_finite_input"  # a sum is NaN/inf or overflows: nothing is computed from it


class Comparison(NamedTuple):
    """Treatment-vs-control comparison, element-wise over numpy arrays (or floats).

    The vectorised cores in ``proportions`` and ``means`` return this; entries are NaN
    where undefined, and the scalar wrapper in ``metrics`` turns NaN into a reason code.
    """

    absolute: Any  # treatment mean - control mean
    se_absolute: Any  # its standard error (unpooled: used for the interval)
    ci_absolute_low: Any
    ci_absolute_high: Any
    relative: Any  # treatment mean / control mean - 1
    se_relative: Any  # delta-method standard error of the relative uplift
    ci_relative_low: Any
    ci_relative_high: Any
    statistic: Any  # z (binary, pooled) or Welch t (numeric)
    dof: Any  # degrees of freedom (inf for the z-test)
    p_value: Any  # two-sided fixed-horizon p-value
    always_valid_p_value: Any  # dual of the confidence sequence (stats.anytime)
    ci_always_valid_low: Any  # confidence sequence: valid at every look
    ci_always_valid_high: Any


@dataclass(frozen=True)
class Uplift:
    """One treatment-vs-control comparison (see README for field meanings)."""

    absolute: float | None
    ci_absolute: tuple[float, float] | None
    relative: float | None
    ci_relative: tuple[float, float] | None
    p_value: float | None
    p_value_adjusted: float | None  # Holm (variants) or Benjamini-Hochberg (segments)
    always_valid_p_value: float | None
    se_absolute: float | None = None
    se_relative: float | None = None
    test: str | None = None  # "z_pooled" | "welch_t"
    reason: str | None = None
    # anytime-valid decision (stats.anytime, stats.decisions): the verdict rests on these
    ci_always_valid: tuple[float, float] | None = None  # absolute difference, valid at every look
    decision: str = "inconclusive"  # "better" | "worse" | "inconclusive"
    decision_rule: str | None = None  # "anytime_valid" | "fixed_horizon" | "adaptive_anytime_valid"
    adaptive: Any = None  # bandit modes: stats.adaptive.AdaptiveUplift on all traffic

    def to_dict(self) -> dict:
        return jsonable(self)


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its 95% interval (off-policy values, lifts of slices)."""

    value: float | None
    ci: tuple[float, float] | None
    se: float | None = None
    method: str | None = None
    reason: str | None = None

    def to_dict(self) -> dict:
        return jsonable(self)


@dataclass(frozen=True)
class ReportWarning:
    """A human-readable caveat attached to a report (``code`` is stable, ``message`` is prose)."""

    code: str
    message: str


def finite(value: Any) -> float | None:
    """``float(value)`` when it is a finite number, else ``None``."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def interval(low: Any, high: Any) -> tuple[float, float] | None:
    """A (low, high) pair, or ``None`` unless both ends are finite."""
    lo, hi = finite(low), finite(high)
    return None if lo is None or hi is None else (lo, hi)


@functools.singledispatch
def jsonable(obj: Any) -> Any:
    """Recursively convert results to JSON-ready Python: dataclasses to dicts, tuples
    to lists, numpy scalars to Python numbers and every NaN/inf to ``None``.

    A ``functools.singledispatch`` registry picks the conversion by type; this default
    handles dataclass instances (not a type, so not dispatchable) and passes strings
    and ``None`` through."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    return obj


@jsonable.register(Mapping)
def _(obj: Mapping) -> dict:
    return {str(k): jsonable(v) for k, v in obj.items()}


@jsonable.register(list)
@jsonable.register(tuple)
@jsonable.register(np.ndarray)
def _(obj: Any) -> list:
    return [jsonable(v) for v in obj]


@jsonable.register(bool)
@jsonable.register(np.bool_)
def _(obj: Any) -> bool:
    return bool(obj)


@jsonable.register(int)
@jsonable.register(np.integer)
def _(obj: Any) -> int:
    return int(obj)


@jsonable.register(float)
@jsonable.register(np.floating)
def _(obj: Any) -> float | None:
    return finite(obj)
