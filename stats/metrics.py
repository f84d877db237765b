"""Reward-type registry: how to summarise an arm and compare two arms.

``METRICS[reward]`` maps "binary" / "numeric" to the functions of ``proportions`` /
``means`` applied to ``SliceAggregate`` sums; the scalar wrappers here turn the NaNs
of the vectorised cores into reason codes.

Field convention (documented in the README): a binary experiment reports ``rate``
(conversions / visitors, Wilson interval) and ``mean`` = null; a numeric experiment
reports ``mean`` (mean per-assignment outcome, t interval) and ``rate`` = null.
``conversions`` (assignments with a positive outcome) is reported for both.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from stats import means, proportions
from stats.inputs import SliceAggregate
from stats.results import ALPHA, Comparison, Reason, Uplift, finite, interval, jsonable
from stats.welford import reshift


@dataclass(frozen=True)
class Metric:
    """The statistics of one reward type."""

    value_field: str  # "rate" | "mean": which field of an arm summary carries the value
    test: str  # name of the fixed-horizon test, reported with every uplift
    min_units: int  # fewer units than this in an arm => not_enough_data
    point: Callable[[SliceAggregate], float]
    interval: Callable[[SliceAggregate, float], tuple]
    compare: Callable[[SliceAggregate, SliceAggregate, float], Comparison]


def _rate(s: SliceAggregate) -> float:
    return s.conversions / s.assignments if s.assignments > 0 else float("nan")


def _mean(s: SliceAggregate) -> float:
    """K + Σ(y - K)/n (``SliceAggregate.reward_shift``)."""
    return s.reward_shift + s.reward_sum / s.assignments if s.assignments > 0 else float("nan")


def _compare_means(c: SliceAggregate, t: SliceAggregate, alpha: float) -> Comparison:
    t = reshift(t, c.reward_shift)  # both arms about one shift (one experiment's slices share it anyway)
    return means.compare(c.assignments, c.reward_sum, c.reward_sumsq, t.assignments, t.reward_sum, t.reward_sumsq,
                         alpha, shift=c.reward_shift)


METRICS: dict[str, Metric] = {
    "binary": Metric(
        value_field="rate",
        test="z_pooled",
        min_units=2,
        point=_rate,
        interval=lambda s, alpha: proportions.wilson_interval(s.conversions, s.assignments, alpha),
        compare=lambda c, t, alpha: proportions.compare(
            c.conversions, c.assignments, t.conversions, t.assignments, alpha
        ),
    ),
    "numeric": Metric(
        value_field="mean",
        test="welch_t",
        min_units=2,
        point=_mean,
        interval=lambda s, alpha: means.t_interval(
            s.assignments, s.reward_sum, s.reward_sumsq, alpha, shift=s.reward_shift
        ),
        compare=_compare_means,
    ),
}


@dataclass(frozen=True)
class ArmSummary:
    """Visitors, conversions and the arm's rate or mean with its 95% interval."""

    key: str
    visitors: int
    conversions: int
    rate: float | None
    mean: float | None
    ci: tuple[float, float] | None
    reason: str | None = None

    def to_dict(self) -> dict:
        return jsonable(self)


def summarise(metric: Metric, key: str, s: SliceAggregate, alpha: float = ALPHA) -> ArmSummary:
    """Summary of one arm; ``reason`` is set when its interval cannot be computed."""
    value = finite(metric.point(s))
    low, high = metric.interval(s, alpha)
    ci = interval(low, high)
    reason = None
    if s.assignments == 0:
        reason = Reason.NOT_ENOUGH_DATA
    elif ci is None:  # numeric arm with a single unit: no variance estimate
        reason = Reason.NOT_ENOUGH_DATA
    values = {"rate": None, "mean": None, metric.value_field: value}
    return ArmSummary(
        key=key,
        visitors=int(s.assignments),
        conversions=int(s.conversions),
        rate=values["rate"],
        mean=values["mean"],
        ci=ci,
        reason=reason,
    )


def uplift(
    metric: Metric, control: SliceAggregate, treatment: SliceAggregate, alpha: float = ALPHA
) -> Uplift:
    """Treatment vs control with a reason code for whatever could not be computed.

    Reasons, first match wins: no_control_data (control empty), not_enough_data (an
    arm below ``min_units``), zero_variance (no standard error: every outcome equal),
    control_mean_zero (absolute fine, relative undefined).
    """
    c = metric.compare(control, treatment, alpha)
    scalar = {name: finite(np.asarray(value)) for name, value in c._asdict().items()}
    if control.assignments == 0:
        reason = Reason.NO_CONTROL_DATA
    elif min(control.assignments, treatment.assignments) < metric.min_units:
        reason = Reason.NOT_ENOUGH_DATA
    elif scalar["p_value"] is None:
        reason = Reason.ZERO_VARIANCE
    elif scalar["relative"] is None or scalar["se_relative"] is None:
        reason = Reason.CONTROL_MEAN_ZERO
    else:
        reason = None
    return Uplift(
        absolute=scalar["absolute"],
        ci_absolute=interval(scalar["ci_absolute_low"], scalar["ci_absolute_high"]),
        relative=scalar["relative"],
        ci_relative=interval(scalar["ci_relative_low"], scalar["ci_relative_high"]),
        p_value=scalar["p_value"],
        p_value_adjusted=None,
        always_valid_p_value=scalar["always_valid_p_value"],
        se_absolute=scalar["se_absolute"],
        se_relative=scalar["se_relative"],
        test=metric.test,
        reason=reason,
        ci_always_valid=interval(scalar["ci_always_valid_low"], scalar["ci_always_valid_high"]),
    )
