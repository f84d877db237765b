"""Turns a batch of queued rewards and events into requests, retrying each until Lever settles it.

Every reward and event carries an ``event_id`` (the client makes one up when the caller gives
none) and Lever counts an ``event_id`` once, so repeating a request whose answer was lost is
safe: these are the only requests the client retries. A request is repeated after a timeout,
a connection error, a 5xx, 408 or 429, after a pause drawn uniformly from
[0, min(max_backoff, base_backoff * 2**attempt)] ("full jitter": many clients that failed
together do not come back together).
"""
from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Union

from .batcher import Counters
from .logs import LogOnce, logger
from .transport import Transport, Unreachable, encode

REWARD_PATH = "/api/v1/reward"
EVENTS_PATH = "/api/v1/events"
MAX_EVENTS_PER_REQUEST = 100  # Lever's limit for POST /api/v1/events


@dataclass(frozen=True)
class Reward:
    body: Dict[str, Any]  # {"assignment", "value", "event_id"} or {"experiment", "visitor", "value", "event_id"}


@dataclass(frozen=True)
class Event:
    visitor: str
    event: Dict[str, Any]  # {"name", "value"?, "event_id", "ts"}


Item = Union[Reward, Event]


@dataclass(frozen=True)
class _Request:
    path: str
    body: Dict[str, Any]
    items: int


def requests_for(batch: Sequence[Item]) -> List[_Request]:
    """One request per reward, then each visitor's events in requests of up to 100, in the
    order they were queued."""
    requests = [_Request(REWARD_PATH, item.body, 1) for item in batch if isinstance(item, Reward)]
    by_visitor: Dict[str, List[Dict[str, Any]]] = {}
    for item in batch:
        if isinstance(item, Event):
            by_visitor.setdefault(item.visitor, []).append(item.event)
    for visitor, events in by_visitor.items():
        for start in range(0, len(events), MAX_EVENTS_PER_REQUEST):
            chunk = events[start:start + MAX_EVENTS_PER_REQUEST]
            requests.append(_Request(EVENTS_PATH, {"visitor": visitor, "events": chunk}, len(chunk)))
    return requests


def _duplicates(body: Any) -> int:
    """How many items of an accepted request Lever had already: ``{"duplicates": n}`` from
    the events endpoint, ``{"counted": false, "reason": "duplicate"}`` from the reward one."""
    if not isinstance(body, dict):
        return 0
    if body.get("reason") == "duplicate":
        return 1
    duplicates = body.get("duplicates", 0)
    return duplicates if isinstance(duplicates, int) and not isinstance(duplicates, bool) else 0


class Sender:
    """``sender(batch)`` sends a batch on the calling (background) thread; see the module doc.
    Connection errors and timeouts are retried for as long as the client is open (Lever may be
    restarting); 5xx answers at most ``max_server_errors`` times (a request that keeps failing
    is given up, counted as ``failed``, instead of holding up the queue forever)."""

    def __init__(self, transport: Transport, counters: Counters, stop: threading.Event,
                 base_backoff: float = 0.1, max_backoff: float = 5.0, max_server_errors: int = 8,
                 rng: Optional[random.Random] = None) -> None:
        self._transport = transport
        self._counters = counters
        self._stop = stop
        self.base_backoff = base_backoff
        self.max_backoff = max_backoff
        self.max_server_errors = max_server_errors
        self._rng = rng or random.Random()
        self._log = LogOnce()

    def __call__(self, batch: List[Item]) -> None:
        requests = requests_for(batch)
        for index, request in enumerate(requests):
            if not self._settle(request):
                self._counters.add(dropped=sum(r.items for r in requests[index:]))
                return

    def backoff(self, attempt: int) -> float:
        return self._rng.uniform(0, min(self.max_backoff, self.base_backoff * 2.0 ** min(attempt, 32)))

    def _settle(self, request: _Request) -> bool:
        """Send until Lever accepts or refuses it (True), or the client stops (False)."""
        data = encode(request.body)  # validated when queued: cannot fail here
        server_errors = attempt = 0
        while True:
            try:
                response = self._transport.request("POST", request.path, data)
            except Unreachable as error:
                self._log.warning("unreachable", "lever_client: cannot deliver rewards and events (%s); "
                                  "retrying with backoff", error)
            else:
                self._log.reset("unreachable", "lever_client: delivering rewards and events again")
                if 200 <= response.status < 300:
                    self._counters.add(sent=request.items, duplicates=_duplicates(response.body))
                    return True
                refusal = response.error()
                if not response.retryable:
                    self._counters.add(rejected=request.items)
                    self._log.warning(f"rejected:{refusal.code}", "lever_client: Lever refused %s (%s): %s "
                                      "(further refusals with this code are not logged)",
                                      request.path, refusal.status, refusal)
                    return True
                server_errors += 1
                if server_errors >= self.max_server_errors:
                    self._counters.add(failed=request.items)
                    logger.warning("lever_client: giving up %s after %d answers %s", request.path,
                                   server_errors, refusal)
                    return True
            if self._stop.wait(self.backoff(attempt)):
                return False
            attempt += 1
