"""Glue between the service and the contextual policy in ``bandits``.

The linear Thompson model of each variant is stored as a ``LinearArmState`` BLOB per
(experiment, variant), updated in the same transaction as the event that changes it:
a decision adds x xᵀ when the variant is served (reward 0 so far), a reward adds x·y
when it arrives, however late. The context stored with the assignment is the
*enriched* one, so re-encoding it at reward time, or when rebuilding from the log,
gives exactly the vector that decided.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

import numpy as np

from bandits import ContextEncoder, LinearArmState, LinearThompson, add_decision, add_reward, enrich, hash_unit
from bandits.linear import remove_decision

from .experiments import Experiment
from .storage import LearningSnapshot, Storage, StoredAssignment

if TYPE_CHECKING:
    from .decisions import Choice, RequestInfo
    from .learning import PolicyEntry

#: features the server can fill in when the client does not send them
ENRICHABLE = frozenset({"hour", "weekday", "device", "visits", "returning"})


@dataclass
class FittedContextual:
    encoder: ContextEncoder
    policy: LinearThompson
    half_life_s: float | None


def encoder_for(experiment: Experiment) -> ContextEncoder:
    return ContextEncoder.from_schema(list(experiment.context))


def _noise_variance(experiment: Experiment, snapshot: LearningSnapshot) -> float | None:
    """Numeric rewards: the pooled variance of per-assignment outcomes (binary: the policy's own)."""
    if experiment.reward == "binary":
        return None
    n = sum(t.assignments for t in snapshot.totals)
    if n < 2:
        return 1.0
    mean = sum(t.reward_sum for t in snapshot.totals) / n
    variance = sum(t.reward_sumsq for t in snapshot.totals) / n - mean * mean
    return max(variance, 1e-6)


def fit_contextual(experiment: Experiment, snapshot: LearningSnapshot, now: float) -> FittedContextual:
    encoder = encoder_for(experiment)
    states = [
        LinearArmState.from_bytes(snapshot.model_states[v.id]) if v.id in snapshot.model_states
        else LinearArmState.empty(encoder.width)
        for v in experiment.variants
    ]
    policy = LinearThompson(
        n_arms=len(experiment.variants), n_features=encoder.width, min_share=experiment.min_share,
        half_life_s=experiment.decay_half_life_s, noise_variance=_noise_variance(experiment, snapshot),
    )
    return FittedContextual(encoder=encoder, policy=policy.fit(states, now=now), half_life_s=experiment.decay_half_life_s)


def enrich_context(experiment: Experiment, stored_visitor: str, context: Mapping[str, Any], info: "RequestInfo",
                   storage: Storage) -> dict[str, Any]:
    """Fill declared hour/weekday/device/visits/returning the client did not send."""
    declared = {feature["name"] for feature in experiment.context}
    wanted = {"visits", "returning"} & declared
    visit_count = storage.visit_count(stored_visitor) if any(context.get(k) is None for k in wanted) else None
    tz_offset = context.get("tz_offset")
    tz_offset = int(tz_offset) if isinstance(tz_offset, (int, float)) and not isinstance(tz_offset, bool) else None
    return enrich(context, declared, epoch_seconds=info.now, tz_offset_minutes=tz_offset,
                  user_agent=info.user_agent, visit_count=visit_count)


def _state_update(width: int, step: Callable[[LinearArmState], LinearArmState]) -> Callable[[bytes | None], bytes]:
    def update(blob: bytes | None) -> bytes:
        state = LinearArmState.from_bytes(blob) if blob else LinearArmState.empty(width)
        return step(state).to_bytes()

    return update


def contextual_choice(entry: "PolicyEntry", visitor: str, stored_visitor: str, context: Mapping[str, Any],
                      info: "RequestInfo", storage: Storage, rng: np.random.Generator, holdout: bool) -> "Choice":
    from .decisions import Choice

    experiment = entry.experiment
    fitted: FittedContextual = entry.contextual
    enriched = enrich_context(experiment, stored_visitor, context, info, storage)
    encoded = fitted.encoder.encode(enriched)
    x = encoded.vector
    if holdout:
        unit = hash_unit("holdout-bucket", experiment.key, visitor)
        decision = entry.uniform.select_unit(unit) if experiment.sticky else entry.uniform.select(rng)
    else:
        decision = fitted.policy.select(rng, x)
    mean, sd = fitted.policy.predict(x)
    explanation = {
        "predicted": {k: float(m) for k, m in zip(experiment.variant_keys, mean)},
        "uncertainty": {k: float(s) for k, s in zip(experiment.variant_keys, sd)},
        "ignored_context_keys": list(encoded.unknown_keys),
    }
    half_life = fitted.half_life_s
    update = _state_update(fitted.encoder.width, lambda state: add_decision(state, x, info.now, half_life))
    return Choice(entry=entry, decision=decision, holdout=holdout, context=enriched, model_update=update,
                  explanation=explanation)


def reward_update(entry: "PolicyEntry", assignment: StoredAssignment, value: float,
                  now: float) -> Callable[[bytes | None], bytes]:
    """Add a reward to its arm's state; the encoder comes from the cached policy entry."""
    fitted: FittedContextual = entry.contextual
    encoder = fitted.encoder
    x = encoder.encode(assignment.context).vector
    half_life = fitted.half_life_s
    return _state_update(encoder.width,
                         lambda state: add_reward(state, x, value, assignment.created_at, now, half_life))


def removal_update(experiment: Experiment, context: Mapping[str, Any], decided_at: float,
                   reward_total: float) -> Callable[[bytes | None], bytes]:
    """Erasure: subtract one assignment's decision and rewards from its arm state."""
    encoder = encoder_for(experiment)
    x = encoder.encode(context).vector
    half_life = experiment.decay_half_life_s
    return _state_update(encoder.width,
                         lambda state: remove_decision(state, x, decided_at, reward_total, half_life))


def model_rebuilder(experiment: Experiment) -> Callable[..., dict[int, bytes]] | None:
    """For ``rebuild-stats``: replay the log into fresh arm states (contextual mode only)."""
    if experiment.mode != "contextual":
        return None
    encoder = encoder_for(experiment)
    half_life = experiment.decay_half_life_s

    def rebuild(events: Iterable[dict[str, Any]], rewards: Iterable[tuple[int, float, float]]) -> dict[int, bytes]:
        states = {v.id: LinearArmState.empty(encoder.width) for v in experiment.variants}
        decided: dict[int, tuple[int, np.ndarray, float]] = {}
        for event in events:
            x = encoder.encode(json.loads(event["context"])).vector
            states[event["variant_id"]] = add_decision(states[event["variant_id"]], x, event["created_at"], half_life)
            decided[event["id"]] = (event["variant_id"], x, event["created_at"])
        for assignment_id, value, created_at in rewards:
            variant_id, x, decided_at = decided[assignment_id]
            states[variant_id] = add_reward(states[variant_id], x, value, decided_at, created_at, half_life)
        return {variant_id: state.to_bytes() for variant_id, state in states.items()}

    return rebuild
