"""Sufficient statistics of one arm of the linear policy, and their exact updates.

The service stores a :class:`LinearArmState` per (experiment, variant) and applies
:func:`add_decision` when the variant is served (y = 0 so far), :func:`add_reward` when
its conversion arrives (however late: the result equals an immediate update) and
:func:`remove_decision` to erase a visitor. With a half-life h, an event at time t
weighs 2^-((now - t)/h) at time ``now`` (see :func:`decay_to`).

Pending rewards. A decision counts at once with reward 0, so an arm served a lot in
the last minutes looks worse than it is until its conversions arrive. With
``reward_delay_s`` = tau (set when the state is created) the state also keeps

    pending = sum_i w_i exp(-(now - t_i) / tau) x_i x_i',

the part of each decision's exposure whose reward has not had time to arrive yet
when reward delays are exponential with mean tau (P(arrived by age a) = 1 - e^(-a/tau)).
:meth:`LinearArmState.exposure` = precision_increment - pending is then the expected
exposure behind the rewards observed so far: for one arm without context the
estimate clicks / (n - pending) is unbiased at any moment, instead of clicks / n
being biased low by the share of recent decisions. pending is itself a decayed
accumulator (rate 1/tau on top of the half-life), so it costs one more d x d matrix.
"""
from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from .base import PolicyConfigError

#: Rewards are clamped to this magnitude (1e308 would overflow the sums); see :func:`clamp_reward`.
MAX_ABS_REWARD = 1e9
REASON_REWARD_NOT_FINITE = "reward_not_finite"
REASON_REWARD_CLAMPED = "reward_clamped"

_MAGIC = b"LAS1"
_MAGIC_PENDING = b"LAS2"  # with reward_delay_s and the pending matrix
_HEADER = struct.Struct("<4sI")  # magic, d


# -- sufficient statistics -------------------------------------------------------------
@dataclass(frozen=True)
class LinearArmState:
    """Decayed sufficient statistics of one arm, as plain arrays.

    ``precision_increment`` = sum_i w_i x_i x_i' (d, d), ``target`` = sum_i w_i x_i y_i
    (d,), ``decisions`` = sum_i w_i, where w_i = 2^-((reference_time - t_i)/h) is the
    weight of event i at ``reference_time`` (1 without decay). With ``reward_delay_s``
    (tau), ``pending`` = sum_i w_i e^(-(reference_time - t_i)/tau) x_i x_i' (module doc).
    Arrays are read-only: the update functions return new states.
    """

    precision_increment: np.ndarray
    target: np.ndarray
    decisions: float = 0.0
    reference_time: float = 0.0
    pending: np.ndarray | None = None
    reward_delay_s: float | None = None

    def __post_init__(self) -> None:
        if self.reward_delay_s is not None:
            tau = self.reward_delay_s
            if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not (math.isfinite(tau) and tau > 0):
                raise PolicyConfigError(f"reward_delay_s must be a positive number or None, got {tau!r}")
            object.__setattr__(self, "reward_delay_s", float(tau))
            pending = np.zeros_like(np.asarray(self.precision_increment, dtype=float)) if self.pending is None else self.pending
            pending = np.array(pending, dtype=np.float64)
            if pending.shape != np.shape(self.precision_increment) or not np.isfinite(pending).all():
                raise PolicyConfigError("pending matrix must be finite and shaped like precision_increment")
            pending = 0.5 * (pending + pending.T)
            pending.flags.writeable = False
            object.__setattr__(self, "pending", pending)
        elif self.pending is not None:
            raise PolicyConfigError("a pending matrix needs reward_delay_s")
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
    def empty(cls, dim: int, reference_time: float = 0.0, reward_delay_s: float | None = None) -> "LinearArmState":
        return cls(np.zeros((dim, dim)), np.zeros(dim), 0.0, reference_time, None, reward_delay_s)

    def exposure(self) -> np.ndarray:
        """precision_increment - pending: the exposure whose rewards had time to arrive."""
        return self.precision_increment if self.pending is None else self.precision_increment - self.pending

    def _replace(self, precision: np.ndarray, target: np.ndarray, decisions: float, reference_time: float,
                 pending: np.ndarray | None) -> "LinearArmState":
        return LinearArmState(precision, target, decisions, reference_time, pending, self.reward_delay_s)

    def to_bytes(self) -> bytes:
        """Little-endian: b"LAS1", uint32 d, then float64 decisions, reference_time,
        target (d) and the upper triangle of precision_increment row by row (d(d+1)/2).
        With reward_delay_s: b"LAS2", the same, then reward_delay_s and the upper
        triangle of pending.
        """
        upper = np.triu_indices(self.dim)
        parts = [[self.decisions, self.reference_time], self.target, self.precision_increment[upper]]
        magic = _MAGIC
        if self.reward_delay_s is not None:
            parts += [[self.reward_delay_s], self.pending[upper]]
            magic = _MAGIC_PENDING
        return _HEADER.pack(magic, self.dim) + np.concatenate(parts).astype("<f8").tobytes()

    @classmethod
    def from_bytes(cls, blob: bytes) -> "LinearArmState":
        if len(blob) < _HEADER.size:
            raise PolicyConfigError("arm state blob is truncated")
        magic, dim = _HEADER.unpack_from(blob)
        packed = dim * (dim + 1) // 2
        expected = _HEADER.size + 8 * (2 + dim + packed + ((1 + packed) if magic == _MAGIC_PENDING else 0))
        if magic not in (_MAGIC, _MAGIC_PENDING) or len(blob) != expected or dim < 1:
            raise PolicyConfigError("not a LinearArmState blob (bad magic or length)")
        body = np.frombuffer(blob, dtype="<f8", offset=_HEADER.size).astype(np.float64)
        decisions, reference_time = float(body[0]), float(body[1])
        target = body[2 : 2 + dim]
        precision = _unpack_symmetric(body[2 + dim : 2 + dim + packed], dim)
        if magic == _MAGIC:
            return cls(precision, target.copy(), decisions, reference_time)
        tail = body[2 + dim + packed :]
        return cls(precision, target.copy(), decisions, reference_time, _unpack_symmetric(tail[1:], dim), float(tail[0]))

    def to_dict(self) -> dict:
        data = {
            "precision_increment": self.precision_increment.tolist(),
            "target": self.target.tolist(),
            "decisions": self.decisions,
            "reference_time": self.reference_time,
        }
        if self.reward_delay_s is not None:
            data.update(pending=self.pending.tolist(), reward_delay_s=self.reward_delay_s)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "LinearArmState":
        pending = data.get("pending")
        return cls(
            np.asarray(data["precision_increment"], dtype=float),
            np.asarray(data["target"], dtype=float),
            float(data["decisions"]),
            float(data["reference_time"]),
            None if pending is None else np.asarray(pending, dtype=float),
            data.get("reward_delay_s"),
        )


