"""Sample-ratio mismatch (SRM): are the observed assignment counts what the design implies?

A mismatch means assignment or logging is broken (bots, redirects, crashes,
filtering), and every other number is then suspect. The check is Pearson's
chi-square goodness of fit, sum (O - E)^2 / E, on one or two groups of cells:

* "ab": the policy slice against the configured weights (E_k = w_k * N_policy) and
  the holdout slice against the uniform split (E_k = N_holdout / K);
* "bandit" / "contextual": per slice, O_k against E_k = expected_assignments_k, the
  sum over every decision of the logged probability of serving k. The assignments
  then are independent but not identically distributed (Poisson-binomial counts);
  their variance sum p_j (1 - p_j) is at most the multinomial one, so comparing to
  the chi-square distribution is slightly conservative.

Group statistics and degrees of freedom (cells - 1 per group) add up, giving one
p-value; SRM is flagged (ok = False) at p < 0.001, the customary strict threshold
for a check that runs continuously. Groups with no traffic are skipped.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy import stats as st

from stats import slices
from stats.inputs import ExperimentAggregate
from stats.results import SRM_THRESHOLD, Reason, finite, jsonable

RESCALE_TOLERANCE = 0.01  # relative gap between sum E and sum O tolerated before rescaling


@dataclass(frozen=True)
class SrmResult:
    p_value: float | None
    ok: bool | None  # None when the check could not run (see reason)
    expected: dict[str, float]  # expected assignments per variant (summed over groups)
    observed: dict[str, int]  # observed assignments per variant (summed over groups)
    method: str
    statistic: float | None = None
    df: int | None = None
    threshold: float = SRM_THRESHOLD
    reason: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)  # codes such as weights_invalid

    def to_dict(self) -> dict:
        return jsonable(self)


def chi_square_gof(observed, expected) -> tuple[float, int, float]:
    """Pearson statistic, df and p-value; cells with E = 0 must have O = 0 (else p = 0)."""
    o = np.asarray(observed, dtype=float)
    e = np.asarray(expected, dtype=float)
    if np.any((e <= 0) & (o > 0)):
        return float("inf"), int(o.size - 1), 0.0  # a variant served with probability 0
    keep = e > 0
    with np.errstate(over="ignore"):  # a vanishing E overflows to inf: p = 0, as it should
        stat = float(np.sum((o[keep] - e[keep]) ** 2 / e[keep]))
    df = int(keep.sum() - 1)
    return stat, df, float(st.chi2.sf(stat, df)) if df > 0 else 1.0


def _counts(agg: ExperimentAggregate, which: str) -> np.ndarray:
    return np.array([slices.pick(agg.slices, v, which).assignments for v in agg.variants], float)


def _valid_weights(agg: ExperimentAggregate) -> bool:
    w = agg.weights
    return (
        w is not None
        and len(w) == len(agg.variants)
        and all(x >= 0 for x in w)
        and abs(sum(w) - 1) < 1e-6
    )


def _ab_groups(agg: ExperimentAggregate):
    notes = []
    k = len(agg.variants)
    if _valid_weights(agg):
        weights = np.asarray(agg.weights, dtype=float)
    else:
        weights = np.full(k, 1 / k)
        notes.append("weights_invalid")
    policy = _counts(agg, "policy")
    holdout = _counts(agg, slices.HOLDOUT)
    groups = [(policy, weights * policy.sum()), (holdout, np.full(k, holdout.sum() / k))]
    return groups, notes, "chi_square_vs_weights"


def _propensity_groups(agg: ExperimentAggregate):
    notes = []
    groups = []
    for which in ("policy", slices.HOLDOUT):
        picked = [slices.pick(agg.slices, v, which) for v in agg.variants]
        observed = np.array([s.assignments for s in picked], dtype=float)
        expected = np.array([s.expected_assignments for s in picked], dtype=float)
        if observed.sum() == 0:
            continue
        if expected.sum() <= 0:
            notes.append(Reason.NO_PROPENSITIES)
            continue
        if abs(expected.sum() - observed.sum()) > RESCALE_TOLERANCE * observed.sum():
            # sum_k E_k must equal the number of decisions; if not, the logged
            # propensities do not cover the same decisions: compare proportions only.
            notes.append("expected_rescaled")
        groups.append((observed, expected * observed.sum() / expected.sum()))
    return groups, notes, "chi_square_vs_propensities"


GROUPS: dict[str, Callable] = {
    "ab": _ab_groups,
    "bandit": _propensity_groups,
    "contextual": _propensity_groups,
}


def check(agg: ExperimentAggregate) -> SrmResult:
    """SRM chi-square over the groups of ``agg.mode`` (see module docstring)."""
    groups, notes, method = GROUPS[agg.mode](agg)
    groups = [(o, e) for o, e in groups if o.sum() > 0]
    observed = np.sum([o for o, _ in groups], axis=0) if groups else np.zeros(len(agg.variants))
    expected = np.sum([e for _, e in groups], axis=0) if groups else np.zeros(len(agg.variants))
    obs_map = {v: int(x) for v, x in zip(agg.variants, observed)}
    exp_map = {v: float(x) for v, x in zip(agg.variants, expected)}
    results = [chi_square_gof(o, e) for o, e in groups]
    df = sum(r[1] for r in results)
    if not groups or df == 0:
        reason = Reason.NO_PROPENSITIES if Reason.NO_PROPENSITIES in notes else Reason.NOT_ENOUGH_DATA
        return SrmResult(None, None, exp_map, obs_map, method, reason=reason, notes=tuple(notes))
    stat = sum(r[0] for r in results)
    p = 0.0 if not np.isfinite(stat) else float(st.chi2.sf(stat, df))
    return SrmResult(
        p_value=p,
        ok=bool(p >= SRM_THRESHOLD),
        expected=exp_map,
        observed=obs_map,
        method=method,
        statistic=finite(stat),
        df=df,
        notes=tuple(notes),
    )
