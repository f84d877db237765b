"""Assign and reward: the data flow of one visitor, between the views and the cores.

assign: (sticky? the stored assignment) → the cached policy → a decision with its
propensity (holdout: uniform; ab: hashed bucket; bandit/contextual: Thompson) → one
write transaction for every experiment of the request → signed tokens.
reward: verify the token → window and type checks → one idempotent write transaction.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

from bandits import Decision, FixedWeights, decide, hash_unit

from .errors import NotFound, Unprocessable, ValidationError
from .experiments import Experiment
from .inputs import AssignRequest, RewardRequest
from .learning import LearningCache, PolicyEntry
from .privacy import VisitorIds
from .storage import NewAssignment, Storage, StoredAssignment
from .tokens import InvalidToken, TokenSigner, visitor_fingerprint


@dataclass(frozen=True)
class RequestInfo:
    """What the web layer knows about the request beyond its body (for enrichment)."""

    now: float
    user_agent: str = ""
    origin: str | None = None


@dataclass(frozen=True)
class Choice:
    entry: PolicyEntry
    decision: Decision
    holdout: bool
    context: Mapping[str, Any]
    model_update: Callable[[bytes | None], bytes] | None = None
    explanation: dict[str, float] | None = None


def _in_holdout(experiment: Experiment, visitor: str) -> bool:
    return experiment.holdout > 0 and hash_unit("holdout", experiment.key, visitor) < experiment.holdout


def _choose(entry: PolicyEntry, visitor: str, stored_visitor: str, context: Mapping[str, Any], info: RequestInfo,
            storage: Storage, rng: np.random.Generator) -> Choice:
    """``visitor`` as sent decides the hash buckets; ``stored_visitor`` is what storage knows."""
    experiment = entry.experiment
    holdout = _in_holdout(experiment, visitor)
    if experiment.mode == "contextual":
        from .contextual import contextual_choice

        return contextual_choice(entry, visitor, stored_visitor, context, info, storage, rng, holdout)
    if holdout:
        decision = entry.uniform.select_unit(hash_unit("holdout-bucket", experiment.key, visitor)) \
            if experiment.sticky else entry.uniform.select(rng)
    elif experiment.mode == "ab":
        decision = FixedWeights(entry.allocation).select_unit(hash_unit("bucket", experiment.key, visitor))
    else:
        decision = decide(entry.allocation, rng)
    return Choice(entry=entry, decision=decision, holdout=holdout, context=context)


def _response(experiment: Experiment, assignment: StoredAssignment, signer: TokenSigner,
              explanation: dict[str, float] | None = None) -> dict[str, Any]:
    variant = next(v for v in experiment.variants if v.id == assignment.variant_id)
    body = {
        "assignment": signer.sign(assignment.id, experiment.key, variant.key, assignment.visitor),
        "experiment": experiment.key,
        "variant": variant.key,
        "payload": dict(variant.payload),
        "propensity": assignment.propensity,
        "holdout": assignment.holdout,
        "model_version": assignment.model_version,
        "status": experiment.status,
        "sticky": assignment.existing,
    }
    if explanation is not None:
        body["explanation"] = explanation
    return body


def _not_running(experiment: Experiment) -> dict[str, Any]:
    """Paused or stopped: everyone sees the winner (stopped) or the control, nothing is logged."""
    key = experiment.winner if experiment.status == "stopped" and experiment.winner else experiment.control
    variant = next(v for v in experiment.variants if v.key == key)
    return {
        "assignment": None, "experiment": experiment.key, "variant": variant.key, "payload": dict(variant.payload),
        "propensity": None, "holdout": False, "model_version": None, "status": experiment.status, "sticky": False,
    }


def assign(request: AssignRequest, info: RequestInfo, storage: Storage, cache: LearningCache,
           signer: TokenSigner, rng: np.random.Generator, visitor_ids: VisitorIds,
           check_origin: Callable[[Experiment], None] | None = None) -> list[dict[str, Any]]:
    """Assign the visitor to every requested experiment, writing all new assignments at once."""
    stored_visitor = visitor_ids.stored(request.visitor)
    results: dict[str, dict[str, Any]] = {}
    pending: list[tuple[Choice, NewAssignment]] = []
    for key in request.experiments:
        entry = cache.get(storage, key)
        if entry is None:
            raise NotFound(f"no experiment {key!r}", code="experiment_not_found")
        experiment = entry.experiment
        if check_origin is not None:
            check_origin(experiment)
        if experiment.status != "running":
            results[key] = _not_running(experiment)
            continue
        if experiment.sticky:
            existing = storage.find_sticky_assignment(experiment.id, stored_visitor)
            if existing is not None:
                results[key] = _response(experiment, existing, signer)
                continue
        choice = _choose(entry, request.visitor, stored_visitor, request.context, info, storage, rng)
        variant_ids = [v.id for v in experiment.variants]
        pending.append((choice, NewAssignment(
            experiment_id=experiment.id,
            variant_id=variant_ids[choice.decision.arm],
            visitor=stored_visitor,
            sticky=experiment.sticky,
            context=choice.context,
            propensity=choice.decision.propensity,
            probabilities={vid: float(p) for vid, p in zip(variant_ids, choice.decision.probabilities)},
            holdout=choice.holdout,
            model_version=entry.model_version,
            created_at=info.now,
            model_update=choice.model_update,
            segments=entry.segmenter.segment_levels(choice.context),
        )))
    if pending:
        stored = storage.record_assignments([item for _, item in pending])
        for (choice, _), assignment in zip(pending, stored):
            experiment = choice.entry.experiment
            explanation = None if assignment.existing else choice.explanation
            results[experiment.key] = _response(experiment, assignment, signer, explanation)
    return [results[key] for key in request.experiments]


def _assignment_for(request: RewardRequest, storage: Storage, cache: LearningCache, signer: TokenSigner,
                    visitor_ids: VisitorIds) -> tuple[PolicyEntry, StoredAssignment]:
    """The assignment a reward is for, with the experiment's cached entry (its definition never
    changes but for status, which rewards do not depend on, so no extra query per reward)."""
    if request.token is not None:
        claims = signer.verify(request.token)
        assignment = storage.get_assignment(claims.assignment_id)
        if assignment is None:
            raise NotFound("no such assignment (it may have been erased)", code="assignment_not_found")
        entry = cache.get(storage, claims.experiment)
        experiment = entry.experiment if entry is not None else None
        variant = experiment and next((v for v in experiment.variants if v.id == assignment.variant_id), None)
        if (experiment is None or variant is None or variant.key != claims.variant
                or experiment.id != assignment.experiment_id
                or visitor_fingerprint(assignment.visitor) != claims.visitor_fingerprint):
            raise InvalidToken("assignment token does not match the stored assignment")
        return entry, assignment
    entry = cache.get(storage, request.experiment)
    if entry is None:
        raise NotFound(f"no experiment {request.experiment!r}", code="experiment_not_found")
    assignment = storage.latest_assignment(entry.experiment.id, visitor_ids.stored(request.visitor))
    if assignment is None:
        raise NotFound("this visitor has no assignment in this experiment", code="assignment_not_found")
    return entry, assignment


def reward(request: RewardRequest, info: RequestInfo, storage: Storage, cache: LearningCache,
           signer: TokenSigner, visitor_ids: VisitorIds,
           check_origin: Callable[[Experiment], None] | None = None) -> dict[str, Any]:
    entry, assignment = _assignment_for(request, storage, cache, signer, visitor_ids)
    experiment = entry.experiment
    if check_origin is not None:
        check_origin(experiment)
    if info.now - assignment.created_at > experiment.reward_window_s:
        raise Unprocessable(
            f"the reward window of {experiment.reward_window_s} s after the assignment has closed",
            code="reward_window_closed",
        )
    binary = experiment.reward == "binary"
    if binary and request.value not in (0.0, 1.0):
        raise ValidationError("binary experiments take value 1 (a conversion) or 0", code="invalid_reward_value")
    base = {"experiment": experiment.key, "assignment_id": assignment.id}
    if binary and request.value == 0.0:
        return {**base, "counted": False, "reason": "zero_value"}
    model_update = None
    if experiment.mode == "contextual":
        from .contextual import reward_update

        model_update = reward_update(entry, assignment, request.value, info.now)
    result = storage.record_reward(assignment, request.value, request.event_id, binary, info.now, model_update)
    return {**base, "counted": result.accepted, "reason": None if result.accepted else "duplicate",
            "reward_total": result.reward_total}

