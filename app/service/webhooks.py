"""Webhooks: subscriptions, events for the outbox, signing, and delivery with retries.

Flow: whatever raises an event (``experiments.set_status`` for ``experiment.stopped``,
``monitor.evaluate`` for the monitored conditions) builds a ``NewEvent`` here and storage
writes it to the outbox in the transaction of the change, with one pending delivery per
subscribed webhook. ``deliver_due`` — run by the worker (``flask --app app deliver``),
never inside a request — leases due deliveries, sends each one, and records the outcome:
delivered on a 2xx, else retried with capped exponential backoff and jitter until the
event is ``RETRY_WINDOW_S`` old, then marked failed.

Signature (the Stripe convention): ``X-Lever-Signature: t=<unix seconds>,v1=<hex>`` with
``v1 = HMAC-SHA256(secret, f"{t}.{body}")``; a receiver recomputes it over the raw body and
rejects old timestamps (replays). Every attempt of an event carries the same event id
(``X-Lever-Event-Id`` and the body's ``id``): receivers deduplicate by it.
"""
from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import random
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from ..domain.audit import SYSTEM_ACTOR, AuditEntry
from ..domain.errors import NotFound
from ..domain.experiments import Experiment
from ..domain.webhooks import SECRET_PREFIX_CHARS, WebhookSpec, url_problem
from ..storage.webhooks import (
    DELIVERED,
    FAILED,
    PENDING,
    DeliveryOutcome,
    DueDelivery,
    NewEvent,
    StoredWebhook,
    WebhookStore,
)

SIGNATURE_HEADER = "X-Lever-Signature"
USER_AGENT = "Lever-Webhooks/1"
SEND_TIMEOUT_S = 5.0
#: backoff after the n-th failed attempt: FIRST_RETRY_S * 2^(n-1), at most MAX_RETRY_S, times a jitter
FIRST_RETRY_S, MAX_RETRY_S = 30.0, 3600.0
JITTER = 0.2  # each delay is scaled by a uniform factor in [1 - JITTER, 1 + JITTER]
#: failed attempts keep being retried until the event is this old, then the delivery is marked failed
RETRY_WINDOW_S = 24 * 3600.0
#: deliveries one worker leases at a time; the lease outlasts sending all of them
CLAIM_BATCH = 20
LEASE_S = CLAIM_BATCH * (SEND_TIMEOUT_S + 1.0) + 30.0
MAX_ERROR_CHARS = 500
DELIVERY_LOG_LIMIT = 100
MAX_WEBHOOK_ID = 2**63 - 1  # ids are 64-bit integers in both databases: a larger one names nothing


# -- subscriptions ----------------------------------------------------------------------------

def webhook_json(webhook: StoredWebhook) -> dict[str, Any]:
    """A webhook as the API shows it: the secret only as its first characters."""
    return {"id": webhook.id, "url": webhook.url, "events": list(webhook.events), "format": webhook.format,
            "secret_prefix": webhook.secret[:SECRET_PREFIX_CHARS] + "…", "created_at": webhook.created_at}


def create_webhook(storage: WebhookStore, spec: WebhookSpec, now: float, actor: str = SYSTEM_ACTOR) -> StoredWebhook:
    """The webhook, with its audit entry in the same transaction (the secret is never logged)."""
    entry = AuditEntry(actor=actor, action="webhook.created", target=None,
                       after={"url": spec.url, "events": sorted(spec.events), "format": spec.format}, at=now)
    return storage.create_webhook(spec, now, audit=entry)


def webhook_id_of(text: str) -> int:
    """The id a URL names; anything but a decimal 64-bit id names no webhook (a 404)."""
    if not (text.isascii() and text.isdigit()) or len(text) > 19 or int(text) > MAX_WEBHOOK_ID:
        raise NotFound(f"no webhook {text[:40]!r}", code="webhook_not_found")
    return int(text)


