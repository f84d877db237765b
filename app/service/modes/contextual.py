"""The contextual mode: linear Thompson sampling per variant over the encoded context.

The linear model of each variant is stored as a ``LinearArmState`` BLOB per
(experiment, variant), updated in the same transaction as the event that changes it:
a decision adds x xᵀ when the variant is served (reward 0 so far), a reward adds x·y
when it arrives, however late. The context stored with the assignment is the
*enriched* one, so re-encoding it at reward time, or when rebuilding from the log,
gives exactly the vector that decided.
"""
from __future__ import annotations

import json
import logging
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from bandits import (
    ContextEncoder,
    Decision,
    EncodedContext,
    LinearArmState,
    LinearThompson,
    add_decision,
    add_reward,
    enrich,
)
from bandits.arm_state import load_arm_state
from bandits.describe import describe
from bandits.linear import remove_decision

from ...domain.experiments import Experiment
from ...storage import LearningSnapshot, ModelUpdate, StoredAssignment
from .. import counters
from .base import FittedPolicy, Mode, ModelRebuild, RequestInfo

#: features the server can fill in when the client does not send them
ENRICHABLE = frozenset({"hour", "weekday", "device", "visits", "returning"})


log = logging.getLogger(__name__)


def encoder_for(experiment: Experiment) -> ContextEncoder:
    return ContextEncoder.from_schema(list(experiment.context), experiment.crosses)


def _noise_variance(experiment: Experiment, snapshot: LearningSnapshot) -> float | None:
    """Numeric rewards: the pooled variance of per-assignment outcomes (binary: the policy's own)."""
    if experiment.reward == "binary":
        return None
    n = sum(t.assignments for t in snapshot.totals)
    if n < 2:
        return 1.0
    pooled = counters.arm_statistics(snapshot.totals, counters.snapshot_shift(snapshot.totals))
    mean = pooled.reward_sum / n  # of y - K: the variance is the same, and stable
    variance = pooled.reward_sumsq / n - mean * mean
    return max(variance, 1e-6)


def _state_update(width: int, delay_s: float | None,
                  step: Callable[[LinearArmState], LinearArmState]) -> ModelUpdate:
    def update(blob: bytes | None) -> bytes:
        state, _reason = load_arm_state(blob, width, delay_s)  # an unusable stored state restarts empty
        return step(state).to_bytes()

    return update


