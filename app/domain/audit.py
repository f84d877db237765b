"""Audit entries: who changed what, when, with the state before and after (the records
that cross into storage; ``app.service.audit`` is the API).

An ``AuditEntry`` is handed to the storage method that makes the change (``audit=``)
and written inside that method's transaction, so a change and its entry commit or
roll back together. Entries are never edited (both databases refuse UPDATE and DELETE
on the table). An erasure records that it happened, never the visitor's id.

Other features write their entries through the same path: build an ``AuditEntry`` with
one of ``ACTIONS`` and pass it to a storage method that takes ``audit``, or, for a store
of their own, call ``app.storage.audit.write_audit(tx, entry)`` inside their ``_transact`` body.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

#: the actor of changes made outside any request (CLI, seed) unless the caller names one
SYSTEM_ACTOR = "system"

#: every action the log knows, with the sentence the report's history shows
ACTIONS: dict[str, str] = {
    "experiment.created": "created the experiment",
    "experiment.edited": "edited the experiment",
    "experiment.paused": "paused the experiment",
    "experiment.resumed": "resumed the experiment",
    "experiment.stopped": "stopped the experiment",
    "experiment.winner_declared": "stopped the experiment and declared a winner",
    "metric.created": "created a metric",
    "metric.edited": "edited a metric",
    "guardrail.action": "a guardrail acted",
    "experiment.values_repaired": "repaired out-of-range values and rebuilt the counters",
    "visitor.erased": "erased a visitor's data",
    "api_key.created": "created an API key",
    "api_key.revoked": "revoked an API key",
    "account.created": "created an account",
    "account.invited": "invited a person",
    "account.invitation_revoked": "revoked an invitation",
    "account.joined": "accepted an invitation",
    "account.role_changed": "changed an account's role",
    "account.deactivated": "deactivated an account",
    "account.reactivated": "reactivated an account",
    "account.password_changed": "changed a password",
    "webhook.created": "created a webhook",
    "webhook.edited": "edited a webhook",
    "webhook.deleted": "deleted a webhook",
}


@dataclass(frozen=True)
class AuditEntry:
    """One change. ``before`` and ``after`` are JSON-ready mappings (None: nothing before /
    nothing after); ``at`` is the change's time (None: the time of the write)."""

    actor: str
    action: str
    experiment_key: str | None = None
    target: str | None = None
    before: Mapping[str, Any] | None = None
    after: Mapping[str, Any] | None = None
    at: float | None = None

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"unknown audit action {self.action!r}; add it to app.service.audit.ACTIONS")


@dataclass(frozen=True)
class AuditRecord:
    """An entry as stored (``id`` orders entries: later changes have larger ids)."""

    id: int
    at: float
    actor: str
    action: str
    experiment_key: str | None
    target: str | None
    before: Mapping[str, Any] | None = field(default=None)
    after: Mapping[str, Any] | None = field(default=None)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "at": self.at, "actor": self.actor, "action": self.action,
                "experiment": self.experiment_key, "target": self.target, "before": self.before,
                "after": self.after}
