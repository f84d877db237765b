"""The event flow: who may write a visitor's events, storing them once, and the primary
metric that feeds a bandit.

* Public callers (pages) must send the ``visitor_token`` assign returned for this visitor
  (``TokenSigner.verify_visitor``: missing, forged or another visitor's → 403), so nobody
  can write events into other visitors' histories; the event time is the request's.
* Trusted server-side callers (the admin token; later a key with the ingest role) need no
  token and may set ``ts`` to backfill: not in the future, not older than the retention
  horizon (``LEVER_RETENTION_DAYS``, when set).
* Events are stored once per (visitor, event_id) in one transaction; they belong to no
  experiment (every metric reads them through its aggregate, ``MetricStore.metric_sums``).
* Learning: an event that matches the primary metric of a running bandit or contextual
  experiment the visitor is exposed to, inside the metric's window after the first
  exposure, becomes a reward for the visitor's latest assignment made before the event
  (the decision that showed the variant), through ``storage.record_reward`` with the
  event's id — the same path as ``/reward``, so counters and the contextual model move
  together and a retried event is not counted twice (for a retried event with an
  ``event_id`` the reward is attempted again: it is idempotent, so a reward lost to a
  failure between the two transactions is recovered by the client's retry).
  conversion → a binary reward of 1, count → 1 per event, sum → the event's value
  (uncapped: the cap is the analysis' winsorisation, not the bandit's).
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from ..domain.errors import ValidationError
from ..domain.events import Event, EventsRequest
from ..domain.metrics import MetricDefinition
from ..storage import NewEvent, Storage, StoredAssignment
from .decisions import Services
from .metrics import LEARNING_MODES

#: clock skew tolerated for a backfilled ts "in the future"
FUTURE_SKEW_S = 5.0


@dataclass(frozen=True)
class Route:
    experiment: str  # key
    experiment_id: int
    metric: MetricDefinition


class EventRoutes:
    """Per process: which event names feed which learning experiment's primary metric,
    re-read from storage at most every ``refresh_s`` (like the policy cache)."""

    def __init__(self, refresh_s: float) -> None:
        self.refresh_s = refresh_s
        self._routes: dict[str, tuple[Route, ...]] = {}
        self._loaded_at = -float("inf")
        self._lock = threading.Lock()

    def get(self, storage: Storage) -> dict[str, tuple[Route, ...]]:
        if time.monotonic() - self._loaded_at < self.refresh_s:
            return self._routes
        learning = [e for e in storage.list_experiments()
                    if e.status == "running" and e.mode in LEARNING_MODES and e.metrics is not None]
        primaries = {e.key: e.metrics.primary for e in learning if e.metrics is not None}
        catalogue = {d.key: d for d in storage.list_metrics(sorted(set(primaries.values())))}  # type: ignore[attr-defined]
        routes: dict[str, list[Route]] = {}
        for experiment in learning:
            metric = catalogue.get(primaries[experiment.key])
            if metric is not None and metric.event is not None:
                routes.setdefault(metric.event, []).append(Route(experiment.key, experiment.id, metric))
        with self._lock:
            self._routes = {name: tuple(found) for name, found in routes.items()}
            self._loaded_at = time.monotonic()
        return self._routes

    def invalidate(self) -> None:
        self._loaded_at = -float("inf")


def _event_time(event: Event, trusted: bool, now: float, retention_days: int, index: int) -> float:
    if event.ts is None:
        return now
    if not trusted:
        raise ValidationError(f"events[{index}].ts: only server-side callers (the admin token) may set ts; "
                              "pages' events take the time they arrive", code="ts_not_allowed")
    if event.ts > now + FUTURE_SKEW_S:
        raise ValidationError(f"events[{index}].ts is in the future")
    if retention_days > 0 and event.ts < now - retention_days * 86400:
        raise ValidationError(f"events[{index}].ts is older than the retention horizon "
                              f"(LEVER_RETENTION_DAYS={retention_days})")
    return event.ts


def _reward_value(metric: MetricDefinition, event: NewEvent) -> float:
    return event.value if metric.type == "sum" else 1.0


def _in_window(metric: MetricDefinition, exposed_at: float, ts: float) -> bool:
    elapsed = ts - exposed_at
    return metric.delay_s <= elapsed <= metric.delay_s + metric.window_s


def _feed(services: Services, routes: dict[str, tuple[Route, ...]], stored_visitor: str,
          events: list[tuple[NewEvent, bool]], now: float) -> None:
    """Rewards for the learning experiments whose primary metric these events match."""
    wanted = [(event, new) for event, new in events if event.name in routes and (new or event.event_id)]
    if not wanted:
        return
    by_experiment: dict[int, list[StoredAssignment]] = {}
    for assignment in services.storage.visitor_assignments(stored_visitor):  # type: ignore[attr-defined]
        by_experiment.setdefault(assignment.experiment_id, []).append(assignment)
    for event, _new in wanted:
        for route in routes[event.name]:
            assignments = by_experiment.get(route.experiment_id)
            if not assignments or not _in_window(route.metric, assignments[0].created_at, event.ts):
                continue
            before = [a for a in assignments if a.created_at <= event.ts]
            entry = services.cache.get(services.storage, route.experiment)
            if not before or entry is None:
                continue
            assignment, value = before[-1], _reward_value(route.metric, event)
            binary = entry.experiment.reward == "binary"
            services.storage.record_reward(assignment, value, event.event_id, binary, now,
                                           entry.policy.reward_update(assignment, value, now))


def record_events(request: EventsRequest, trusted: bool, now: float, services: Services, routes: EventRoutes,
                  retention_days: int) -> dict[str, Any]:
    """Check, store, and feed the learning experiments; 202 body ``{"accepted", "duplicates"}``."""
    if not trusted:
        services.signer.verify_visitor(request.visitor_token, request.visitor)
    events = [NewEvent(e.name, e.value, e.event_id, _event_time(e, trusted, now, retention_days, i))
              for i, e in enumerate(request.events)]
    stored_visitor = services.visitor_ids.stored(request.visitor)
    accepted = services.storage.record_events(stored_visitor, events, now)  # type: ignore[attr-defined]
    _feed(services, routes.get(services.storage), stored_visitor, list(zip(events, accepted)), now)
    new = sum(accepted)
    return {"accepted": new, "duplicates": len(accepted) - new}
