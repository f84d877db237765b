"""From stored counters to the statistics engine: build the aggregate, run ``stats.analyse``.

Everything is summed in SQL by the storage layer (counters kept per variant and
traffic slice, segment and time-bucket GROUP BYs); this module only relabels ids as
variant keys and chooses which context features to break down.
"""
from __future__ import annotations

from typing import Any

import stats
from bandits import ContextEncoder, PolicyConfigError
from stats import ExperimentAggregate, SegmentAggregate, SliceAggregate

from .experiments import Experiment
from .learning import PolicyEntry
from .storage import ArmTotals, Storage

#: context keys the snippet always sends, broken down for every experiment unless declared otherwise
DEFAULT_SEGMENT_FEATURES = (
    {"name": "device", "type": "categorical", "levels": ["mobile", "desktop", "tablet", "bot"]},
    {"name": "returning", "type": "boolean"},
)
SEGMENT_TYPES = ("categorical", "boolean")


def segment_encoder(experiment: Experiment) -> ContextEncoder:
    """The experiment's segment features: declared categorical/boolean ones plus device and returning.

    Levels are bounded (declared levels, "(other)", "(missing)"), so a client cannot
    create unbounded report rows.
    """
    declared = [dict(f) for f in experiment.context if f.get("type") in SEGMENT_TYPES]
    names = {f["name"] for f in experiment.context}
    defaults = [dict(f) for f in DEFAULT_SEGMENT_FEATURES if f["name"] not in names]
    try:
        return ContextEncoder.from_schema(declared + defaults)
    except PolicyConfigError:  # the declared features fill the encoder's limits: no room for the defaults
        return ContextEncoder.from_schema(declared)


def _slice(key: str, totals: ArmTotals) -> SliceAggregate:
    fields = {name: getattr(totals, name) for name in SliceAggregate.__dataclass_fields__ if hasattr(totals, name)
              and name not in ("variant", "holdout")}
    return SliceAggregate(variant=key, holdout=totals.holdout, **fields)


def build_aggregate(experiment: Experiment, entry: PolicyEntry, storage: Storage,
                    with_segments: bool = True) -> ExperimentAggregate:
    keys = {v.id: v.key for v in experiment.variants}
    slices = tuple(_slice(keys[t.variant_id], t) for t in entry.snapshot.totals if t.variant_id in keys)
    segments: list[SegmentAggregate] = []
    if with_segments:
        for cell in storage.segment_totals(experiment.id):
            if cell.variant_id not in keys:
                continue
            segments.append(SegmentAggregate(
                feature=cell.feature,
                level=cell.level,
                slice=SliceAggregate(variant=keys[cell.variant_id], holdout=cell.holdout,
                                     assignments=cell.assignments, conversions=cell.conversions,
                                     reward_sum=cell.reward_sum, reward_sumsq=cell.reward_sumsq),
            ))
    allocation = None
    if entry.allocation is not None:
        allocation = tuple(float(p) for p in entry.allocation)
    return ExperimentAggregate(
        key=experiment.key, mode=experiment.mode, reward=experiment.reward, control=experiment.control,
        variants=experiment.variant_keys, slices=slices, weights=experiment.weights,
        holdout_share=experiment.holdout, current_allocation=allocation, segments=tuple(segments),
        seed=experiment.id,
    )


def experiment_stats(experiment: Experiment, entry: PolicyEntry, storage: Storage) -> dict[str, Any]:
    result = stats.analyse(build_aggregate(experiment, entry, storage)).to_dict()
    result["model_version"] = entry.model_version
    result["status"] = experiment.status
    return result