def delete_webhook(storage: WebhookStore, webhook_id: int, actor: str = SYSTEM_ACTOR,
                   now: float | None = None) -> None:
    entry = AuditEntry(actor=actor, action="webhook.deleted", target=str(webhook_id), at=now)
    if not storage.delete_webhook(webhook_id, audit=entry):
        raise NotFound(f"no webhook {webhook_id}", code="webhook_not_found")


def delivery_log(storage: WebhookStore, webhook_id: int) -> list[dict[str, Any]]:
    if storage.get_webhook(webhook_id) is None:
        raise NotFound(f"no webhook {webhook_id}", code="webhook_not_found")
    return [record.to_dict() for record in storage.webhook_deliveries(webhook_id, DELIVERY_LOG_LIMIT)]


# -- events -------------------------------------------------------------------------------------

def new_event_id() -> str:
    return f"evt_{uuid.uuid4().hex}"


def new_event(event_type: str, experiment: Experiment | None, summary: str, data: Mapping[str, Any], now: float,
              event_id: str | None = None) -> NewEvent:
    """An event with the JSON every webhook receives (``format: json``)."""
    event_id = event_id or new_event_id()
    payload = {
        "id": event_id,
        "type": event_type,
        "created_at": now,
        "experiment": None if experiment is None else {"key": experiment.key, "name": experiment.name},
        "summary": summary,
        "data": dict(data),
    }
    return NewEvent(event_id=event_id, type=event_type, experiment_key=None if experiment is None else experiment.key,
                    payload=json.dumps(payload, allow_nan=False, separators=(",", ":")), created_at=now)


def experiment_stopped(experiment: Experiment, winner: str | None, now: float) -> NewEvent:
    shown = f"; everyone now sees {winner}" if winner else "; everyone now sees the control"
    return new_event("experiment.stopped", experiment, f"Experiment {experiment.key} was stopped{shown}.",
                     {"status": "stopped", "winner": winner}, now)


# -- signing --------------------------------------------------------------------------------------

def signature(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    return f"t={timestamp},v1={signature(secret, timestamp, body)}"


def verify_signature(secret: str, header: str, body: bytes, now: float, tolerance_s: float = 300.0) -> bool:
    """What a receiver does (README has the same in a snippet): any ``v1`` matches, ``t`` is recent."""
    fields = [part.strip().partition("=") for part in header.split(",")]
    timestamps = [value for key, _, value in fields if key == "t"]
    if len(timestamps) != 1 or not timestamps[0].isdigit() or abs(now - int(timestamps[0])) > tolerance_s:
        return False
    expected = signature(secret, int(timestamps[0]), body)
    return any(hmac.compare_digest(expected, value) for key, _, value in fields if key == "v1")


# -- payload formats --------------------------------------------------------------------------------

def _json_body(delivery: DueDelivery) -> bytes:
    return delivery.payload.encode()


def _slack_body(delivery: DueDelivery) -> bytes:
    """A Slack incoming-webhook message: one readable line (the event id stays in the headers)."""
    summary = json.loads(delivery.payload)["summary"]
    return json.dumps({"text": f"[Lever] {summary}"}).encode()


FORMATS: dict[str, Callable[[DueDelivery], bytes]] = {"json": _json_body, "slack": _slack_body}


# -- sending --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SendResult:
    status: int | None  # the HTTP status, None when there was no answer
    error: str | None = None  # why it did not count as delivered

    @property
    def delivered(self) -> bool:
        return self.error is None


#: (url, body, headers) -> what happened; the real one is ``HttpSender``, tests may use it against loopback
Sender = Callable[[str, bytes, Mapping[str, str]], SendResult]


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is answered as a failure: Lever calls only the URL an admin registered."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D102 — urllib's hook
        return None


class HttpSender:
    """POST with urllib, a timeout, no redirects, the host allow-list checked again at send time."""

    def __init__(self, allowed_hosts: frozenset[str], timeout_s: float = SEND_TIMEOUT_S) -> None:
        self.allowed_hosts = allowed_hosts
        self.timeout_s = timeout_s
        self._opener = urllib.request.build_opener(_NoRedirects)

    def __call__(self, url: str, body: bytes, headers: Mapping[str, str]) -> SendResult:
        problem = url_problem(url, self.allowed_hosts)
        if problem:
            return SendResult(None, problem)
        request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")
        try:
            with self._opener.open(request, timeout=self.timeout_s) as response:
                response.read(65536)
                status = response.status
        except urllib.error.HTTPError as error:
            error.close()
            return SendResult(error.code, f"HTTP {error.code}")
        except (OSError, http.client.HTTPException, ValueError) as error:  # refused, timed out, not HTTP
            reason = getattr(error, "reason", error)
            return SendResult(None, f"{type(error).__name__}: {reason}"[:MAX_ERROR_CHARS])
        if not 200 <= status < 300:
            return SendResult(status, f"HTTP {status}")
        return SendResult(status)


def request_headers(delivery: DueDelivery, body: bytes, timestamp: int) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Lever-Event": delivery.event_type,
        "X-Lever-Event-Id": delivery.event_id,
        "X-Lever-Delivery": str(delivery.id),
        SIGNATURE_HEADER: signature_header(delivery.secret, timestamp, body),
    }


