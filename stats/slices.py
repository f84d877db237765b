"""Combining per-(variant, holdout) sums and choosing the traffic a test may use.

Every field of ``SliceAggregate`` except the keys and ``reward_shift`` is a sum over
assignments, so the aggregate of a union of disjoint slices is the field-wise sum (of
sums about one shift: a slice with another shift is re-centred first, ``welford.reshift``).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from stats.inputs import SliceAggregate
from stats.welford import reshift

ALL = "all"
HOLDOUT = "holdout"

# Which slice the fixed-horizon (randomised-experiment) tests may use, per mode.
# "ab": the policy slice (fixed weights) and the holdout (uniform) are both
#   randomised with constant probabilities, so all traffic is one randomised
#   experiment.
# "bandit" / "contextual": the policy slice was allocated adaptively (allocation
#   depends on past outcomes and, for contextual, on the visitor), so per-arm
#   means there are biased and not independent; only the uniform holdout is a
#   randomised experiment.
ANALYSIS_SLICE = {"ab": ALL, "bandit": HOLDOUT, "contextual": HOLDOUT}

_SUMMED = tuple(
    f.name for f in dataclasses.fields(SliceAggregate) if f.name not in ("variant", "holdout", "reward_shift")
)


def merge(slices: Iterable[SliceAggregate], variant: str, holdout: bool) -> SliceAggregate:
    """Field-wise sum of ``slices`` relabelled as (``variant``, ``holdout``), about the first
    slice's shift."""
    totals = dict.fromkeys(_SUMMED, 0)
    shift = None
    for s in slices:
        if shift is None:
            shift = s.reward_shift
        elif s.reward_shift != shift:
            s = reshift(s, shift)
        for name in _SUMMED:
            totals[name] += getattr(s, name)
    return SliceAggregate(variant=variant, holdout=holdout, reward_shift=shift or 0.0, **totals)


def pick(slices: Iterable[SliceAggregate], variant: str | None, which: str) -> SliceAggregate:
    """Sum of the slices of ``variant`` (all variants when None) in traffic ``which``:
    "all", "holdout" (holdout=True) or "policy" (holdout=False)."""
    wanted = {ALL: (True, False), HOLDOUT: (True,), "policy": (False,)}[which]
    chosen = [
        s for s in slices if s.holdout in wanted and (variant is None or s.variant == variant)
    ]
    return merge(chosen, variant if variant is not None else "*", which == HOLDOUT)
