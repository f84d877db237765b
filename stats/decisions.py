"""The verdict of every non-control variant: ``better`` / ``worse`` / ``inconclusive``.

The report is a live dashboard, so the decision must survive peeking. Rules
(``DECISION_RULES``; the result names the one in force in ``decision_rule``):

* "anytime_valid" (default for "ab"): the always-valid p-value, dual of the
  confidence sequence of ``stats.anytime``, Holm-adjusted across the variants;
  decided when the adjusted p <= alpha, in the direction of the estimate. Holm only
  needs each p-value to be valid at the (common) stopping time, which always-valid
  p-values are, so the family-wise error stays <= alpha however often anyone looks.
  With one variant this is exactly "the confidence sequence excludes 0"; with several,
  ``ci_always_valid`` is the unadjusted 95% sequence and can exclude 0 while the
  adjusted decision stays inconclusive.
* "fixed_horizon" ("ab" with ``planned_visitors``): the fixed-horizon test (Holm-
  adjusted ``p_value``) decides once the analysed visitors reach the declared
  horizon, and *not before* (the decision is "inconclusive" until then; the
  anytime-valid numbers are still reported). Mixing both rules would spend alpha
  twice. The horizon must be declared before launch and the test stopped there:
  looking again at the fixed p after the horizon is peeking again.
* "adaptive_anytime_valid" ("bandit"/"contextual"): the confidence sequence of the
  adaptively weighted AIPW contrast on *all* traffic (``stats.adaptive``), Holm-
  adjusted; ``ci_always_valid``/``always_valid_p_value`` then repeat the adaptive
  ones (the holdout-only fixed test stays in ``absolute``/``ci_absolute``/``p_value``).

A comparison with a reason code (thin data, zero variance, ...) is inconclusive.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from stats import anytime, multiple
from stats.results import ALPHA, Uplift, finite

ANYTIME, FIXED, ADAPTIVE = "anytime_valid", "fixed_horizon", "adaptive_anytime_valid"
DECISION_RULES = (ANYTIME, FIXED, ADAPTIVE)


def rule_for(mode: str, planned_visitors: int | None) -> str:
    if mode != "ab":
        return ADAPTIVE
    return FIXED if planned_visitors is not None and planned_visitors > 0 else ANYTIME


def _with_adaptive(u: Uplift | None, a) -> Uplift | None:
    if u is None:
        return None
    if a is None:
        return dataclasses.replace(u, ci_always_valid=None, always_valid_p_value=None)
    return dataclasses.replace(u, adaptive=a, ci_always_valid=a.ci_always_valid,
                               always_valid_p_value=a.always_valid_p_value)


def apply(uplifts: Sequence[Uplift | None], rule: str, visitors: int,
          planned_visitors: int | None = None, adaptive: Sequence | None = None,
          alpha: float = ALPHA, higher_is_better: bool = True) -> list[Uplift | None]:
    """``uplifts`` (None for the control) with decision, decision_rule (and, for the
    adaptive rule, the adaptive estimates from ``adaptive``) filled in."""
    ups = list(uplifts)
    if rule == ADAPTIVE:
        ups = [_with_adaptive(u, None if adaptive is None else adaptive[i]) for i, u in enumerate(ups)]

    def usable(u: Uplift | None) -> bool:
        if u is None:
            return False
        if rule == ADAPTIVE:
            return u.adaptive is not None and u.adaptive.reason is None
        return u.reason is None

    def evidence(u: Uplift) -> tuple[float | None, float | None]:
        if rule == FIXED:
            return u.p_value, u.absolute
        if rule == ADAPTIVE:
            return u.always_valid_p_value, u.adaptive.absolute
        return u.always_valid_p_value, u.absolute

    raw = np.array([np.nan if not usable(u) or evidence(u)[0] is None else evidence(u)[0] for u in ups])
    adjusted = multiple.holm(raw)
    reached = rule != FIXED or (planned_visitors is not None and visitors >= planned_visitors)
    out = []
    for i, u in enumerate(ups):
        if u is None:
            out.append(None)
            continue
        decision = anytime.INCONCLUSIVE
        if usable(u) and reached:
            decision = anytime.decide_from_p(finite(adjusted[i]), evidence(u)[1], alpha, higher_is_better)
        out.append(dataclasses.replace(u, decision=decision, decision_rule=rule))
    return out
