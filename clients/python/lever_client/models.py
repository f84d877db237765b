"""What the client hands back: assignments, delivery counters and the one exception type."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional

# Why an assignment is a fallback (``Assignment.reason``).
TIMEOUT = "timeout"
CONNECTION_ERROR = "connection_error"
SERVER_ERROR = "server_error"  # 5xx
REJECTED = "rejected"  # 4xx: the request was wrong (unknown experiment, bad context, ...)
CIRCUIT_OPEN = "circuit_open"  # recent calls failed: not even tried, see Lever's docstring
INVALID_INPUT = "invalid_input"  # could not be encoded as JSON (NaN, a set, ...)


class LeverError(Exception):
    """A request the caller got wrong (bad argument, or a 4xx from Lever)."""

    def __init__(self, code: str, message: str, status: Optional[int] = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


@dataclass(frozen=True)
class Assignment:
    """One decision. ``fallback=True`` means Lever was not reached (or refused the request):
    ``variant`` is then the experiment's control if the client knows it, else the caller's
    ``default``; ``token`` and ``propensity`` are ``None`` and rewarding it does nothing."""

    experiment: str
    visitor: str
    variant: Optional[str]
    payload: Optional[Mapping[str, Any]] = None
    propensity: Optional[float] = None
    token: Optional[str] = None
    holdout: bool = False
    model_version: Optional[int] = None
    status: Optional[str] = None
    sticky: bool = False
    control: Optional[str] = None  # the experiment's control, as the service names it
    fallback: bool = False
    reason: Optional[str] = None  # one of the constants above when fallback

    @classmethod
    def from_response(cls, visitor: str, body: Mapping[str, Any]) -> "Assignment":
        return cls(experiment=body["experiment"], visitor=visitor, variant=body.get("variant"),
                   payload=body.get("payload"), propensity=body.get("propensity"), token=body.get("assignment"),
                   holdout=bool(body.get("holdout")), model_version=body.get("model_version"),
                   status=body.get("status"), sticky=bool(body.get("sticky")),
                   control=body.get("control") if isinstance(body.get("control"), str) else None)


@dataclass(frozen=True)
class DeliveryStats:
    """Counters of the background queue since the client was created.

    ``sent``: rewards and events Lever acknowledged (``duplicates`` of them it had already);
    ``rejected``: refused with a 4xx (a caller bug, logged); ``failed``: given up after
    repeated 5xx answers; ``dropped``: never sent because the queue was full (Lever down
    for long), the client was closed, or the exit flush ran out of time; ``queued``: waiting now.
    """

    queued: int
    sent: int
    duplicates: int
    rejected: int
    failed: int
    dropped: int
