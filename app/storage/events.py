"""The site's events (``POST /api/v1/events``), written once for both backends
(``EventStore`` is a base of ``SQLiteStorage`` and ``PostgresStorage``).

An event row is (visitor as stored, name, value, event_id, ts). It belongs to no
experiment: every metric of every experiment that the visitor was exposed to reads it
through ``MetricStore.metric_sums``; events of visitors never exposed stay as history
(CUPED's pre-period). The unique (visitor, event_id) index makes a retried event count
once. Erasure and retention delete events with the visitor's assignments (see the
backends' ``erase_visitor`` and ``prune_events``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from . import records
from .base import StoredAssignment
from .sql import Tx


@dataclass(frozen=True)
class NewEvent:
    name: str
    value: float
    event_id: str | None
    ts: float


_INSERT_HEAD = "INSERT INTO events (visitor, name, value, event_id, ts, created_at) VALUES"
_INSERT = _INSERT_HEAD + " (?, ?, ?, ?, ?, ?)"
#: deletes of the event log that erasure and retention run inside their own transactions
ERASE_EVENTS_SQL = "DELETE FROM events WHERE visitor = ?"
PRUNE_EVENTS_SQL = "DELETE FROM events WHERE ts < ?"


class EventStore:
    """Mixin: needs the backend's ``_read`` and ``_transact_batched``."""

    def record_events(self, visitor: str, events: Sequence[NewEvent], now: float) -> list[bool]:
        """Insert the events in one transaction; per event, True when new, False when its
        (visitor, event_id) was stored before (a retry, or a repeat within the request)."""
        def body(tx: Tx) -> list[bool]:
            accepted = [True] * len(events)
            keyed = [(i, event) for i, event in enumerate(events) if event.event_id is not None]
            for event in events:
                if event.event_id is None:  # cannot collide; its new id settles an ambiguous commit
                    tx.insert(_INSERT, (visitor, event.name, event.value, None, event.ts, now))
            if keyed:  # one statement for all of them; RETURNING names the rows that were new
                values = [v for _, e in keyed for v in (visitor, e.name, e.value, e.event_id, e.ts, now)]
                rows = ", ".join(["(?, ?, ?, ?, ?, ?)"] * len(keyed))
                inserted = {row[0] for row in tx.execute(
                    f"{_INSERT_HEAD} {rows} ON CONFLICT (visitor, event_id) DO NOTHING RETURNING event_id",
                    values).fetchall()}
                seen: set[str] = set()
                for i, event in keyed:  # a repeat within the request met its first copy's row
                    accepted[i] = event.event_id in inserted and event.event_id not in seen
                    seen.add(event.event_id)  # type: ignore[arg-type]
            return accepted

        # rides the group commit with assignments and rewards (one transaction for many requests);
        # its inserted rows settle an ambiguous commit on PostgreSQL
        return self._transact_batched(body, (visitor,))  # type: ignore[attr-defined]

    def visitor_assignments(self, visitor: str) -> list[StoredAssignment]:
        """Every assignment of the visitor (as stored) in every experiment, oldest first."""
        rows = self._read(  # type: ignore[attr-defined]
            f"SELECT {records.ASSIGNMENT_COLUMNS} FROM assignments WHERE visitor = ? ORDER BY id", (visitor,))
        return [records.assignment(row) for row in rows]

    def visitor_event_log(self, visitor: str) -> list[dict[str, Any]]:
        """The visitor's events (data export), oldest first."""
        rows = self._read(  # type: ignore[attr-defined]
            "SELECT name, value, event_id, ts, created_at FROM events WHERE visitor = ? ORDER BY ts, id", (visitor,))
        return [{"name": r[0], "value": r[1], "event_id": r[2], "ts": r[3], "created_at": r[4]} for r in rows]
