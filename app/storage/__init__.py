"""The storage room: the only code that speaks SQL.

``open_storage`` picks the backend from the URL scheme (a registry, not a chain of
ifs). One interface (``base.Storage``), two implementations (``sqlite``, ``postgres``)
that share their row mapping and counter arithmetic (``records``) and differ only where
the databases differ. The web layer ties a storage object to the app's lifecycle
(``app.web.db``); the service, the CLI and the benchmarks use it directly.

May import: ``app.domain``, sqlite3 / sqlite-utils / psycopg. Never ``flask``,
``app.service`` or ``app.web``.
"""
from __future__ import annotations

from typing import Any, Callable

from .accounts import AccountStore, DuplicateEmail, InvitationUnavailable
from .audit import AuditStore
from .base import (
    COUNTER_COLUMNS,
    PERIOD_SECONDS,
    ArmTotals,
    DuplicateKey,
    LearningSnapshot,
    ModelRemoval,
    ModelUpdate,
    NewAssignment,
    PrunedLog,
    RewardResult,
    SegmentTotals,
    Storage,
    StorageBusy,
    StorageError,
    StorageOutcomeUnknown,
    StoredAssignment,
    TimeBucket,
)
from .batching import GroupCommitOptions
from .events import NewEvent
from .metric_adaptive import MetricPeriodSums, slice_sums
from .metrics import GuardrailAction, MetricSums
from .postgres import PostgresStorage
from .sqlite import SQLiteStorage


def _group_commit(settings: dict[str, Any], leader_bound_s: float | None = None) -> GroupCommitOptions | None:
    """The batching writer's options (None: every event write in its own transaction).

    Leader mode makes the committing request wait for its own transaction, so it is used only
    where the backend bounds that transaction within the write timeout (``leader_bound_s``: the
    longest one of its commits can block; None: not bounded) — the deadline rule holds for
    every request either way."""
    if not settings.get("LEVER_GROUP_COMMIT", True):
        return None
    timeout_s = settings.get("LEVER_WRITE_TIMEOUT_MS", 10000) / 1000
    return GroupCommitOptions(max_batch=settings.get("LEVER_GROUP_COMMIT_MAX_BATCH", 64),
                              max_wait_s=settings.get("LEVER_GROUP_COMMIT_WAIT_US", 0) / 1e6,
                              timeout_s=timeout_s,
                              leader=(settings.get("LEVER_GROUP_COMMIT_LEADER", True) and leader_bound_s is not None
                                      and leader_bound_s <= timeout_s))


def _sqlite(url: str, settings: dict[str, Any]) -> Storage:
    busy_timeout_ms = settings.get("LEVER_SQLITE_BUSY_TIMEOUT_MS", 5000)
    # a batch's waits: the writers' file lock, then BEGIN IMMEDIATE, each at most the busy timeout
    return SQLiteStorage(url, synchronous=settings.get("LEVER_SQLITE_SYNCHRONOUS", "NORMAL"),
                         busy_timeout_ms=busy_timeout_ms,
                         group_commit=_group_commit(settings, leader_bound_s=2 * busy_timeout_ms / 1000))


def _postgres(url: str, settings: dict[str, Any]) -> Storage:
    return PostgresStorage(url, group_commit=_group_commit(settings))


BACKENDS: dict[str, Callable[[str, dict[str, Any]], Storage]] = {
    "sqlite": _sqlite,
    "postgres": _postgres,
    "postgresql": _postgres,
}


def open_storage(url: str, settings: dict[str, Any] | None = None) -> Storage:
    scheme = url.split(":", 1)[0]
    if scheme not in BACKENDS:
        raise ValueError(f"unsupported database URL scheme {scheme!r}")
    return BACKENDS[scheme](url, settings or {})


__all__ = [
    "COUNTER_COLUMNS", "PERIOD_SECONDS", "AccountStore", "ArmTotals", "AuditStore", "BACKENDS", "DuplicateEmail", "GroupCommitOptions",
    "GuardrailAction", "InvitationUnavailable", "DuplicateKey", "LearningSnapshot", "MetricPeriodSums", "MetricSums", "ModelRemoval",
    "ModelUpdate", "NewEvent",
    "NewAssignment", "SegmentTotals", "TimeBucket", "PrunedLog", "RewardResult", "Storage",
    "StorageBusy", "StorageError", "StorageOutcomeUnknown", "StoredAssignment", "open_storage", "slice_sums",
]
