"""Sufficient statistics of one arm of the linear policy, and their exact updates.

The service stores a :class:`LinearArmState` per (experiment, variant) and applies
:func:`add_decision` when the variant is served (y = 0 so far), :func:`add_reward` when
its conversion arrives (however late: the result equals an immediate update) and
:func:`remove_decision` to erase a visitor. With a half-life h, an event at time t
weighs 2^-((now - t)/h) at time ``now`` (see :func:`decay_to`).
"""
from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from .base import PolicyConfigError

_MAGIC = b"LAS1"
_HEADER = struct.Struct("<4sI")  # magic, d


# -- sufficient statistics -------------------------------------------------------------
@dataclass(frozen=True)
class LinearArmState:
    """Decayed sufficient statistics of one arm, as plain arrays.

    ``precision_increment`` = sum_i w_i x_i x_i' (d, d), ``target`` = sum_i w_i x_i y_i
    (d,), ``decisions`` = sum_i w_i, where w_i = 2^-((reference_time - t_i)/h) is the
    weight of event i at ``reference_time`` (1 without decay). Arrays are read-only:
    the update functions return new states.
    """

    precision_increment: np.ndarray
    target: np.ndarray
    decisions: float = 0.0
    reference_time: float = 0.0

    def __post_init__(self) -> None:
        p = np.array(self.precision_increment, dtype=np.float64)
        b = np.array(self.target, dtype=np.float64)
        if b.ndim != 1 or p.shape != (b.size, b.size) or b.size < 1:
            raise PolicyConfigError(f"arm state shapes do not match: {p.shape} and {b.shape}")
        if not (np.isfinite(p).all() and np.isfinite(b).all()):
            raise PolicyConfigError("arm state contains NaN or infinity")
        if not (math.isfinite(self.decisions) and self.decisions >= 0 and math.isfinite(self.reference_time)):
            raise PolicyConfigError("arm state needs finite decisions >= 0 and a finite reference_time")
        # Outer products are exactly symmetric, so this is an identity for any state the
        # update functions built; it makes the packed (upper-triangle) storage lossless.
        p = 0.5 * (p + p.T)
        p.flags.writeable = False
        b.flags.writeable = False
        object.__setattr__(self, "precision_increment", p)
        object.__setattr__(self, "target", b)
        object.__setattr__(self, "decisions", float(self.decisions))
        object.__setattr__(self, "reference_time", float(self.reference_time))

    @property
    def dim(self) -> int:
        return self.target.size

    @classmethod
    def empty(cls, dim: int, reference_time: float = 0.0) -> "LinearArmState":
        return cls(np.zeros((dim, dim)), np.zeros(dim), 0.0, reference_time)

    def to_bytes(self) -> bytes:
        """Little-endian: b"LAS1", uint32 d, then float64 decisions, reference_time,
        target (d) and the upper triangle of precision_increment row by row (d(d+1)/2).
        """
        upper = self.precision_increment[np.triu_indices(self.dim)]
        body = np.concatenate([[self.decisions, self.reference_time], self.target, upper]).astype("<f8")
        return _HEADER.pack(_MAGIC, self.dim) + body.tobytes()

    @classmethod
    def from_bytes(cls, blob: bytes) -> "LinearArmState":
        if len(blob) < _HEADER.size:
            raise PolicyConfigError("arm state blob is truncated")
        magic, dim = _HEADER.unpack_from(blob)
        expected = _HEADER.size + 8 * (2 + dim + dim * (dim + 1) // 2)
        if magic != _MAGIC or len(blob) != expected or dim < 1:
            raise PolicyConfigError("not a LinearArmState blob (bad magic or length)")
        body = np.frombuffer(blob, dtype="<f8", offset=_HEADER.size).astype(np.float64)
        decisions, reference_time = float(body[0]), float(body[1])
        target = body[2 : 2 + dim]
        p = np.zeros((dim, dim))
        p[np.triu_indices(dim)] = body[2 + dim :]
        p = p + np.triu(p, 1).T
        return cls(p, target.copy(), decisions, reference_time)

    def to_dict(self) -> dict:
        return {
            "precision_increment": self.precision_increment.tolist(),
            "target": self.target.tolist(),
            "decisions": self.decisions,
            "reference_time": self.reference_time,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "LinearArmState":
        return cls(
            np.asarray(data["precision_increment"], dtype=float),
            np.asarray(data["target"], dtype=float),
            float(data["decisions"]),
            float(data["reference_time"]),
        )


def _decay_factor(elapsed: float, half_life: float | None) -> float:
    """2^-(elapsed / h): the weight left after ``elapsed`` seconds (1 without decay)."""
    if half_life is None or elapsed <= 0:
        return 1.0
    return math.exp(-math.log(2.0) * elapsed / half_life)


def decay_to(state: LinearArmState, t: float, half_life: float | None) -> LinearArmState:
    """The same statistics expressed at a later time t.

    Each stored weight w_i = 2^-((r - t_i)/h) becomes 2^-((t - t_i)/h) = w_i * 2^-((t - r)/h),
    so the whole state is multiplied by one factor and r moves to t. The reference time
    only moves forward: every factor is <= 1, so nothing can overflow, however long
    the experiment runs. Without a half-life only the reference time moves.
    """
    if t <= state.reference_time:
        return state
    factor = _decay_factor(t - state.reference_time, half_life)
    return LinearArmState(
        state.precision_increment * factor, state.target * factor, state.decisions * factor, float(t)
    )


def _vector(x: np.ndarray, dim: int) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.shape != (dim,) or not np.isfinite(x).all():
        raise PolicyConfigError(f"context must be a finite vector of shape ({dim},), got shape {x.shape}")
    return x


def add_decision(state: LinearArmState, x: np.ndarray, t: float, half_life: float | None = None) -> LinearArmState:
    """Count one decision of this arm for context x at time t (reward 0 until one arrives).

    The state first moves to max(t, reference_time); the event then enters with weight
    2^-((reference_time - t)/h), which is 1 unless it is older than the state.
    """
    x = _vector(x, state.dim)
    state = decay_to(state, t, half_life)
    w = _decay_factor(state.reference_time - t, half_life)
    return LinearArmState(
        state.precision_increment + w * np.outer(x, x),
        state.target,
        state.decisions + w,
        state.reference_time,
    )


def add_reward(
    state: LinearArmState,
    x: np.ndarray,
    value: float,
    decided_at: float,
    t: float,
    half_life: float | None = None,
) -> LinearArmState:
    """Add a reward that arrived at time t for a decision made at ``decided_at``.

    The decision's x x' entered the state with the weight of time ``decided_at``; its
    reward enters ``target`` with that same weight, so a delayed reward leaves exactly
    the statistics an immediate one would have (up to rounding). t only advances the
    reference time.
    """
    x = _vector(x, state.dim)
    if not math.isfinite(value):
        raise PolicyConfigError(f"reward must be finite, got {value!r}")
    state = decay_to(state, max(t, decided_at), half_life)
    w = _decay_factor(state.reference_time - decided_at, half_life)
    return LinearArmState(
        state.precision_increment, state.target + (w * value) * x, state.decisions, state.reference_time
    )


def remove_decision(
    state: LinearArmState,
    x: np.ndarray,
    decided_at: float,
    reward_total: float,
    half_life: float | None = None,
) -> LinearArmState:
    """Take one decision (and its rewards) back out of the statistics: erasure of a visitor.

    The decision entered with the weight w = 2^-((r - t_d)/h) it has at the state's
    reference time r, so subtracting w x x' from the precision and w x y from the target
    leaves exactly the statistics that never saw it (up to rounding).
    """
    x = _vector(x, state.dim)
    w = _decay_factor(state.reference_time - decided_at, half_life)
    return LinearArmState(
        state.precision_increment - w * np.outer(x, x),
        state.target - (w * reward_total) * x,
        max(state.decisions - w, 0.0),
        state.reference_time,
    )
