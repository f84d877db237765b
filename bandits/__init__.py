"""Lever's bandit policies: pure numpy/scipy, usable without the service.

Every policy takes its hyperparameters in the constructor (validated there), draws
only from the ``np.random.Generator`` it is handed, and returns a
:class:`~bandits.base.Decision` carrying the propensity of the chosen arm.
"""
from .base import ArmStatistics, Decision, PolicyConfigError, apply_floor, decide, draw_arm, win_probabilities
from .fixed import FixedWeights, Uniform, hash_unit
from .thompson import BetaThompson, NormalThompson

#: Non-contextual Thompson policies by reward type.
THOMPSON_BY_REWARD = {"binary": BetaThompson, "numeric": NormalThompson}
