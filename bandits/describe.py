"""What a fitted contextual policy has learnt, as plain data and in a marketer's words.

:func:`describe` takes the fitted :class:`~bandits.linear.LinearThompson`, its encoder,
the variant names and a sample of recent raw contexts (what the service stored with
its latest assignments) and returns a :class:`PolicyDescription`:

* ``coefficients``: per variant and encoded column, the posterior mean of the
  coefficient with a central interval mean +/- z sd (Gaussian posterior, sd from
  the diagonal of s2 A_a^-1). For binary rewards the unit is a probability.
* ``average_allocation``: the mean over the sample of P(serve variant | context), i.e.
  the traffic share each variant gets from visitors like the recent ones.
* ``combinations``: segments of the sample (one feature, or a declared cross such as
  device x hour) whose predicted best variant differs from the overall best, e.g.
  "mobile + evening → b (+2.1 pp vs c, 81% of their traffic, 240 visitors)". The
  lift is the posterior-mean click rate of the segment's best variant minus that of
  the overall best variant, averaged over the segment's visitors.

Every number is finite (JSON-safe); a description with no contexts says so in
``reason`` instead of dividing by zero.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
from scipy import stats as st

from .encoding import (
    MISSING_LEVEL,
    BooleanFeature,
    CategoricalFeature,
    ContextEncoder,
    CyclicFeature,
    NumericFeature,
    _as_number,
    _Feature,
)
from .linear import LinearThompson

REASON_NO_CONTEXTS = "no_recent_contexts"

_DAY_PARTS = ((0, 6, "night"), (6, 12, "morning"), (12, 18, "afternoon"), (18, 24, "evening"))
_WEEK_PARTS = ((0, 5, "weekday"), (5, 7, "weekend"))  # 0 = Monday (bandits.enrichment)


def _finite(value: float) -> float:
    value = float(value)
    return value if np.isfinite(value) else 0.0


def segment_label(feature: _Feature, value: Any) -> str | None:
    """A word for the segment a raw value belongs to; None when the type has none (hashed)."""
    if isinstance(feature, (CategoricalFeature, BooleanFeature)):
        level = feature.segment(value)
        if isinstance(feature, BooleanFeature) and level in ("true", "false"):
            return feature.name if level == "true" else f"not {feature.name}"
        return f"{feature.name} {level}" if level == MISSING_LEVEL else level
    number = _as_number(value) if value is not None else None
    if isinstance(feature, CyclicFeature):
        if number is None or not np.isfinite(number):
            return f"{feature.name} {MISSING_LEVEL}"
        phase = float(np.mod(number, feature.period))
        if feature.parts:  # the parts the user declared are the segments they think in
            i = feature.part_of(phase)
            end = feature.parts[(i + 1) % len(feature.parts)]
            return f"{feature.name} {feature.parts[i]:g}–{end:g}"
        parts = {24.0: _DAY_PARTS, 7.0: _WEEK_PARTS}.get(feature.period)
        if parts is None:
            quarter = min(int(4 * phase / feature.period), 3)
            return f"{feature.name} Q{quarter + 1}"
        return next(label for low, high, label in parts if low <= phase < high)
    if isinstance(feature, NumericFeature):
        if number is None:
            return f"{feature.name} {MISSING_LEVEL}"
        middle = 0.5 * (feature.low + feature.high)
        return f"low {feature.name}" if number < middle else f"high {feature.name}"
    return None


@dataclass(frozen=True)
class Combination:
    segment: dict[str, str]
    variant: str
    versus: str
    lift_pp: float
    share: float
    contexts: int
    text: str

    def to_dict(self) -> dict:
        return {
            "segment": dict(self.segment),
            "variant": self.variant,
            "versus": self.versus,
            "lift_pp": round(self.lift_pp, 3),
            "share": round(self.share, 4),
            "contexts": self.contexts,
            "text": self.text,
        }


@dataclass(frozen=True)
class PolicyDescription:
    variants: list[str]
    columns: list[str]
    coefficients: dict[str, list[dict]]
    average_allocation: dict[str, float] | None
    predicted: dict[str, float] | None
    combinations: list[Combination] = field(default_factory=list)
    contexts: int = 0
    level: float = 0.95
    reason: str | None = None
    fit_reason: str | None = None

    def to_dict(self) -> dict:
        return {
            "policy": LinearThompson.name,
            "variants": list(self.variants),
            "contexts": self.contexts,
            "level": self.level,
            "average_allocation": self.average_allocation,
            "predicted": self.predicted,
            "coefficients": self.coefficients,
            "combinations": [c.to_dict() for c in self.combinations],
            "reason": self.reason,
            "fit_reason": self.fit_reason,
        }


def _coefficients(policy: LinearThompson, variants: Sequence[str], columns: Sequence[str], z: float) -> dict:
    means = policy.posterior_means()
    sds = policy.posterior_sd()
    return {
        variant: [
            {"column": column, "mean": _finite(m), "low": _finite(m - z * s), "high": _finite(m + z * s)}
            for column, m, s in zip(columns, means[arm], sds[arm])
        ]
        for arm, variant in enumerate(variants)
    }


def describe(
    policy: LinearThompson,
    encoder: ContextEncoder,
    variants: Sequence[str],
    recent_contexts: Sequence[Mapping[str, Any]] = (),
    level: float = 0.95,
    min_contexts: int = 20,
    min_lift_pp: float = 0.2,
    max_combinations: int = 12,
) -> PolicyDescription:
    """Describe the fitted policy on a sample of recent raw contexts (see module doc)."""
    variants = list(variants)
    columns = encoder.columns()
    z = float(st.norm.ppf(0.5 + level / 2))
    coefficients = _coefficients(policy, variants, columns, z)
    contexts = [c if isinstance(c, Mapping) else {} for c in recent_contexts]
    if not contexts:
        return PolicyDescription(variants, columns, coefficients, None, None, [], 0, level, REASON_NO_CONTEXTS,
                                 policy.reason)
    xs = np.stack([encoder.encode(c).vector for c in contexts])
    allocations = np.stack([policy.allocation_for(x) for x in xs])
    predicted = xs @ policy.posterior_means().T  # (n, K) posterior-mean reward
    overall_best = int(predicted.mean(axis=0).argmax())
    combinations = _combinations(encoder, variants, contexts, allocations, predicted, overall_best,
                                 min_contexts, min_lift_pp)
    return PolicyDescription(
        variants,
        columns,
        coefficients,
        {v: _finite(p) for v, p in zip(variants, allocations.mean(axis=0))},
        {v: _finite(p) for v, p in zip(variants, predicted.mean(axis=0))},
        combinations[:max_combinations],
        len(contexts),
        level,
        None,
        policy.reason,
    )


def _combinations(encoder, variants, contexts, allocations, predicted, overall_best, min_contexts, min_lift_pp):
    features = {f.name: f for f in encoder.features}
    dimensions = [(f.name,) for f in encoder.features] + [tuple(pair) for pair in encoder.crosses]
    labels = {
        name: [segment_label(feature, c.get(name)) for c in contexts] for name, feature in features.items()
    }
    found: list[Combination] = []
    for names in dimensions:
        if any(labels[n][0] is None for n in names):  # hashed features have no readable segments
            continue
        keys = list(zip(*(labels[n] for n in names)))
        for key in sorted(set(keys)):
            members = np.fromiter((k == key for k in keys), dtype=bool, count=len(keys))
            count = int(members.sum())
            if count < min_contexts:
                continue
            rates = predicted[members].mean(axis=0)
            best = int(rates.argmax())
            lift = 100.0 * float(rates[best] - rates[overall_best])
            if best == overall_best or not np.isfinite(lift) or lift < min_lift_pp:
                continue
            share = float(allocations[members, best].mean())
            words = " + ".join(key)
            text = (f"{words} → {variants[best]} (+{lift:.1f} pp vs {variants[overall_best]},"
                    f" {100 * share:.0f}% of their traffic, {count} visitors)")
            found.append(Combination(dict(zip(names, key)), variants[best], variants[overall_best], lift, share,
                                     count, text))
    # the largest effects on the most visitors first
    found.sort(key=lambda c: -c.lift_pp * np.sqrt(c.contexts))
    return found
