"""Lever's bandit policies: pure numpy/scipy, usable without the service.

Every policy takes its hyperparameters in the constructor (validated there), draws
only from the ``np.random.Generator`` it is handed, and returns a
:class:`~bandits.base.Decision` carrying the propensity of the chosen arm.
"""
from .arm_state import clamp_reward, load_arm_state, remove_decision
from .base import ArmStatistics, Decision, PolicyConfigError, apply_floor, decide, draw_arm, win_probabilities
from .encoding import FEATURE_TYPES, ContextEncoder, EncodedContext
from .enrichment import device_class, enrich, hour_and_weekday
from .fixed import FixedWeights, Uniform, hash_unit
from .linear import (
    CONTEXTUAL_POLICIES,
    ContextualDecision,
    ContextualPolicy,
    ContextualSelection,
    LinearArmState,
    LinearThompson,
    add_decision,
    add_reward,
    decay_to,
)
from .thompson import BetaThompson, NormalThompson
from .describe import PolicyDescription, describe
from .schema import normalise_schema

#: Non-contextual Thompson policies by reward type.
THOMPSON_BY_REWARD = {"binary": BetaThompson, "numeric": NormalThompson}

__all__ = [
    "ArmStatistics",
    "BetaThompson",
    "CONTEXTUAL_POLICIES",
    "ContextEncoder",
    "ContextualDecision",
    "ContextualPolicy",
    "ContextualSelection",
    "Decision",
    "EncodedContext",
    "FEATURE_TYPES",
    "FixedWeights",
    "LinearArmState",
    "LinearThompson",
    "NormalThompson",
    "PolicyDescription",
    "PolicyConfigError",
    "THOMPSON_BY_REWARD",
    "Uniform",
    "add_decision",
    "add_reward",
    "apply_floor",
    "clamp_reward",
    "decay_to",
    "decide",
    "describe",
    "device_class",
    "draw_arm",
    "enrich",
    "hash_unit",
    "hour_and_weekday",
    "load_arm_state",
    "normalise_schema",
    "remove_decision",
    "win_probabilities",
]
