"""The audit log's API: entries to write with a change, and the history to read.

Write: build an ``AuditEntry(actor, action, experiment_key=None, target=None, before=None,
after=None)`` (``action`` one of ``ACTIONS``) and hand it to the storage method that makes
the change (``audit=``): it is written in that method's transaction. Read: ``history``.
"""
from __future__ import annotations

from ..domain.audit import ACTIONS, SYSTEM_ACTOR, AuditEntry, AuditRecord
from ..storage import Storage

#: the most entries one page of the audit log returns
MAX_PAGE = 200


def history(storage: Storage, experiment_key: str | None = None, before_id: int | None = None,
            limit: int = 50) -> list[AuditRecord]:
    """Entries newest first (of one experiment when ``experiment_key`` is given), older than ``before_id``."""
    return storage.audit_entries(experiment_key, before_id, max(1, min(limit, MAX_PAGE)))


__all__ = ["ACTIONS", "MAX_PAGE", "SYSTEM_ACTOR", "AuditEntry", "AuditRecord", "history"]