def _unpack_symmetric(upper: np.ndarray, dim: int) -> np.ndarray:
    matrix = np.zeros((dim, dim))
    matrix[np.triu_indices(dim)] = upper
    return matrix + np.triu(matrix, 1).T


def load_arm_state(blob: bytes | None, dim: int, reward_delay_s: float | None = None) -> tuple[LinearArmState, str | None]:
    """A stored blob as a state, or an empty state with a reason code when it cannot be used.

    Never raises: a truncated, corrupted (NaN/infinite) or wrong-width blob gives
    ``(LinearArmState.empty(dim), reason)`` so that one bad row cannot break decisions.
    """
    if not blob:
        return LinearArmState.empty(dim, reward_delay_s=reward_delay_s), None
    try:
        state = LinearArmState.from_bytes(blob)
    except PolicyConfigError:
        return LinearArmState.empty(dim, reward_delay_s=reward_delay_s), "unreadable_arm_state"
    if state.dim != dim:
        return LinearArmState.empty(dim, reward_delay_s=reward_delay_s), "arm_state_width_mismatch"
    return state, None


def clamp_reward(value: Any) -> tuple[float | None, str | None]:
    """(usable reward, reason): NaN/non-numbers are rejected, huge values clamped to +/-MAX_ABS_REWARD."""
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None, REASON_REWARD_NOT_FINITE
    if math.isnan(number):
        return None, REASON_REWARD_NOT_FINITE
    if abs(number) > MAX_ABS_REWARD:
        return math.copysign(MAX_ABS_REWARD, number), REASON_REWARD_CLAMPED
    return number, None


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
    elapsed = t - state.reference_time
    factor = _decay_factor(elapsed, half_life)
    pending = None
    if state.pending is not None:
        pending = state.pending * (factor * math.exp(-elapsed / state.reward_delay_s))
    return state._replace(
        state.precision_increment * factor, state.target * factor, state.decisions * factor, float(t), pending
    )


def _pending_weight(state: LinearArmState, age: float) -> float:
    """e^(-age / tau): the share of a decision of this age whose reward is still to come."""
    return math.exp(-max(age, 0.0) / state.reward_delay_s)


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
    outer = np.outer(x, x)
    pending = None
    if state.pending is not None:
        pending = state.pending + (w * _pending_weight(state, state.reference_time - t)) * outer
    return state._replace(
        state.precision_increment + w * outer, state.target, state.decisions + w, state.reference_time, pending
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
    reference time. The value goes through :func:`clamp_reward` (use it first to log
    the reason); NaN raises :class:`PolicyConfigError`.
    """
    x = _vector(x, state.dim)
    value, reason = clamp_reward(value)
    if value is None:
        raise PolicyConfigError(f"reward must be a finite number ({reason})")
    state = decay_to(state, max(t, decided_at), half_life)
    w = _decay_factor(state.reference_time - decided_at, half_life)
    return state._replace(
        state.precision_increment, state.target + (w * value) * x, state.decisions, state.reference_time, state.pending
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
    outer = np.outer(x, x)
    pending = None
    if state.pending is not None:
        pending = state.pending - (w * _pending_weight(state, state.reference_time - decided_at)) * outer
    reward_total = clamp_reward(reward_total)[0] or 0.0
    return state._replace(
        state.precision_increment - w * outer,
        state.target - (w * reward_total) * x,
        max(state.decisions - w, 0.0),
        state.reference_time,
        pending,
    )
