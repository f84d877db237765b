"""The interface every allocation mode implements.

A *mode* (``ab``, ``bandit``, ``contextual``) turns a learning snapshot into a
``FittedPolicy`` once per refresh; the fitted policy chooses a variant with its exact
propensity, says how its model changes with a decision or a reward, explains a decision
and describes itself for ``GET /policy``. The holdout's uniform allocation is the same
kind of object (``modes.holdout``). Adding a mode means one new module and one line in
the registry (``modes.MODES``); nothing else branches on the mode's name.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from bandits import Decision

from ...domain.experiments import Experiment
from ...storage import LearningSnapshot, ModelUpdate, StoredAssignment

#: For ``rebuild-stats``: (events, rewards) of the log → fresh model state BLOBs per variant id.
ModelRebuild = Callable[[Iterable[dict[str, Any]], Iterable[tuple[int, float, float]]], dict[int, bytes]]


@dataclass(frozen=True)
class RequestInfo:
    """What the web layer knows about the request beyond its body (for enrichment)."""

    now: float
    user_agent: str = ""
    origin: str | None = None


class FittedPolicy(abc.ABC):
    """One experiment's policy at one model version (immutable once fitted)."""

    #: P(variant) over the policy slice for non-contextual modes (None: depends on the context)
    allocation: np.ndarray | None = None
    #: how many recent logged contexts ``describe`` wants (0: none)
    describe_contexts: int = 0

    def features(self, context: Mapping[str, Any]) -> Any:
        """The context as this policy reads it, computed once per decision (default: unused)."""
        return None

    @abc.abstractmethod
    def select(self, experiment: Experiment, visitor: str, features: Any, rng: np.random.Generator) -> Decision:
        """Choose a variant for this visitor (as sent: it decides hash buckets) and its features."""

    def decision_update(self, features: Any, now: float) -> ModelUpdate | None:
        """The model-state change of serving the chosen variant (None: counters only)."""
        return None

    def reward_update(self, assignment: StoredAssignment, value: float, now: float) -> ModelUpdate | None:
        """The model-state change of a reward to ``assignment`` (None: counters only)."""
        return None

    def explain(self, features: Any) -> dict[str, Any] | None:
        """Why this context gets what it gets, for the assign response (None: nothing to say)."""
        return None

    @abc.abstractmethod
    def describe(self, experiment: Experiment, recent_contexts: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
        """``allocation`` and ``posterior`` (keyed by variant) for ``GET /api/v1/experiments/<key>/policy``."""


class Mode(abc.ABC):
    """How one allocation mode learns; stateless (all state lives in the snapshot)."""

    name: str

    @abc.abstractmethod
    def fit(self, experiment: Experiment, snapshot: LearningSnapshot, now: float, draws: int) -> FittedPolicy:
        """The policy of this learning snapshot (deterministic per experiment and model version)."""

    def prepare_context(self, experiment: Experiment, stored_visitor: str, context: Mapping[str, Any],
                        info: RequestInfo, visit_count: Callable[[str], int]) -> Mapping[str, Any]:
        """The context as it is logged with the decision (default: as sent)."""
        return context

    def removal_update(self, experiment: Experiment, context: Mapping[str, Any], decided_at: float,
                       reward_total: float) -> ModelUpdate | None:
        """Erasure: the change that takes one assignment out of its model state (None: counters only)."""
        return None

    def rebuilder(self, experiment: Experiment) -> ModelRebuild | None:
        """``rebuild-stats``: replay the log into model states (None: counters only)."""
        return None
