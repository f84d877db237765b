"""Guardrails: an always-valid one-sided test of a tolerated relative regression.

With control and treatment means m_c, m_t (rate, mean per visitor or ratio; their
variances V_c, V_t from ``metric_estimates``), relative change r = (m_t - m_c)/|m_c|
and tolerance m = max_regression:

* higher_is_better: the variant fails when it is *worse than control by more than
  m*, i.e. we reject H0: r >= -m;
* lower is better (latency, bounce rate): we reject H0: r <= +m.

A relative hypothesis is a *linear* one (Fieller's trick): with s = +1 for
higher_is_better, -1 otherwise, and k = 1 - s m sign(m_c),

    r < -m  (s = +1)   <=>   D = m_t - k m_c < 0,      r > +m  (s = -1)   <=>   D > 0,

and D has the plain variance V_t + k^2 V_c (no ratio, no delta method, defined even
when the treatment mean is 0, e.g. a variant that stopped converting). The test is
the normal-mixture confidence sequence of ``stats.anytime`` on D (n = visitors in
both arms) at level 2 alpha, of which only the end on the bad side is used: the
two tails of the symmetric CS each carry alpha, so P(the bound ever crosses wrongly)
<= alpha over *every* look. "failing" when that end is past 0 (the whole one-sided
CS lies beyond the tolerated regression).

Reported: ``bound`` = that end expressed as a relative change, D_bound/|m_c| - s m
(the plug-in scaling by the control mean: failing <=> bound beyond ``threshold`` =
-s m, exactly); ``always_valid_p_value`` = half the two-sided mixture p-value of D
when D is on the bad side, else 1 (<= alpha exactly when the status is "failing",
by the CS/p duality of ``stats.anytime``).

Because the CS is valid at every look, a scheduled monitor may call
``guardrail_check`` as often as it likes: in an A/A test a guardrail fails with
probability <= alpha over the whole experiment, not per look (tests measure it).
Guardrails are not corrected across metrics or variants: each is a separate alarm
at level alpha, so k independent guardrails raise a false alarm with probability up
to 1 - (1 - alpha)^k (documented trade-off: alarms should err towards firing).

"not_enough_data" (with a reason) when an arm has fewer than ``min_visitors``
visitors (the normal approximation behind the CS needs some data; 100 by default),
the control mean is 0 (no relative change) or D has no standard error.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stats import anytime
from stats.metric_estimates import KINDS, ArmEstimate, MetricKind
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
    #: None: the randomised slice's test above; "aipw_stabilised" / "ips_deployed_policy": the same
    #: test on every visitor of an adaptive experiment (``stats.metric_adaptive``)
    method: str | None = None

    def to_dict(self) -> dict:
        return jsonable(self)


# ---------------------------------------------------------------- vectorised cores


def guardrail_arrays(
    control: ArmEstimate, treatment: ArmEstimate, n, max_regression, higher_is_better: bool,
    alpha: float = ALPHA,
):
    """(failing, one-sided p, one-sided bound on the relative change), element-wise;
    ``failing`` is False and p/bound NaN where the test is undefined."""
    s = 1.0 if higher_is_better else -1.0
    m_c, m_t = np.asarray(control.value, dtype=float), np.asarray(treatment.value, dtype=float)
    with np.errstate(all="ignore"):
        k = 1 - s * np.asarray(max_regression, dtype=float) * np.sign(m_c)
        contrast = m_t - k * m_c  # bad side: s * contrast < 0
        se = np.sqrt(np.asarray(treatment.variance, dtype=float) + k**2 * np.asarray(control.variance, dtype=float))
        se = np.where(m_c != 0, se, np.nan)
        low, high = anytime.confidence_sequence_arrays(contrast, se, n, 2 * alpha)
        end = high if higher_is_better else low
        failing = s * end < 0
        p_two = anytime.p_value_arrays(contrast, se, n)
        p_one = np.where(s * contrast < 0, p_two / 2, np.where(np.isnan(p_two), np.nan, 1.0))
        bound = end / np.abs(m_c) - s * np.asarray(max_regression, dtype=float)
    return failing, p_one, bound


def guardrail_test(
    control: ArmEstimate, treatment: ArmEstimate, n, max_regression: float, higher_is_better: bool,
    alpha: float = ALPHA,
) -> tuple[str, float | None, float | None]:
    """(status, one-sided always-valid p, one-sided bound) for scalar arm estimates."""
    failing, p_value, bound = guardrail_arrays(control, treatment, n, max_regression, higher_is_better, alpha)
    if finite(bound) is None or finite(p_value) is None:
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
    status, p_value, bound = guardrail_test(
        arm_c, arm_t, control.visitors + treatment.visitors, spec.max_regression, spec.higher_is_better, alpha
    )
    reason = None
    if status == NOT_ENOUGH_DATA:
        reason = undefined_reason(kind, arm_c, arm_t)
    return GuardrailResult(status, p_value, bound, threshold, spec.action, reason)


def undefined_reason(kind: MetricKind, arm_c: ArmEstimate, arm_t: ArmEstimate) -> str:
    """Why a comparison of two scalar arm estimates is undefined (first match):
    an arm without a value, a zero control mean, an arm without variance."""
    m_c, m_t = finite(np.asarray(arm_c.value)), finite(np.asarray(arm_t.value))
    if m_c is None or m_t is None:
        return kind.undefined
    if m_c == 0:
        return MetricReason.CONTROL_MEAN_ZERO
    variances = (finite(np.asarray(arm_c.variance)), finite(np.asarray(arm_t.variance)))
    if any(v is not None and v <= 0 for v in variances):  # e.g. no conversions at all in an arm
        return MetricReason.ZERO_VARIANCE
    return MetricReason.NUMERICAL_ERROR
