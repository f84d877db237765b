"""The storage interface: records that cross it, and the operations every backend offers.

Nothing outside this package writes SQL. Each public method is one short transaction;
a method that raises has written nothing. Learning state is kept as transactional
counters next to the event log (``arm_stats``), so every worker reads the same
posterior, and ``rebuild_arm_stats`` can re-derive the counters from the log.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Sequence

from ..domain.audit import AuditEntry
from ..domain.experiments import Experiment, ExperimentSpec


class StorageError(Exception):
    """Base class for storage failures that are not the caller's fault."""


class StorageBusy(StorageError):
    """The database is locked or unreachable right now; retrying later may succeed."""


class StorageOutcomeUnknown(StorageBusy):
    """The connection dropped during COMMIT and whether it landed could not be checked:
    the write may or may not be in the database."""


class PrunedLog(StorageError):
    """The raw event log was pruned by retention: what needs all of it cannot run."""


class DuplicateKey(StorageError):
    """An experiment with this key exists already."""


#: Counters are kept per hour of assignment time (the report's time series).
PERIOD_SECONDS = 3600


def period_of(timestamp: float) -> int:
    return int(timestamp // PERIOD_SECONDS) * PERIOD_SECONDS


#: Callback applied inside the write transaction to a contextual arm's state BLOB.
ModelUpdate = Callable[[bytes | None], bytes]
#: (experiment_id, context, decided_at, reward_total) -> the update that takes one
#: erased assignment out of its contextual arm state (None: nothing to change)
ModelRemoval = Callable[[int, Mapping[str, Any], float, float], "ModelUpdate | None"]


@dataclass(frozen=True)
class NewAssignment:
    experiment_id: int
    variant_id: int
    visitor: str
    sticky: bool
    context: Mapping[str, Any]
    propensity: float
    #: allocation probability of every variant for this decision, keyed by variant id
    probabilities: Mapping[int, float]
    holdout: bool
    model_version: int
    created_at: float
    model_update: ModelUpdate | None = None
    #: report segment of this visitor per feature (bounded levels), counted in segment_stats
    segments: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StoredAssignment:
    id: int
    experiment_id: int
    variant_id: int
    visitor: str
    context: Mapping[str, Any]
    propensity: float
    holdout: bool
    model_version: int
    created_at: float
    reward_total: float = 0.0
    reward_count: int = 0
    existing: bool = False  # True when a sticky assignment already existed


@dataclass(frozen=True)
class RewardResult:
    accepted: bool  # False when it was a duplicate and nothing changed
    reward_total: float
    reward_count: int


@dataclass(frozen=True)
class ArmTotals:
    """Counters of one variant in one slice (holdout or policy), summed over shards.

    Outcome sums are over the *rewarded* assignments only, of y - K with K the experiment's
    ``reward_shift`` (issue #16; ``stats.welford`` explains the algebra and turns them into
    sums over every assignment): reward_sum = Σ_r (y-K), reward_sumsq = Σ_r (y-K)²,
    ips_reward_sum = Σ_r (y-K)/p, ips_reward_sumsq = Σ_r (y-K)²/p², ips_cross_sum = Σ_r (y-K)/p²,
    rewarded_inv_sum = Σ_r 1/p, rewarded_inv_sumsq = Σ_r 1/p². ``conversions`` counts the
    rewarded assignments. With K = 0 (binary experiments, and numeric ones rewarded before
    schema v8 until a rebuild) these are the raw sums over every assignment.
    """

    variant_id: int
    holdout: bool
    assignments: int = 0
    conversions: int = 0
    reward_events: int = 0
    reward_sum: float = 0.0
    reward_sumsq: float = 0.0
    expected_assignments: float = 0.0
    inv_propensity_sum: float = 0.0
    inv_propensity_sumsq: float = 0.0
    ips_reward_sum: float = 0.0
    ips_reward_sumsq: float = 0.0
    ips_cross_sum: float = 0.0
    rewarded_inv_sum: float = 0.0
    rewarded_inv_sumsq: float = 0.0
    #: K of the outcome sums (not a counter: the experiment's, read with them)
    reward_shift: float = 0.0


#: counter columns of arm_stats, in ArmTotals order (after variant_id, holdout)
COUNTER_COLUMNS: tuple[str, ...] = tuple(
    name for name in ArmTotals.__dataclass_fields__ if name not in ("variant_id", "holdout", "reward_shift")
)


@dataclass(frozen=True)
class LearningSnapshot:
    """What a worker needs to rebuild its policy: counters and contextual states."""

    totals: tuple[ArmTotals, ...]
    model_states: Mapping[int, bytes] = field(default_factory=dict)

    @property
    def model_version(self) -> int:
        """Number of learning events (decisions + rewards) folded into this state."""
        return int(sum(t.assignments + t.reward_events for t in self.totals))


@dataclass(frozen=True)
class SegmentTotals:
    """Sums of one (feature value, variant, slice) cell, for the segment breakdown (outcome sums
    over the rewarded assignments, of y - ``reward_shift``, as in ``ArmTotals``)."""

    feature: str
    level: str
    variant_id: int
    holdout: bool
    assignments: int
    conversions: int
    reward_sum: float
    reward_sumsq: float
    reward_shift: float = 0.0


@dataclass(frozen=True)
class TimeBucket:
    """Assignments made in one time bucket, per variant and slice, with their outcomes so far
    (``reward_sum``: the raw Σy)."""

    bucket_start: float
    variant_id: int
    holdout: bool
    assignments: int
    conversions: int
    reward_sum: float


class Storage(abc.ABC):
    """One interface, one implementation per database."""

    url: str

    # -- lifecycle ---------------------------------------------------------------
    @abc.abstractmethod
    def migrate(self) -> int:
        """Create or upgrade the schema; idempotent. Returns the schema version."""

    @abc.abstractmethod
    def healthy(self) -> bool: ...

    @abc.abstractmethod
    def close(self) -> None:
        """Let go of connections and threads; implementations start with ``_run_close_hooks``."""

    def on_close(self, hook: Callable[[], None]) -> None:
        """Call ``hook`` when this storage is closed (background schedules stop with it)."""
        self.__dict__.setdefault("_close_hooks", []).append(hook)

    def _run_close_hooks(self) -> None:
        for hook in self.__dict__.pop("_close_hooks", []):
            hook()

    def release(self) -> None:
        """End of a request: give back anything request-scoped (default: nothing)."""

    # -- settings kept in the database ---------------------------------------------
    @abc.abstractmethod
    def get_meta(self, key: str) -> str | None: ...

    @abc.abstractmethod
    def set_meta_default(self, key: str, value: str) -> str:
        """Store ``value`` unless the key exists; return the stored value."""

    # -- experiments -------------------------------------------------------------
    @abc.abstractmethod
    def create_experiment(self, spec: ExperimentSpec, now: float, audit: AuditEntry | None = None) -> Experiment:
        """Create it (``DuplicateKey`` if the key is taken); ``audit`` is written in the same transaction."""

    @abc.abstractmethod
    def get_experiment(self, key: str) -> Experiment | None: ...

    @abc.abstractmethod
    def list_experiments(self) -> list[Experiment]: ...

    @abc.abstractmethod
    def set_status(self, key: str, status: str, winner: str | None, now: float,
                   audit: AuditEntry | None = None) -> Experiment | None: ...

    # -- the event log -----------------------------------------------------------
    @abc.abstractmethod
    def find_sticky_assignment(self, experiment_id: int, visitor: str) -> StoredAssignment | None: ...

    @abc.abstractmethod
    def record_assignments(self, items: Sequence[NewAssignment]) -> list[StoredAssignment]:
        """Insert assignments and their counters in one transaction.

        For a sticky experiment where the visitor already has an assignment (another
        worker won the race), the existing row is returned with ``existing=True`` and
        no counter moves.
        """

    @abc.abstractmethod
    def get_assignment(self, assignment_id: int) -> StoredAssignment | None: ...

    @abc.abstractmethod
    def latest_assignment(self, experiment_id: int, visitor: str) -> StoredAssignment | None: ...

    @abc.abstractmethod
    def record_reward(
        self,
        assignment: StoredAssignment,
        value: float,
        event_id: str | None,
        binary: bool,
        now: float,
        model_update: ModelUpdate | None = None,
    ) -> RewardResult:
        """Add a reward to an assignment, idempotently, with its counters, in one transaction.

        Binary experiments count at most one conversion per assignment; numeric ones
        sum values, de-duplicated by ``event_id`` when given.
        """

    @abc.abstractmethod
    def learning_snapshot(self, experiment_id: int) -> LearningSnapshot: ...

    @abc.abstractmethod
    def iter_events(self, experiment_id: int, batch_size: int = 1000) -> Iterator[dict[str, Any]]:
        """Every assignment of the experiment with its reward total and count, in id order."""

    @abc.abstractmethod
    def rebuild_arm_stats(self, experiment: Experiment, model_rebuild: Callable[..., Any] | None = None) -> None:
        """Recompute every counter of the experiment (and with ``model_rebuild`` its contextual
        states) from the event log; ``PrunedLog`` once ``prune_events`` has deleted any of it.

        Reward events of binary experiments that did not convert are not stored, so
        ``reward_events`` equals ``reward_count`` summed over assignments for both types.
        """

    @abc.abstractmethod
    def visitor_events(self, visitor: str) -> list[dict[str, Any]]:
        """Every assignment of the visitor in every experiment, with its rewards (data export)."""

    @abc.abstractmethod
    def erase_visitor(self, visitor: str, model_removal: ModelRemoval | None = None,
                      audit: AuditEntry | None = None) -> int:
        """Delete the visitor's assignments and rewards and take them out of every counter, in one
        transaction, so reported totals equal a rebuild from what remains; returns the count.
        ``audit`` (written in the same transaction) must not name the visitor."""

    @abc.abstractmethod
    def prune_events(self, before: float) -> int:
        """Delete raw events of assignments made before ``before``; the counters (and so every
        reported total) are kept. Rebuilding counters from the log is refused afterwards."""

    @abc.abstractmethod
    def period_totals(self, experiment_id: int) -> list[tuple[int, tuple[ArmTotals, ...]]]:
        """Every counter per (hour period, variant, slice), oldest period first."""

    @abc.abstractmethod
    def segment_totals(self, experiment_id: int) -> list[SegmentTotals]:
        """Per (segment feature, level, variant, slice) sums from the segment counters."""

    @abc.abstractmethod
    def time_series(self, experiment_id: int) -> list[TimeBucket]:
        """Assignments per hour of assignment time, variant and slice, with their outcomes so far."""

    @abc.abstractmethod
    def visit_count(self, visitor: str) -> int:
        """How many assignments this visitor has had across all experiments."""
