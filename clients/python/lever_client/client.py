"""``Lever``: assign synchronously (never raising), reward and track through the background queue."""
from __future__ import annotations

import atexit
import math
import os
import re
import threading
import time
import uuid
import weakref
from typing import Any, Dict, Iterable, List, Mapping, NoReturn, Optional, Set, Tuple, Union

from .batcher import Batcher, Counters
from .breaker import Breaker
from .delivery import Event, Item, Reward, Sender
from .logs import LogOnce, logger
from .models import (CIRCUIT_OPEN, INVALID_INPUT, REJECTED, SERVER_ERROR, Assignment, DeliveryStats,
                     LeverError)
from .transport import Response, Transport, Unreachable, encode

KEY_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")  # Lever's experiment keys
MAX_EVENT_ID_CHARS = 128
Context = Optional[Mapping[str, Any]]


def _fail(message: str) -> NoReturn:
    raise LeverError("invalid_request", message)


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        _fail(f"{name} must be a non-empty string")
    return value


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        _fail(f"{name} must be a finite number")
    return value


def _event_id(value: Optional[str]) -> str:
    """The caller's event id, or a fresh one: it is what makes a repeated send harmless."""
    if value is None:
        return uuid.uuid4().hex
    if not isinstance(value, str) or not 0 < len(value) <= MAX_EVENT_ID_CHARS:
        _fail(f"event_id must be a string of 1 to {MAX_EVENT_ID_CHARS} characters")
    return value


