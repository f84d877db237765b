"""Allocation modes as a registry: ``MODES[experiment.mode]`` is the object that fits,
chooses and updates for that mode (see ``base.Mode``); ``holdout_policy`` is the uniform
allocation of the holdout slice. Adding a mode is one module and one line here."""
from __future__ import annotations

from .bandit import BanditMode, arm_statistics
from .base import FittedPolicy, Mode, ModelRebuild, RequestInfo
from .contextual import ContextualMode
from .fixed import ABMode, FixedPolicy, holdout_policy, in_holdout

MODES: dict[str, Mode] = {mode.name: mode for mode in (ABMode(), BanditMode(), ContextualMode())}

__all__ = ["MODES", "FittedPolicy", "FixedPolicy", "Mode", "ModelRebuild", "RequestInfo", "arm_statistics",
           "holdout_policy", "in_holdout"]
