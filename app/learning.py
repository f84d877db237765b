"""Per-worker cache of each experiment's policy, refreshed from the database.

Learning state lives in the database (counters and contextual arm states written in
the same transaction as the events). Each worker keeps a policy per experiment built
from that state and rebuilds it at most every ``LEVER_REFRESH_MS``, so a reward
reaches every worker's decisions within one refresh interval and a restarted worker
starts from exactly what is stored.

For the non-contextual bandit the allocation vector (Thompson win probabilities with
the ``min_share`` floor) is computed once per refresh from a generator seeded with
(experiment id, model version): two workers that read the same state compute the same
allocation, bit for bit.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from bandits import THOMPSON_BY_REWARD, ArmStatistics, FixedWeights, Uniform

from .experiments import Experiment
from .storage import LearningSnapshot, Storage


@dataclass
class PolicyEntry:
    """A worker's view of one experiment at one refresh."""

    experiment: Experiment
    snapshot: LearningSnapshot
    loaded_at: float  # monotonic seconds
    refreshed_at: float  # wall-clock seconds
    allocation: np.ndarray | None = None  # non-contextual modes: P(variant) for the policy slice
    posterior_mean: np.ndarray | None = None
    posterior_interval: np.ndarray | None = None
    contextual: Any = None  # contextual mode: a fitted contextual model (see app.contextual)
    segmenter: Any = None  # ContextEncoder of the report's segment features
    uniform: FixedWeights = field(init=False)

    def __post_init__(self) -> None:
        self.uniform = Uniform(len(self.experiment.variants))

    @property
    def model_version(self) -> int:
        return self.snapshot.model_version


def arm_statistics(experiment: Experiment, snapshot: LearningSnapshot) -> list[ArmStatistics]:
    """Per-variant outcome statistics over all traffic (holdout decisions are data too)."""
    by_variant: dict[int, list[float]] = {v.id: [0.0, 0.0, 0.0, 0.0] for v in experiment.variants}
    for totals in snapshot.totals:
        if totals.variant_id in by_variant:
            row = by_variant[totals.variant_id]
            row[0] += totals.assignments
            row[1] += totals.conversions
            row[2] += totals.reward_sum
            row[3] += totals.reward_sumsq
    return [ArmStatistics(*by_variant[v.id]) for v in experiment.variants]


def _thompson(entry: PolicyEntry, draws: int) -> None:
    experiment = entry.experiment
    policy_class = THOMPSON_BY_REWARD[experiment.reward]
    policy = policy_class(n_arms=len(experiment.variants), min_share=experiment.min_share, draws=draws)
    policy.fit(arm_statistics(experiment, entry.snapshot))
    rng = np.random.default_rng([experiment.id, entry.model_version])
    entry.allocation = policy.allocation(rng)
    entry.posterior_mean = policy.posterior_mean()
    entry.posterior_interval = policy.posterior_interval()


def _fixed(entry: PolicyEntry, draws: int) -> None:
    weights = entry.experiment.weights or tuple(1.0 for _ in entry.experiment.variants)
    entry.allocation = FixedWeights(weights).probabilities


def _contextual(entry: PolicyEntry, draws: int) -> None:
    from .contextual import fit_contextual  # keeps the contextual machinery out of the plain path

    entry.contextual = fit_contextual(entry.experiment, entry.snapshot, now=entry.refreshed_at)


#: How each mode turns a learning snapshot into a ready policy.
POLICY_BUILDERS: dict[str, Callable[[PolicyEntry, int], None]] = {
    "bandit": _thompson,
    "ab": _fixed,
    "contextual": _contextual,
}


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
        entry = self.build(experiment, storage.learning_snapshot(experiment.id))
        with self._lock:
            self._entries[key] = entry
        return entry

    def build(self, experiment: Experiment, snapshot: LearningSnapshot) -> PolicyEntry:
        entry = PolicyEntry(experiment=experiment, snapshot=snapshot, loaded_at=time.monotonic(),
                            refreshed_at=time.time())
        POLICY_BUILDERS[experiment.mode](entry, self.draws)
        from .analysis import segment_encoder

        entry.segmenter = segment_encoder(experiment)
        return entry

    def invalidate(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)