class Lever:
    """A client for one Lever service; thread-safe, one per process is enough.

    ``assign`` waits at most ``timeout`` seconds and never raises: when Lever cannot be reached,
    answers 5xx, or refuses the request (4xx: it is logged, since a page must not break), it
    returns a fallback ``Assignment``. After 3 failures in a row it stops trying for a pause
    (1 s, doubling up to 30 s) and falls back at once, then lets one call probe.
    ``reward`` and ``track`` only check their arguments (raising ``LeverError``) and queue;
    a background thread sends the queue every ``flush_at`` items or ``flush_interval`` seconds,
    retrying with backoff. ``close()`` (also at interpreter exit, within ``exit_timeout``
    seconds, and at the end of a ``with`` block) sends what is left.

    ``api_key`` is sent as ``Authorization: Bearer``: an ingest key lets server-side rewards
    (by visitor) and events in; the admin token also lets the client look up each experiment's
    control once, so that fallbacks serve the control instead of the caller's ``default``.
    """

    def __init__(self, base_url: str, api_key: Optional[str] = None, timeout: float = 0.8, *,
                 flush_at: int = 50, flush_interval: float = 1.0, max_queue: int = 10_000,
                 max_backoff: float = 5.0, exit_timeout: float = 2.0) -> None:
        if not timeout > 0:
            raise ValueError("timeout must be positive")
        self.timeout = timeout
        self._api_key = api_key
        self._transport = Transport(base_url, api_key, timeout)
        self._breaker = Breaker()
        self._log = LogOnce()
        self._counters = Counters()
        self._stop = threading.Event()
        sender = Sender(self._transport, self._counters, self._stop, max_backoff=max_backoff)
        self._batcher: Batcher[Item] = Batcher(sender, self._counters, self._stop, flush_at, flush_interval, max_queue)
        self._lock = threading.Lock()
        self._controls: Dict[str, Tuple[str, Optional[Mapping[str, Any]]]] = {}  # key -> (control, its payload)
        self._looked_up: Set[str] = set()  # experiments whose definition was (or is being) fetched
        self._closed = False
        self.exit_timeout = exit_timeout
        atexit.register(self._close_at_exit)  # holds the client until it is closed: its queue is sent
        if hasattr(os, "register_at_fork"):
            ref = weakref.ref(self)

            def after_fork_in_child() -> None:
                client = ref()
                if client is not None:
                    client._after_fork()

            os.register_at_fork(after_in_child=after_fork_in_child)

    # -- assign -----------------------------------------------------------------------------

    def assign(self, experiment: str, visitor: str, context: Context = None, *,
               default: Optional[str] = None) -> Assignment:
        """The visitor's variant, or a fallback (see the class doc); never raises."""
        body = {"experiment": experiment, "visitor": visitor, "context": {} if context is None else context}
        answer = self._decide(body, [experiment], visitor, {experiment: default})
        return answer[experiment]

    def assign_many(self, experiments: Iterable[str], visitor: str, context: Context = None, *,
                    defaults: Optional[Mapping[str, str]] = None) -> Dict[str, Assignment]:
        """Several experiments in one request (and one transaction): key -> Assignment, in
        the order asked. If the request fails, every one of them is a fallback."""
        keys = [experiments] if isinstance(experiments, str) else list(experiments)
        body = {"experiments": keys, "visitor": visitor, "context": {} if context is None else context}
        return self._decide(body, keys, visitor, {key: (defaults or {}).get(key) for key in keys})

    def _decide(self, body: Dict[str, Any], keys: List[str], visitor: str,
                defaults: Mapping[str, Optional[str]]) -> Dict[str, Assignment]:
        def fallback(reason: str) -> Dict[str, Assignment]:
            return {key: self._fallback(key, visitor, defaults[key], reason) for key in keys}

        if not self._breaker.allow():
            return fallback(CIRCUIT_OPEN)
        try:
            data = encode(body)
        except LeverError as error:
            self._log.warning(f"assign:{INVALID_INPUT}", "lever_client: assign falls back: %s", error)
            return fallback(INVALID_INPUT)
        try:
            response = self._transport.request("POST", "/api/v1/assign", data)
        except Unreachable as error:
            self._breaker.failure()
            self._log.warning("assign:unreachable", "lever_client: assign falls back, Lever unreachable (%s)", error)
            return fallback(error.kind)
        if response.retryable:
            self._breaker.failure()
            self._log.warning("assign:unreachable", "lever_client: assign falls back, Lever answered %s",
                              response.error())
            return fallback(SERVER_ERROR)
        self._breaker.success()
        self._log.reset("assign:unreachable", "lever_client: Lever answers assign again")
        if response.status != 200:
            refusal = response.error()
            self._log.warning(f"assign:{refusal.code}", "lever_client: assign falls back, Lever refused it: %s "
                              "(further refusals with this code are not logged)", refusal)
            return fallback(REJECTED)
        answers = self._parse(response, visitor, "experiments" in body)
        if answers is None or set(answers) != set(keys):
            self._log.warning("assign:unexpected", "lever_client: assign falls back, unexpected answer %r",
                              response.body)
            return fallback(SERVER_ERROR)
        for assignment in answers.values():
            self._learn(assignment)
        return {key: answers[key] for key in keys}

    @staticmethod
    def _parse(response: Response, visitor: str, batched: bool) -> Optional[Dict[str, Assignment]]:
        try:
            bodies = response.body["assignments"] if batched else [response.body]
            return {body["experiment"]: Assignment.from_response(visitor, body) for body in bodies}
        except (KeyError, TypeError):
            return None

    # -- the control, for fallbacks -------------------------------------------------------------

    def control(self, experiment: str) -> Optional[str]:
        """The experiment's control as far as this client knows (None until it has learnt it)."""
        with self._lock:
            known = self._controls.get(experiment)
        return known[0] if known else None

    def control_payload(self, experiment: str) -> Optional[Mapping[str, Any]]:
        """The control's payload as far as this client knows (None until it has seen or looked it up)."""
        with self._lock:
            known = self._controls.get(experiment)
        return known[1] if known else None

    def _fallback(self, experiment: str, visitor: str, default: Optional[str], reason: str) -> Assignment:
        with self._lock:
            known = self._controls.get(experiment)
        variant, payload = known if known else (default, None)
        return Assignment(experiment=experiment, visitor=visitor, variant=variant, payload=payload,
                          fallback=True, reason=reason)

    def _learn(self, assignment: Assignment) -> None:
        """A paused experiment serves its control; otherwise, with an API key, fetch the
        definition once (on a short-lived thread, so the caller does not wait for it)."""
        key = assignment.experiment
        with self._lock:
            if assignment.status == "paused" and assignment.variant is not None:
                self._controls[key] = (assignment.variant, assignment.payload)
            elif assignment.control is not None and assignment.variant == assignment.control:
                self._controls[key] = (assignment.control, assignment.payload)  # served the control: all known
            elif assignment.control is not None and key not in self._controls:
                # the service names the control: fallbacks serve it now, its payload once seen or looked up
                self._controls[key] = (assignment.control, None)
                if self._api_key and key not in self._looked_up:
                    self._looked_up.add(key)
                    threading.Thread(target=self._look_up, args=(key,), name="lever-client-lookup",
                                     daemon=True).start()
                return
            if key in self._controls or key in self._looked_up or not self._api_key:
                return
            self._looked_up.add(key)
        threading.Thread(target=self._look_up, args=(key,), name="lever-client-lookup", daemon=True).start()

    def _look_up(self, key: str) -> None:
        try:
            response = self._transport.request("GET", f"/api/v1/experiments/{key}")
        except Unreachable:
            with self._lock:
                self._looked_up.discard(key)  # try again the next time it is assigned
            return
        body = response.body
        if response.status != 200 or not isinstance(body, dict):
            logger.debug("lever_client: no definition of %s (%s): fallbacks use the default", key, response.status)
            return
        control = body.get("control")
        payloads = {v.get("key"): v.get("payload") for v in body.get("variants", []) if isinstance(v, dict)}
        if isinstance(control, str):
            with self._lock:
                self._controls[key] = (control, payloads.get(control))

    # -- reward and track -----------------------------------------------------------------

    def reward(self, assignment_or_visitor: Union[Assignment, str], value: float = 1,
               event_id: Optional[str] = None, *, experiment: Optional[str] = None) -> Optional[str]:
        """Queue a reward for an ``Assignment`` (or its token string), or, with ``experiment=``,
        for the visitor's latest assignment in it (server-side; needs an ingest key).
        Returns the event id, or None for a fallback assignment (the visitor saw a variant
        Lever did not choose, so there is nothing to credit). Raises ``LeverError`` on bad arguments."""
        target = assignment_or_visitor
        if isinstance(target, Assignment):
            if experiment is not None:
                _fail("give an Assignment, or a visitor with experiment=")
            if target.fallback or not target.token:
                logger.debug("lever_client: no reward for the fallback assignment of %s", target.experiment)
                return None
            body: Dict[str, Any] = {"assignment": target.token}
        elif experiment is not None:
            if not isinstance(experiment, str) or not KEY_PATTERN.fullmatch(experiment):
                _fail(f"experiment must be an experiment key matching {KEY_PATTERN.pattern}")
            body = {"experiment": experiment, "visitor": _text(target, "visitor")}
        else:
            body = {"assignment": _text(target, "the assignment token")}
        body["value"] = _number(value, "value")
        body["event_id"] = checked_id = _event_id(event_id)
        self._batcher.put(Reward(body))
        return checked_id

    def track(self, visitor: str, name: str, value: Optional[float] = None, event_id: Optional[str] = None,
              ts: Optional[float] = None) -> str:
        """Queue an event (``POST /api/v1/events``; needs an ingest key). ``ts`` (Unix seconds)
        defaults to now, taken when queued. Returns the event id; raises ``LeverError`` on bad arguments."""
        checked_id = _event_id(event_id)
        event: Dict[str, Any] = {"name": _text(name, "name"), "event_id": checked_id,
                                 "ts": round(time.time(), 3) if ts is None else _number(ts, "ts")}
        if value is not None:
            event["value"] = _number(value, "value")
        self._batcher.put(Event(_text(visitor, "visitor"), event))
        return checked_id

    # -- queue and life cycle ---------------------------------------------------------------

    def stats(self) -> DeliveryStats:
        return self._counters.snapshot(self._batcher.queued())

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every reward and event queued so far is settled; False if time ran out."""
        return self._batcher.flush(timeout)

    def close(self, timeout: float = 5.0) -> bool:
        """Send what is queued (for at most about ``timeout`` s) and stop; idempotent.
        ``assign`` keeps working afterwards; ``reward`` and ``track`` drop (and count) what they get."""
        with self._lock:
            if self._closed:
                return True
            self._closed = True
        atexit.unregister(self._close_at_exit)  # bound methods of one object compare equal
        flushed = self._batcher.close(timeout)
        self._transport.close()
        return flushed

    def _close_at_exit(self) -> None:
        self.close(self.exit_timeout)

    def __enter__(self) -> "Lever":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        self._transport.after_fork()
        self._counters.after_fork()
        self._batcher.after_fork()
