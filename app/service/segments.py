"""Report segments: which context features each experiment breaks its counters down by."""
from __future__ import annotations

from bandits import ContextEncoder, PolicyConfigError

from ..domain.experiments import Experiment

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