def retry_delay(failed_attempts: int, rng: random.Random) -> float:
    """Seconds before the next attempt after ``failed_attempts`` failures (>= 1)."""
    base = min(FIRST_RETRY_S * 2.0 ** min(failed_attempts - 1, 30), MAX_RETRY_S)
    return base * rng.uniform(1.0 - JITTER, 1.0 + JITTER)


def outcome(delivery: DueDelivery, result: SendResult, attempted_at: float, rng: random.Random) -> DeliveryOutcome:
    """Delivered, retry later, or give up (failed once the event is older than the retry window)."""
    if result.delivered:
        state, next_at = DELIVERED, attempted_at
    elif attempted_at - delivery.event_created_at >= RETRY_WINDOW_S:
        state, next_at = FAILED, attempted_at
    else:
        state, next_at = PENDING, attempted_at + retry_delay(delivery.attempts + 1, rng)
    return DeliveryOutcome(delivery_id=delivery.id, claim=delivery.claim, status=state, attempted_at=attempted_at,
                           next_attempt_at=next_at, last_status=result.status,
                           last_error=None if result.error is None else result.error[:MAX_ERROR_CHARS])


@dataclass(frozen=True)
class DeliveryReport:
    attempted: int = 0
    delivered: int = 0
    retrying: int = 0
    failed: int = 0
    lost_claims: int = 0  # the lease ran out mid-send (another worker may send it again)


def prune_log(storage: WebhookStore, now: float, retention_days: int) -> int:
    """Drop finished outbox events older than ``retention_days`` (0 keeps everything)."""
    if retention_days <= 0:
        return 0
    return storage.prune_webhook_log(now - retention_days * 86400.0)


def deliver_due(storage: WebhookStore, send: Sender, clock: Callable[[], float], worker: str,
                rng: random.Random, limit: int = CLAIM_BATCH) -> DeliveryReport:
    """Lease what is due now, send each, record each outcome. ``clock`` gives the time
    (a fake one in tests drives the retry schedule without sleeping)."""
    claim = f"{worker}:{uuid.uuid4().hex[:12]}"
    counts = {DELIVERED: 0, PENDING: 0, FAILED: 0}
    lost = 0
    due = storage.claim_deliveries(claim, clock(), LEASE_S, limit)
    for delivery in due:
        body = FORMATS[delivery.format](delivery)
        attempted_at = clock()
        result = send(delivery.url, body, request_headers(delivery, body, int(attempted_at)))
        done = outcome(delivery, result, clock(), rng)
        if storage.finish_delivery(done):
            counts[done.status] += 1
        else:
            lost += 1
    return DeliveryReport(attempted=len(due), delivered=counts[DELIVERED], retrying=counts[PENDING],
                          failed=counts[FAILED], lost_claims=lost)
