"""The audit log's storage, written once for both backends (``AuditStore`` mixin).

``write_audit(tx, entry)`` (``app.storage.sql``, re-exported here) appends one entry inside
the caller's write transaction: the methods that change things take ``audit: AuditEntry |
None`` and call it in their body, so a change and its entry commit together.
"""
from __future__ import annotations

import json
from typing import Any, Sequence

from ..domain.audit import AuditEntry, AuditRecord
from .sql import SqlStorage, maybe_audit, write_audit

_COLUMNS = "id, at, actor, action, experiment_key, target, before_json, after_json"


def _record(row: Sequence[Any]) -> AuditRecord:
    return AuditRecord(id=int(row[0]), at=float(row[1]), actor=row[2], action=row[3], experiment_key=row[4],
                       target=row[5], before=json.loads(row[6]) if row[6] is not None else None,
                       after=json.loads(row[7]) if row[7] is not None else None)


class AuditStore(SqlStorage):
    """Mixin of both SQL backends (``_read`` and ``_transact`` are theirs)."""

    def append_audit(self, entry: AuditEntry) -> int:
        """An entry for a change that has no write of its own here (e.g. a refused login is not one)."""
        return self._transact(lambda tx: write_audit(tx, entry))

    def audit_entries(self, experiment_key: str | None = None, before_id: int | None = None,
                      limit: int = 50) -> list[AuditRecord]:
        """Entries newest first, of one experiment when ``experiment_key`` is given, with ids below ``before_id``."""
        where, params = [], []
        if experiment_key is not None:
            where.append("experiment_key = ?")
            params.append(experiment_key)
        if before_id is not None:
            where.append("id < ?")
            params.append(before_id)
        clause = f"WHERE {' AND '.join(where)} " if where else ""
        rows = self._read(f"SELECT {_COLUMNS} FROM audit_log {clause}ORDER BY id DESC LIMIT ?",
                          (*params, int(limit)))
        return [_record(row) for row in rows]


__all__ = ["AuditStore", "maybe_audit", "write_audit"]
