"""Webhook storage, written once for both backends: subscriptions, the outbox, deliveries,
and the monitor's last known state of each condition.

The outbox pattern: an event is a row of ``webhook_events`` written in the transaction of
the change that raises it (an experiment stopping, a monitored condition turning bad),
together with one ``webhook_deliveries`` row per webhook subscribed to its type at that
moment. Delivery never happens in that transaction: a worker claims due rows (a lease in
``claimed_by`` / ``claimed_until`` set by one conditional UPDATE, so two workers never
hold the same row), sends, and records the outcome under its claim. A worker that dies
mid-send loses its lease and the row is sent again: at least once, deduplicable by the
event id.

Transitions: ``observe`` upserts the state of each (experiment, condition, subject) and
the upsert changes a row only when the state differs (``DO UPDATE … WHERE state !=``):
its row count is the transition, atomically, even with two monitors running at once.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ..domain.audit import AuditEntry
from ..domain.experiments import Experiment
from ..domain.webhooks import WebhookSpec
from .sql import SqlStorage, Tx, maybe_audit

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


@dataclass(frozen=True)
class StoredWebhook:
    id: int
    url: str
    events: tuple[str, ...]
    format: str
    secret: str
    created_at: float


@dataclass(frozen=True)
class NewEvent:
    """An event to put in the outbox: ``payload`` is the JSON text every webhook receives."""

    event_id: str
    type: str
    experiment_key: str | None
    payload: str
    created_at: float


@dataclass(frozen=True)
class Observation:
    """The current state of one condition of one experiment; ``event`` is raised when the
    stored state differs (None: a change into this state raises nothing, e.g. resolved)."""

    condition: str
    subject: str
    state: str
    event: NewEvent | None = None


@dataclass(frozen=True)
class DueDelivery:
    """A claimed delivery with what sending it needs."""

    id: int
    claim: str
    attempts: int
    event_id: str
    event_type: str
    payload: str
    event_created_at: float
    webhook_id: int
    url: str
    secret: str
    format: str


@dataclass(frozen=True)
class DeliveryOutcome:
    delivery_id: int
    claim: str
    status: str  # PENDING (retry at next_attempt_at), DELIVERED or FAILED (gave up)
    attempted_at: float
    next_attempt_at: float
    last_status: int | None
    last_error: str | None


@dataclass(frozen=True)
class DeliveryRecord:
    """One row of a webhook's delivery log."""

    id: int
    event_id: str
    event_type: str
    experiment: str | None
    status: str
    attempts: int
    last_status: int | None
    last_error: str | None
    next_attempt_at: float | None
    last_attempt_at: float | None
    delivered_at: float | None
    created_at: float

    def to_dict(self) -> dict:
        return {**self.__dict__, "next_attempt_at": self.next_attempt_at if self.status == PENDING else None}


_WEBHOOK_COLUMNS = "id, url, format, secret, created_at"
_DUE_SQL = (
    "SELECT id FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= ? "
    "AND (claimed_until IS NULL OR claimed_until < ?) ORDER BY next_attempt_at, id LIMIT ?"
)
_CLAIMED_SQL = (
    "SELECT d.id, d.attempts, e.event_id, e.type, e.payload, e.created_at, w.id, w.url, w.secret, w.format "
    "FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id JOIN webhooks w ON w.id = d.webhook_id "
    "WHERE d.claimed_by = ? AND d.id IN ({ids}) ORDER BY d.next_attempt_at, d.id"
)
_OBSERVE_SQL = (
    "INSERT INTO monitor_state (experiment_id, condition, subject, state, updated_at) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (experiment_id, condition, subject) DO UPDATE SET state = excluded.state, "
    "updated_at = excluded.updated_at WHERE monitor_state.state != excluded.state"
)


def _marks(count: int) -> str:
    return ", ".join("?" for _ in range(count))


def _put_event(tx: Tx, event: NewEvent) -> int:
    """Write one event to the outbox with a pending delivery per subscribed webhook; returns
    how many deliveries that made."""
    row_id = tx.insert(
        "INSERT INTO webhook_events (event_id, type, experiment_key, payload, created_at) VALUES (?, ?, ?, ?, ?)",
        (event.event_id, event.type, event.experiment_key, event.payload, event.created_at),
    )
    return tx.execute(
        "INSERT INTO webhook_deliveries (event_id, webhook_id, status, attempts, next_attempt_at, created_at) "
        "SELECT ?, webhook_id, 'pending', 0, ?, ? FROM webhook_subscriptions WHERE event_type = ?",
        (row_id, event.created_at, event.created_at, event.type),
    ).rowcount


