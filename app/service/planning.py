"""Planning an experiment's size before launch: visitors needed for a minimum detectable effect,
under the fixed-horizon test (declare it as ``planned_visitors``) and under the always-valid rule."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stats import power

from ..domain.errors import ValidationError


@dataclass(frozen=True)
class PlanRequest:
    mde: float  # minimum detectable effect (relative to the baseline unless ``relative`` is false)
    baseline_rate: float | None = None  # conversion metrics
    baseline_mean: float | None = None  # numeric metrics, with ``sd``
    sd: float | None = None
    relative: bool = True
    variants: int = 2
    alpha: float = 0.05
    power: float = 0.8


def plan(request: PlanRequest) -> dict[str, Any]:
    """Visitors per variant and in total for each decision rule (null with a reason when impossible)."""
    if (request.baseline_rate is None) == (request.baseline_mean is None):
        raise ValidationError("give baseline_rate (conversion) or baseline_mean with sd (numeric)")
    if request.baseline_mean is not None and (request.sd is None or request.sd <= 0):
        raise ValidationError("a numeric baseline needs sd > 0")
    rules = {}
    for rule in ("fixed_horizon", "anytime_valid"):
        result = power.required_visitors(
            request.mde, baseline_rate=request.baseline_rate, baseline_mean=request.baseline_mean, sd=request.sd,
            alpha=request.alpha, power=request.power, rule=rule, variants=request.variants,
            relative=request.relative)
        rules[rule] = {"per_variant": result.per_variant, "total": result.total,
                       "difference": result.difference, "reason": result.reason}
    return {"alpha": request.alpha, "power": request.power, "variants": request.variants, **rules,
            "planned_visitors": rules["fixed_horizon"]["total"]}
