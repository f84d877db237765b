"""Per-worker cache of each experiment's fitted policy, refreshed from the database.

Learning state lives in the database (counters and contextual arm states written in
the same transaction as the events). Each worker keeps a policy per experiment built
from that state by the experiment's mode (``modes.MODES``) and rebuilds it at most
every ``LEVER_REFRESH_MS``, so a reward reaches every worker's decisions within one
refresh interval and a restarted worker starts from exactly what is stored.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bandits import ContextEncoder

from ..domain.experiments import Experiment
from ..storage import LearningSnapshot, Storage
from .modes import MODES, FittedPolicy, FixedPolicy, holdout_policy
from .segments import segment_encoder


@dataclass
class PolicyEntry:
    """A worker's view of one experiment at one refresh."""

    experiment: Experiment
    snapshot: LearningSnapshot
    policy: FittedPolicy
    loaded_at: float  # monotonic seconds
    refreshed_at: float  # wall-clock seconds
    segmenter: ContextEncoder = field(init=False)
    holdout: FixedPolicy = field(init=False)

    def __post_init__(self) -> None:
        self.segmenter = segment_encoder(self.experiment)
        self.holdout = holdout_policy(self.experiment)

    @property
    def model_version(self) -> int:
        return self.snapshot.model_version

    @property
    def allocation(self) -> np.ndarray | None:
        """P(variant) over the policy slice (None for contextual: it depends on the context)."""
        return self.policy.allocation

    def describe(self, storage: Storage) -> dict[str, Any]:
        """The policy in numbers (and, for contextual policies, words) for ``GET /policy`` and the report."""
        wanted = self.policy.describe_contexts
        contexts = storage.recent_contexts(self.experiment.id, wanted) if wanted else ()
        return {"model_version": self.model_version, "refreshed_at": self.refreshed_at,
                **self.policy.describe(self.experiment, contexts)}


def build_entry(experiment: Experiment, snapshot: LearningSnapshot, draws: int) -> PolicyEntry:
    now = time.time()
    policy = MODES[experiment.mode].fit(experiment, snapshot, now, draws)
    return PolicyEntry(experiment=experiment, snapshot=snapshot, policy=policy, loaded_at=time.monotonic(),
                       refreshed_at=now)


class LearningCache:
    def __init__(self, refresh_ms: int, draws: int) -> None:
        self.refresh_s = refresh_ms / 1000.0
        self.draws = draws
        self._entries: dict[str, PolicyEntry] = {}
        self._lock = threading.Lock()

    def get(self, storage: Storage, key: str, fresh: bool = False) -> PolicyEntry | None:
        """The experiment's policy, rebuilt from storage when older than the refresh interval
        (or always, with ``fresh``: what reports use, so their numbers are current)."""
        entry = self._entries.get(key)
        now = time.monotonic()
        if entry is not None and not fresh and now - entry.loaded_at < self.refresh_s:
            return entry
        experiment = storage.get_experiment(key)
        if experiment is None:
            self._entries.pop(key, None)
            return None
        entry = build_entry(experiment, storage.learning_snapshot(experiment.id), self.draws)
        with self._lock:
            self._entries[key] = entry
        return entry

    def invalidate(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)
