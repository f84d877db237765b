"""Assign and reward: the data flow of one visitor, between the web layer and the cores.

assign: (sticky? the stored assignment) → the cached policy → the context as the mode
logs it → a decision with its propensity (holdout: uniform; otherwise the experiment's
mode) → one write transaction for every experiment of the request → signed tokens.
reward: verify the token → window and type checks → one idempotent write transaction.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from bandits import Decision

from ..domain.errors import NotFound, Unprocessable, ValidationError
from ..domain.experiments import Experiment, check_value
from ..domain.requests import AssignRequest, RewardRequest
from ..storage import ModelUpdate, NewAssignment, Storage, StoredAssignment
from .modes import MODES, RequestInfo, in_holdout
from .policy_cache import LearningCache, PolicyEntry
from .privacy import VisitorIds
from .tokens import InvalidToken, TokenSigner, visitor_fingerprint

#: a check the web layer runs on each experiment of a request (e.g. its CORS allow-list)
ExperimentCheck = Callable[[Experiment], None]


@dataclass(frozen=True)
class Services:
    """What the visitor's data flow needs, built once per process (``app.web.factory``)."""

    storage: Storage
    cache: LearningCache
    signer: TokenSigner
    visitor_ids: VisitorIds
    rng: np.random.Generator


@dataclass(frozen=True)
class Choice:
    entry: PolicyEntry
    decision: Decision
    holdout: bool
    context: Any
    model_update: ModelUpdate | None = None
    explanation: dict[str, Any] | None = None


def _choose(entry: PolicyEntry, visitor: str, stored_visitor: str, context: Any, info: RequestInfo,
            storage: Storage, rng: np.random.Generator) -> Choice:
    """``visitor`` as sent decides the hash buckets; ``stored_visitor`` is what storage knows."""
    experiment = entry.experiment
    holdout = in_holdout(experiment, visitor)
    logged = MODES[experiment.mode].prepare_context(experiment, stored_visitor, context, info, storage.visit_count)
    features = entry.policy.features(logged)
    chooser = entry.holdout if holdout else entry.policy
    decision = chooser.select(experiment, visitor, features, rng)
    return Choice(entry=entry, decision=decision, holdout=holdout, context=logged,
                  model_update=entry.policy.decision_update(features, info.now),
                  explanation=entry.policy.explain(features))


def _response(experiment: Experiment, assignment: StoredAssignment, signer: TokenSigner,
              explanation: dict[str, Any] | None = None) -> dict[str, Any]:
    variant = next(v for v in experiment.variants if v.id == assignment.variant_id)
    # a returning visitor of a variant a guardrail stopped sees the control; the token (and the
    # statistics: intention to treat) keep the assignment as it was made
    shown = variant
    if variant.key in experiment.stopped_variants:
        shown = next(v for v in experiment.variants if v.key == experiment.control)
    body = {
        "assignment": signer.sign(assignment.id, experiment.key, variant.key, assignment.visitor),
        "experiment": experiment.key,
        "variant": shown.key,
        "payload": dict(shown.payload),
        "propensity": assignment.propensity,
        "holdout": assignment.holdout,
        "model_version": assignment.model_version,
        "status": experiment.status,
        "sticky": assignment.existing,
        "control": experiment.control,
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
        "control": experiment.control,
    }


def assign(request: AssignRequest, info: RequestInfo, services: Services,
           check: ExperimentCheck | None = None) -> list[dict[str, Any]]:
    """Assign the visitor to every requested experiment, writing all new assignments at once."""
    storage, cache = services.storage, services.cache
    stored_visitor = services.visitor_ids.stored(request.visitor)
    results: dict[str, dict[str, Any]] = {}
    pending: list[tuple[Choice, NewAssignment]] = []
    for key in request.experiments:
        entry = cache.get(storage, key)
        if entry is None:
            raise NotFound(f"no experiment {key!r}", code="experiment_not_found")
        experiment = entry.experiment
        if check is not None:
            check(experiment)
        if experiment.status != "running":
            results[key] = _not_running(experiment)
            continue
        if experiment.sticky:
            existing = storage.find_sticky_assignment(experiment.id, stored_visitor)
            if existing is not None:
                results[key] = _response(experiment, existing, services.signer)
                continue
        choice = _choose(entry, request.visitor, stored_visitor, request.context, info, storage, services.rng)
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
            results[experiment.key] = _response(experiment, assignment, services.signer, explanation)
    visitor_token = services.signer.sign_visitor(request.visitor)  # lets the page send this visitor's events
    for result in results.values():
        result["visitor_token"] = visitor_token
    return [results[key] for key in request.experiments]


def _assignment_for(request: RewardRequest, services: Services) -> tuple[PolicyEntry, StoredAssignment]:
    """The assignment a reward is for, with the experiment's cached entry (its definition never
    changes but for status, which rewards do not depend on, so no extra query per reward)."""
    storage, cache = services.storage, services.cache
    if request.token is not None:
        claims = services.signer.verify(request.token)
        assignment = storage.get_assignment(claims.assignment_id)
        if assignment is None:
            raise NotFound("no such assignment (it may have been erased)", code="assignment_not_found")
        entry = cache.get(storage, claims.experiment)
        experiment = entry.experiment if entry is not None else None
        variant = experiment and next((v for v in experiment.variants if v.id == assignment.variant_id), None)
        if (entry is None or variant is None or variant.key != claims.variant
                or entry.experiment.id != assignment.experiment_id
                or visitor_fingerprint(assignment.visitor) != claims.visitor_fingerprint):
            raise InvalidToken("assignment token does not match the stored assignment")
        return entry, assignment
    entry = cache.get(storage, request.experiment)
    if entry is None:
        raise NotFound(f"no experiment {request.experiment!r}", code="experiment_not_found")
    assignment = storage.latest_assignment(entry.experiment.id, services.visitor_ids.stored(request.visitor))
    if assignment is None:
        raise NotFound("this visitor has no assignment in this experiment", code="assignment_not_found")
    return entry, assignment


def reward(request: RewardRequest, info: RequestInfo, services: Services,
           check: ExperimentCheck | None = None) -> dict[str, Any]:
    entry, assignment = _assignment_for(request, services)
    experiment = entry.experiment
    if check is not None:
        check(experiment)
    if info.now - assignment.created_at > experiment.reward_window_s:
        raise Unprocessable(
            f"the reward window of {experiment.reward_window_s} s after the assignment has closed",
            code="reward_window_closed",
        )
    binary = experiment.reward == "binary"
    if binary and request.value not in (0.0, 1.0):
        raise ValidationError("binary experiments take value 1 (a conversion) or 0", code="invalid_reward_value")
    check_value(experiment, request.value)
    base = {"experiment": experiment.key, "assignment_id": assignment.id}
    if binary and request.value == 0.0:
        return {**base, "counted": False, "reason": "zero_value"}
    model_update = entry.policy.reward_update(assignment, request.value, info.now)
    result = services.storage.record_reward(assignment, request.value, request.event_id, binary, info.now,
                                            model_update)
    return {**base, "counted": result.accepted, "reason": None if result.accepted else "duplicate",
            "reward_total": result.reward_total}
