"""Guardrails: an always-valid one-sided test of the relative change.

The test uses ``stats.anytime``'s normal-mixture confidence sequence (CS) on the
scale ``metric_estimates.relative`` picked: ln(m_t/m_c) when both means are
positive, the linear relative change otherwise; the bound is back-transformed to a
relative change. ``n`` given to the CS is the number of visitors in both arms.

Guardrail (``guardrail_check``). With r the relative change and m = max_regression:

* higher_is_better: the variant fails when it is *worse than control by more than
  m*, i.e. we reject H0: r >= -m. The always-valid one-sided bound is the upper
  end of the two-sided CS at level 2 alpha: P(r <= upper_n for every n) >= 1 - alpha
  (the two tails of the symmetric normal-mixture CS each carry alpha). "failing"
  when upper < -m.
* lower is better (latency, bounce rate): H0: r <= +m, the lower end of the CS at
  2 alpha; "failing" when lower > +m.

The one-sided always-valid p-value is half the two-sided mixture p-value of the
distance to the threshold when the estimate lies beyond the threshold, else 1 (it is
below alpha exactly when the CS at 2 alpha clears the threshold, up to the CS's
tuning). The status is decided by the CS. Because the CS is valid at every look, a
scheduled monitor may call ``guardrail_check`` as often as it likes: in an A/A test
a guardrail fails with probability <= alpha over the whole experiment, not per look
(tests measure it). Guardrails are not corrected across metrics or variants: each
is a separate alarm at level alpha, so k independent guardrails raise a false alarm
with probability up to 1 - (1 - alpha)^k (documented trade-off: alarms should err
towards firing).

"not_enough_data" (with a reason) when an arm has fewer than ``min_visitors``
visitors (the normal approximation behind the CS needs some data; 100 by default)
or the relative change or its standard error is undefined.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stats import anytime
from stats.metric_estimates import (
    KINDS,
    Relative,
    from_relative,
    quantile,
    relative,
    to_relative,
)
from stats.metric_inputs import (
    MetricReason,
    MetricSlice,
    MetricSpec,
    slice_problem,
    spec_problem,
)
from stats.results import ALPHA, finite, jsonable

GUARDRAIL_MIN_VISITORS = 100  # per arm, before a guardrail may fail
OK, FAILING, NOT_ENOUGH_DATA = "ok", "failing", "not_enough_data"


@dataclass(frozen=True)
class GuardrailResult:
    status: str  # "ok" | "failing" | "not_enough_data"
    always_valid_p_value: float | None  # one-sided, H0: no regression beyond max_regression
    bound: float | None  # always-valid one-sided bound on the relative change (upper if higher_is_better)
    threshold: float | None  # tolerated relative change: -max_regression (or +max_regression)
    action: str  # the spec's action, for the app to apply when "failing"
    reason: str | None = None

    def to_dict(self) -> dict:
        return jsonable(self)


# ---------------------------------------------------------------- vectorised cores


def guardrail_arrays(rel: Relative, n, max_regression, higher_is_better: bool, alpha: float = ALPHA):
    """(failing, one-sided p, one-sided bound on the relative change), element-wise.

    ``failing`` is False where the CS is undefined (NaN bound); callers tell those
    apart with the bound."""
    sign = 1.0 if higher_is_better else -1.0  # "worse" is sign * r < -max_regression
    limit = from_relative(rel.log_scale, -sign * np.asarray(max_regression, dtype=float))
    low, high = anytime.confidence_sequence_arrays(rel.estimate, rel.se, n, 2 * alpha)
    bound = high if higher_is_better else low
    with np.errstate(all="ignore"):
        failing = sign * bound < sign * limit  # the whole one-sided CS lies past the threshold
        beyond = np.isfinite(limit) & (sign * rel.estimate < sign * limit)
        p_two = anytime.p_value_arrays(rel.estimate - limit, rel.se, n)
        p_one = np.where(beyond, np.minimum(1.0, p_two / 2), np.where(np.isnan(bound), np.nan, 1.0))
    return failing, p_one, to_relative(rel.log_scale, bound)


def guardrail_test(
    rel: Relative, n, max_regression: float, higher_is_better: bool, alpha: float = ALPHA
) -> tuple[str, float | None, float | None]:
    """(status, one-sided always-valid p, one-sided bound) for a scalar ``Relative``."""
    failing, p_value, bound = guardrail_arrays(rel, n, max_regression, higher_is_better, alpha)
    if finite(bound) is None:
        return NOT_ENOUGH_DATA, None, None
    return (FAILING if bool(failing) else OK), finite(p_value), finite(bound)


def guardrail_check(
    spec: MetricSpec,
    control: MetricSlice,
    treatment: MetricSlice,
    alpha: float = ALPHA,
    min_visitors: int = GUARDRAIL_MIN_VISITORS,
) -> GuardrailResult:
    """Is ``treatment`` worse than ``control`` by more than ``spec.max_regression``?

    Pure function of the two arms' sums (merge a variant's slices first, e.g. with
    ``metric_inputs.pick``), safe to call from a scheduled monitor at any cadence.
    Never raises: unusable inputs give status "not_enough_data" with a reason.
    """
    problem = spec_problem(spec) or slice_problem(control, spec.type) or slice_problem(
        treatment, spec.type
    )
    if problem is not None:
        return GuardrailResult(NOT_ENOUGH_DATA, None, None, None, str(spec.action), problem)
    sign = 1.0 if spec.higher_is_better else -1.0
    threshold = -sign * float(spec.max_regression)
    if min(control.visitors, treatment.visitors) < min_visitors:
        return GuardrailResult(
            NOT_ENOUGH_DATA, None, None, threshold, spec.action, MetricReason.NOT_ENOUGH_DATA
        )
    kind = KINDS[spec.type]
    arm_c, arm_t = kind.arm(control, alpha), kind.arm(treatment, alpha)
    diff = kind.difference(control, treatment, alpha)
    rel = relative(arm_c, arm_t, quantile(diff.dof, alpha))
    status, p_value, bound = guardrail_test(
        rel, control.visitors + treatment.visitors, spec.max_regression, spec.higher_is_better, alpha
    )
    reason = None
    if status == NOT_ENOUGH_DATA:
        reason = relative_reason(arm_c, arm_t, rel)
    return GuardrailResult(status, p_value, bound, threshold, spec.action, reason)


def relative_reason(arm_c, arm_t, rel: Relative) -> str:
    """Why a scalar relative change or its standard error is undefined."""
    m_c = finite(np.asarray(arm_c.value))
    if m_c is None:
        return MetricReason.DENOMINATOR_ZERO if np.isnan(arm_c.value) else MetricReason.NUMERICAL_ERROR
    if m_c == 0:
        return MetricReason.CONTROL_MEAN_ZERO
    if finite(np.asarray(arm_t.value)) is None:
        return MetricReason.DENOMINATOR_ZERO
    if finite(np.asarray(rel.se)) is None:
        return MetricReason.ZERO_VARIANCE
    return MetricReason.NUMERICAL_ERROR