class WebhookStore(SqlStorage):
    """Mixin of both SQL backends (``SQLiteStorage``, ``PostgresStorage``)."""

    # -- subscriptions -------------------------------------------------------------------
    def create_webhook(self, spec: WebhookSpec, now: float, audit: AuditEntry | None = None) -> StoredWebhook:
        def body(tx: Tx) -> int:
            webhook_id = tx.insert("INSERT INTO webhooks (url, secret, format, created_at) VALUES (?, ?, ?, ?)",
                                   (spec.url, spec.secret, spec.format, now))
            for event_type in spec.events:
                tx.execute("INSERT INTO webhook_subscriptions (webhook_id, event_type) VALUES (?, ?)",
                           (webhook_id, event_type))
            if audit is not None:
                maybe_audit(tx, AuditEntry(audit.actor, audit.action, audit.experiment_key, str(webhook_id),
                                           audit.before, audit.after, audit.at))
            return webhook_id

        return StoredWebhook(id=self._transact(body), url=spec.url, events=tuple(sorted(spec.events)),
                             format=spec.format, secret=spec.secret, created_at=now)

    def _webhooks(self, where: str, params: Sequence) -> list[StoredWebhook]:
        hooks, subscriptions = self._read_together((
            (f"SELECT {_WEBHOOK_COLUMNS} FROM webhooks {where} ORDER BY id", params),
            ("SELECT webhook_id, event_type FROM webhook_subscriptions ORDER BY webhook_id, event_type", ()),
        ))
        events: dict[int, list[str]] = {}
        for webhook_id, event_type in subscriptions:
            events.setdefault(int(webhook_id), []).append(event_type)
        return [StoredWebhook(id=int(row[0]), url=row[1], format=row[2], secret=row[3], created_at=float(row[4]),
                              events=tuple(events.get(int(row[0]), ()))) for row in hooks]

    def list_webhooks(self) -> list[StoredWebhook]:
        return self._webhooks("", ())

    def get_webhook(self, webhook_id: int) -> StoredWebhook | None:
        found = self._webhooks("WHERE id = ?", (webhook_id,))
        return found[0] if found else None

    def delete_webhook(self, webhook_id: int, audit: AuditEntry | None = None) -> bool:
        """The webhook, its subscriptions and its delivery log; pending deliveries stop."""
        def body(tx: Tx) -> int:
            tx.execute("DELETE FROM webhook_deliveries WHERE webhook_id = ?", (webhook_id,))
            tx.execute("DELETE FROM webhook_subscriptions WHERE webhook_id = ?", (webhook_id,))
            deleted = tx.execute("DELETE FROM webhooks WHERE id = ?", (webhook_id,)).rowcount
            if deleted:
                maybe_audit(tx, audit)
            return deleted

        return self._transact(body, idempotent=audit is None) > 0

    # -- raising events (the outbox) -------------------------------------------------------
    def raise_events(self, events: Sequence[NewEvent]) -> int:
        """Put events in the outbox in one transaction; returns the deliveries made."""
        return self._transact(lambda tx: sum(_put_event(tx, event) for event in events))

    def set_status_raising(self, key: str, status: str, winner: str | None, now: float,
                           event: NewEvent, audit: AuditEntry | None = None) -> Experiment | None:
        """``set_status`` that also raises ``event`` in the same transaction when the
        experiment moves into ``status`` from another one (not when it is there already),
        and writes its audit entry there too."""
        def body(tx: Tx) -> int:
            moved = tx.execute("UPDATE experiments SET status = ?, winner = ?, updated_at = ? "
                               "WHERE key = ? AND status != ?", (status, winner, now, key, status)).rowcount
            if moved:
                _put_event(tx, event)
                maybe_audit(tx, audit)
                return moved
            changed = tx.execute("UPDATE experiments SET status = ?, winner = ?, updated_at = ? WHERE key = ?",
                                 (status, winner, now, key)).rowcount
            if changed:
                maybe_audit(tx, audit)
            return changed

        # a re-run after a commit that did land finds the status moved and raises nothing again
        if self._transact(body, idempotent=True) == 0:
            return None
        return self.get_experiment(key)

    def observe(self, experiment_id: int, observations: Sequence[Observation], now: float) -> list[NewEvent]:
        """Store each condition's state; raise the event of every observation whose state
        differs from the stored one, in the same transaction. Returns the events raised."""
        def body(tx: Tx) -> list[NewEvent]:
            raised = []
            for obs in observations:
                changed = tx.execute(_OBSERVE_SQL, (experiment_id, obs.condition, obs.subject, obs.state, now)).rowcount
                if changed and obs.event is not None:
                    _put_event(tx, obs.event)
                    raised.append(obs.event)
            return raised

        return self._transact(body, idempotent=True)

    def monitor_states(self, experiment_id: int) -> dict[tuple[str, str], str]:
        rows = self._read("SELECT condition, subject, state FROM monitor_state WHERE experiment_id = ?",
                          (experiment_id,))
        return {(row[0], row[1]): row[2] for row in rows}

    # -- delivery ----------------------------------------------------------------------------
    def claim_deliveries(self, claim: str, now: float, lease_s: float, limit: int) -> list[DueDelivery]:
        """Lease up to ``limit`` due deliveries to ``claim`` (a token unique to this call) until
        ``now + lease_s``; rows another worker holds are skipped."""
        def body(tx: Tx) -> list[DueDelivery]:
            ids = [int(row[0]) for row in tx.execute(_DUE_SQL, (now, now, limit)).fetchall()]
            if not ids:
                return []
            tx.execute("UPDATE webhook_deliveries SET claimed_by = ?, claimed_until = ? "
                       f"WHERE id IN ({_marks(len(ids))}) "
                       "AND status = 'pending' AND (claimed_until IS NULL OR claimed_until < ?)",
                       (claim, now + lease_s, *ids, now))
            rows = tx.execute(_CLAIMED_SQL.format(ids=_marks(len(ids))), (claim, *ids)).fetchall()
            return [DueDelivery(id=int(r[0]), claim=claim, attempts=int(r[1]), event_id=r[2], event_type=r[3],
                                payload=r[4], event_created_at=float(r[5]), webhook_id=int(r[6]), url=r[7],
                                secret=r[8], format=r[9]) for r in rows]

        # a re-run after a commit that did land finds the rows leased and claims nothing
        return self._transact(body, idempotent=True)

    def finish_delivery(self, outcome: DeliveryOutcome) -> bool:
        """Record an attempt under its claim and release the lease; False when the claim was
        lost meanwhile (the lease ran out and another worker took the row, or the webhook went)."""
        def body(tx: Tx) -> int:
            return tx.execute(
                "UPDATE webhook_deliveries SET status = ?, attempts = attempts + 1, last_status = ?, last_error = ?, "
                "next_attempt_at = ?, last_attempt_at = ?, delivered_at = ?, claimed_by = NULL, claimed_until = NULL "
                "WHERE id = ? AND claimed_by = ?",
                (outcome.status, outcome.last_status, outcome.last_error, outcome.next_attempt_at,
                 outcome.attempted_at, outcome.attempted_at if outcome.status == DELIVERED else None,
                 outcome.delivery_id, outcome.claim),
            ).rowcount

        # after a commit that did land the claim is gone, so a re-run changes nothing
        return self._transact(body, idempotent=True) > 0

    def prune_webhook_log(self, before: float) -> int:
        """Delete the outbox events created before ``before`` whose every delivery has finished
        (delivered or failed), with those deliveries; an event with a pending delivery stays whole.
        Returns how many events went. Idempotent (a retry deletes nothing more)."""
        def body(tx: Tx) -> int:
            finished = ("SELECT e.id FROM webhook_events e WHERE e.created_at < ? AND NOT EXISTS "
                        "(SELECT 1 FROM webhook_deliveries d WHERE d.event_id = e.id AND d.status = 'pending')")
            tx.execute(f"DELETE FROM webhook_deliveries WHERE event_id IN ({finished})", (before,))
            return tx.execute(f"DELETE FROM webhook_events WHERE id IN ({finished})", (before,)).rowcount

        return self._transact(body, idempotent=True)  # type: ignore[attr-defined]

    def webhook_deliveries(self, webhook_id: int, limit: int) -> list[DeliveryRecord]:
        """The webhook's newest deliveries first."""
        rows = self._read(
            "SELECT d.id, e.event_id, e.type, e.experiment_key, d.status, d.attempts, d.last_status, d.last_error, "
            "d.next_attempt_at, d.last_attempt_at, d.delivered_at, d.created_at FROM webhook_deliveries d "
            "JOIN webhook_events e ON e.id = d.event_id WHERE d.webhook_id = ? ORDER BY d.id DESC LIMIT ?",
            (webhook_id, limit),
        )
        return [DeliveryRecord(id=int(r[0]), event_id=r[1], event_type=r[2], experiment=r[3], status=r[4],
                               attempts=int(r[5]), last_status=None if r[6] is None else int(r[6]), last_error=r[7],
                               next_attempt_at=r[8], last_attempt_at=r[9], delivered_at=r[10],
                               created_at=float(r[11])) for r in rows]