class LinearPolicy(FittedPolicy):
    """A fitted ``LinearThompson`` with the encoder that feeds it."""

    describe_contexts = 500  # the allocation and the learned combinations are averaged over these

    def __init__(self, variant_keys: tuple[str, ...], encoder: ContextEncoder, policy: LinearThompson,
                 half_life_s: float | None, delay_s: float | None) -> None:
        self.variant_keys = variant_keys
        self.encoder = encoder
        self.policy = policy
        self.half_life_s = half_life_s
        self.delay_s = delay_s

    def features(self, context: Mapping[str, Any]) -> EncodedContext:
        return self.encoder.encode(context)

    def select(self, experiment: Experiment, visitor: str, features: EncodedContext,
               rng: np.random.Generator) -> Decision:
        return self.policy.select(rng, features.vector)

    def decision_update(self, features: EncodedContext, now: float) -> ModelUpdate:
        x = features.vector
        half_life = self.half_life_s
        return _state_update(self.encoder.width, self.delay_s, lambda state: add_decision(state, x, now, half_life))

    def reward_update(self, assignment: StoredAssignment, value: float, now: float) -> ModelUpdate:
        x = self.encoder.encode(assignment.context).vector
        half_life = self.half_life_s
        return _state_update(self.encoder.width, self.delay_s,
                             lambda state: add_reward(state, x, value, assignment.created_at, now, half_life))

    def explain(self, features: EncodedContext) -> dict[str, Any]:
        mean, sd = self.policy.predict(features.vector)
        return {
            "predicted": {k: float(m) for k, m in zip(self.variant_keys, mean)},
            "uncertainty": {k: float(s) for k, s in zip(self.variant_keys, sd)},
            "ignored_context_keys": list(features.unknown_keys),
        }

    def describe(self, experiment: Experiment, recent_contexts: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
        """The learned structure in numbers and words: average allocation over recent contexts,
        coefficients per variant with intervals, and which context combinations prefer which variant."""
        description = describe(self.policy, self.encoder, self.variant_keys, recent_contexts).to_dict()
        description["features"] = self.encoder.describe()  # the declared encoding (harmonics, parts, crosses)
        return {"allocation": description.get("average_allocation"), "posterior": None, "contextual": description}


class ContextualMode(Mode):
    name = "contextual"

    def fit(self, experiment: Experiment, snapshot: LearningSnapshot, now: float, draws: int) -> FittedPolicy:
        encoder = encoder_for(experiment)
        states = []
        for variant in experiment.variants:
            state, reason = load_arm_state(snapshot.model_states.get(variant.id), encoder.width,
                                           experiment.reward_delay_s)
            if reason is not None:
                log.warning("experiment %s variant %s: stored model state unusable (%s); it restarts empty",
                            experiment.key, variant.key, reason)
            states.append(state)
        policy = LinearThompson(
            n_arms=len(experiment.variants), n_features=encoder.width, min_share=experiment.min_share,
            half_life_s=experiment.decay_half_life_s, noise_variance=_noise_variance(experiment, snapshot),
            main_columns=encoder.main_width, column_groups=encoder.column_groups(),
        )
        return LinearPolicy(experiment.variant_keys, encoder, policy.fit(states, now=now),
                            experiment.decay_half_life_s, experiment.reward_delay_s)

    def prepare_context(self, experiment: Experiment, stored_visitor: str, context: Mapping[str, Any],
                        info: RequestInfo, visit_count: Callable[[str], int]) -> Mapping[str, Any]:
        """Fill declared hour/weekday/device/visits/returning the client did not send."""
        declared = {feature["name"] for feature in experiment.context}
        wanted = {"visits", "returning"} & declared
        visits = visit_count(stored_visitor) if any(context.get(k) is None for k in wanted) else None
        tz_offset = context.get("tz_offset")
        tz_offset = int(tz_offset) if isinstance(tz_offset, (int, float)) and not isinstance(tz_offset, bool) else None
        return enrich(context, declared, epoch_seconds=info.now, tz_offset_minutes=tz_offset,
                      user_agent=info.user_agent, visit_count=visits)

    def removal_update(self, experiment: Experiment, context: Mapping[str, Any], decided_at: float,
                       reward_total: float) -> ModelUpdate:
        encoder = encoder_for(experiment)
        x = encoder.encode(context).vector
        half_life = experiment.decay_half_life_s
        return _state_update(encoder.width, experiment.reward_delay_s,
                             lambda state: remove_decision(state, x, decided_at, reward_total, half_life))

    def rebuilder(self, experiment: Experiment) -> ModelRebuild:
        encoder = encoder_for(experiment)
        half_life = experiment.decay_half_life_s

        def rebuild(events: Iterable[dict[str, Any]], rewards: Iterable[tuple[int, float, float]]) -> dict[int, bytes]:
            states = {v.id: LinearArmState.empty(encoder.width, reward_delay_s=experiment.reward_delay_s)
                      for v in experiment.variants}
            decided: dict[int, tuple[int, np.ndarray, float]] = {}
            for event in events:
                x = encoder.encode(json.loads(event["context"])).vector
                states[event["variant_id"]] = add_decision(states[event["variant_id"]], x, event["created_at"],
                                                           half_life)
                decided[event["id"]] = (event["variant_id"], x, event["created_at"])
            for assignment_id, value, created_at in rewards:
                variant_id, x, decided_at = decided[assignment_id]
                states[variant_id] = add_reward(states[variant_id], x, value, decided_at, created_at, half_life)
            return {variant_id: state.to_bytes() for variant_id, state in states.items()}

        return rebuild
