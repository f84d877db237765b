"""Segment breakdown: per (feature, level), each variant's rate/mean and uplift vs control.

Segments use the same traffic as the headline tests (all traffic for "ab", the
uniform holdout for bandit modes) and the same tests. Many segments x variants means
many comparisons, so p-values are Benjamini-Hochberg adjusted across *all* segment
comparisons of the experiment (false-discovery-rate control: segment results are
exploratory, FWER control would leave almost no power).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from stats import metrics, multiple, slices
from stats.inputs import ExperimentAggregate, SegmentAggregate
from stats.results import ALPHA, Uplift, finite, jsonable


@dataclass(frozen=True)
class SegmentVariant:
    key: str
    visitors: int
    conversions: int
    rate: float | None
    mean: float | None
    ci: tuple[float, float] | None
    uplift: Uplift | None  # None for the control


@dataclass(frozen=True)
class Segment:
    feature: str
    level: str
    variants: tuple[SegmentVariant, ...]

    def to_dict(self) -> dict:
        return jsonable(self)


def _groups(segments: tuple[SegmentAggregate, ...]) -> dict[tuple[str, str], list]:
    groups: dict[tuple[str, str], list] = {}
    for seg in segments:
        groups.setdefault((seg.feature, seg.level), []).append(seg.slice)
    return groups


def analyse(agg: ExperimentAggregate, which: str, alpha: float = ALPHA) -> tuple[Segment, ...]:
    """Per-segment comparisons on traffic ``which`` with BH-adjusted p-values."""
    metric = metrics.METRICS[agg.reward]
    raw = []
    for (feature, level), group in _groups(agg.segments).items():
        control = slices.pick(group, agg.control, which)
        rows = []
        for v in agg.variants:
            arm = slices.pick(group, v, which)
            s = metrics.summarise(metric, v, arm, alpha)
            up = None if v == agg.control else metrics.uplift(metric, control, arm, alpha)
            rows.append(SegmentVariant(v, s.visitors, s.conversions, s.rate, s.mean, s.ci, up))
        raw.append(Segment(feature, level, tuple(rows)))

    p = [r.uplift.p_value for seg in raw for r in seg.variants if r.uplift is not None]
    adjusted = iter(multiple.benjamini_hochberg(np.array(p, dtype=float)))
    out = []
    for seg in raw:
        rows = []
        for r in seg.variants:
            if r.uplift is not None:
                up = dataclasses.replace(r.uplift, p_value_adjusted=finite(next(adjusted)))
                r = dataclasses.replace(r, uplift=up)
            rows.append(r)
        out.append(dataclasses.replace(seg, variants=tuple(rows)))
    return tuple(out)
