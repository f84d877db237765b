"""Personalisation lift: did the policy beat the uniform-random holdout?

Every visitor is first routed to the holdout with the fixed probability
``holdout_share`` (independently of everything else), so "policy slice" vs "holdout
slice" is itself a randomised comparison even when the policy inside its slice is an
adaptive bandit. Pooling all variants within each slice:

* vs_holdout: policy traffic vs the whole holdout (value of the learned policy over
  uniform random allocation);
* vs_control_holdout: policy traffic vs the control's share of the holdout (value
  over doing nothing, i.e. always serving control).

Each uses the reward's standard test (pooled z / Welch t). Caveat, documented: inside
an adaptive policy slice the outcomes are not identically distributed (the policy
changes over time), so the policy mean estimates the *average* value the policy
delivered over the period, and its variance is the usual i.i.d. approximation.
"""
from __future__ import annotations

from dataclasses import dataclass

from stats import metrics, slices
from stats.inputs import ExperimentAggregate
from stats.results import ALPHA, Reason, Uplift, jsonable


@dataclass(frozen=True)
class Personalisation:
    policy: metrics.ArmSummary  # all variants pooled, holdout=False
    holdout: metrics.ArmSummary  # all variants pooled, holdout=True
    control_holdout: metrics.ArmSummary  # the control arm within the holdout
    vs_holdout: Uplift
    vs_control_holdout: Uplift
    reason: str | None = None

    def to_dict(self) -> dict:
        return jsonable(self)


def analyse(agg: ExperimentAggregate, alpha: float = ALPHA) -> Personalisation:
    metric = metrics.METRICS[agg.reward]
    policy = slices.pick(agg.slices, None, "policy")
    holdout = slices.pick(agg.slices, None, slices.HOLDOUT)
    control_holdout = slices.pick(agg.slices, agg.control, slices.HOLDOUT)
    vs_holdout = metrics.uplift(metric, holdout, policy, alpha)
    vs_control = metrics.uplift(metric, control_holdout, policy, alpha)
    if holdout.assignments == 0:
        reason = Reason.NO_HOLDOUT
        vs_holdout = _with_reason(vs_holdout, reason)
        vs_control = _with_reason(vs_control, reason)
    elif policy.assignments == 0:
        reason = Reason.NOT_ENOUGH_DATA
    else:
        reason = None
    return Personalisation(
        policy=metrics.summarise(metric, "policy", policy, alpha),
        holdout=metrics.summarise(metric, "holdout", holdout, alpha),
        control_holdout=metrics.summarise(metric, agg.control, control_holdout, alpha),
        vs_holdout=vs_holdout,
        vs_control_holdout=vs_control,
        reason=reason,
    )


def _with_reason(u: Uplift, reason: str) -> Uplift:
    """An empty holdout is reported as no_holdout rather than no_control_data."""
    return Uplift(None, None, None, None, None, None, None, test=u.test, reason=reason)
