"""Privacy: how visitor ids are kept at rest, erasure and export, retention.

With ``LEVER_HASH_VISITORS`` the database never sees a visitor id as the page sent it:
every id is replaced by a keyed hash (HMAC-SHA256 with ``LEVER_SECRET_KEY``), the same
for every worker and restart, so stickiness, server-side rewards, erasure and export
keep working from the id the page knows. Bucketing (A/B and holdout) hashes the id as
sent, so switching this setting never moves a visitor to another bucket.
"""
from __future__ import annotations

import hashlib
import hmac
from typing import Any, Mapping

from ..domain.audit import AuditEntry
from ..domain.experiments import Experiment
from ..storage import ModelRemoval, ModelUpdate, Storage
from .modes import MODES


class VisitorIds:
    def __init__(self, secret_key: str, hashed: bool) -> None:
        self._key = hashlib.sha256(b"lever-visitor-key:" + secret_key.encode("utf-8")).digest()
        self.hashed = hashed

    def stored(self, visitor: str) -> str:
        """The id as kept in the database."""
        if not self.hashed:
            return visitor
        return "h:" + hmac.new(self._key, visitor.encode("utf-8"), hashlib.sha256).hexdigest()[:40]


def model_removal(storage: Storage) -> ModelRemoval:
    """Take an erased assignment out of its mode's model state (modes without one: nothing)."""
    experiments: dict[int, Experiment | None] = {}

    def removal(experiment_id: int, context: Mapping[str, Any], decided_at: float,
                reward_total: float) -> ModelUpdate | None:
        if experiment_id not in experiments:
            experiments[experiment_id] = next((e for e in storage.list_experiments() if e.id == experiment_id), None)
        experiment = experiments[experiment_id]
        if experiment is None:
            return None
        return MODES[experiment.mode].removal_update(experiment, context, decided_at, reward_total)

    return removal


def erase_visitor(storage: Storage, stored_visitor: str, actor: str, now: float) -> int:
    """Erase one visitor everywhere; the audit log records that an erasure happened, never whose."""
    entry = AuditEntry(actor=actor, action="visitor.erased", at=now)
    return storage.erase_visitor(stored_visitor, model_removal(storage), audit=entry)


def retention_cutoff(now: float, retention_days: int, experiments: list[Experiment]) -> float | None:
    """Oldest assignment time to keep: N days back, but never inside any reward window."""
    if retention_days <= 0:
        return None
    longest_window = max((e.reward_window_s for e in experiments), default=0)
    return now - max(retention_days * 86400, longest_window)

