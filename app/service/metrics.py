"""Operator actions on the metric catalogue, and the check of an experiment's ``metrics``
against it (shared by the API, the report's forms and the CLI).

An experiment that uses metrics learns (bandit, contextual) from its primary metric:
conversion → binary reward, count and sum → numeric, so its ``reward`` type is derived
from the primary metric. A ratio cannot be a bandit's reward (a visitor's ratio has no
per-decision value), and a key missing from the catalogue is refused, each a 400
naming the field.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

from ..domain.audit import SYSTEM_ACTOR, AuditEntry
from ..domain.errors import Conflict, NotFound, ValidationError
from ..domain.experiments import Experiment, ExperimentSpec
from ..domain.metrics import (
    ExperimentMetrics,
    MetricDefinition,
    parse_experiment_metrics,
    patch_metric,
)
from ..storage import DuplicateKey, Storage
from .policy_cache import LearningCache

#: the bandit reward type each metric type feeds (ratio: none)
REWARD_BY_TYPE = {"conversion": "binary", "count": "numeric", "sum": "numeric"}
#: modes that learn from the primary metric
LEARNING_MODES = ("bandit", "contextual")


def create_metric(storage: Storage, definition: MetricDefinition, now: float,
                  actor: str = SYSTEM_ACTOR) -> MetricDefinition:
    entry = AuditEntry(actor=actor, action="metric.created", target=definition.key,
                       after=_definition_summary(definition), at=now)
    try:
        return storage.create_metric(definition, now, audit=entry)  # type: ignore[attr-defined]
    except DuplicateKey:
        raise Conflict(f"metric {definition.key!r} exists already", code="duplicate_key") from None


def metric_or_404(storage: Storage, key: str) -> MetricDefinition:
    definition = storage.get_metric(key)  # type: ignore[attr-defined]
    if definition is None:
        raise NotFound(f"no metric {key!r}", code="metric_not_found")
    return definition


def _definition_summary(definition: MetricDefinition) -> dict[str, Any]:
    summary = definition.to_dict()
    summary.pop("created_at", None)
    summary.pop("updated_at", None)
    return summary


def update_metric(storage: Storage, key: str, body: Any, now: float, actor: str = SYSTEM_ACTOR) -> MetricDefinition:
    """PATCH: name, window, delay, cap, direction, CUPED window (what it measures stays)."""
    current = metric_or_404(storage, key)
    changed = patch_metric(current, body)
    entry = AuditEntry(actor=actor, action="metric.edited", target=key, before=_definition_summary(current),
                       after=_definition_summary(changed), at=now)
    updated = storage.update_metric(changed, now, audit=entry)  # type: ignore[attr-defined]
    if updated is None:
        raise NotFound(f"no metric {key!r}", code="metric_not_found")
    return updated


def _field_of(metrics: ExperimentMetrics, key: str) -> str:
    if key == metrics.primary:
        return "metrics.primary"
    if key in metrics.secondary:
        return f"metrics.secondary[{metrics.secondary.index(key)}]"
    index = next(i for i, g in enumerate(metrics.guardrails) if g.metric == key)
    return f"metrics.guardrails[{index}].metric"


def check_metrics(storage: Storage, mode: str, metrics: ExperimentMetrics) -> dict[str, MetricDefinition]:
    """The catalogue entries of ``metrics``; 400 naming the field for an unknown key or a ratio primary
    of a learning mode."""
    found = {d.key: d for d in storage.list_metrics(list(metrics.keys))}  # type: ignore[attr-defined]
    for key in metrics.keys:
        if key not in found:
            raise ValidationError(f"{_field_of(metrics, key)}: no metric {key!r} in the catalogue "
                                  "(POST /api/v1/metrics first)", code="unknown_metric")
    if mode in LEARNING_MODES and found[metrics.primary].type not in REWARD_BY_TYPE:
        raise ValidationError(f"metrics.primary: a {mode} experiment learns from its primary metric, which cannot be "
                              f"a ratio ({metrics.primary!r}); use a conversion, count or sum metric",
                              code="invalid_metric")
    return found


def resolve_spec(storage: Storage, spec: ExperimentSpec) -> ExperimentSpec:
    """The spec as created: metrics checked against the catalogue, the reward type from the primary."""
    if spec.metrics is None:
        return spec
    found = check_metrics(storage, spec.mode, spec.metrics)
    primary_type = found[spec.metrics.primary].type
    return replace(spec, reward=REWARD_BY_TYPE.get(primary_type, spec.reward))


def update_experiment_metrics(storage: Storage, cache: LearningCache, experiment: Experiment, raw: Any,
                              now: float, actor: str = SYSTEM_ACTOR) -> Experiment:
    """PATCH metrics of an experiment: secondary metrics and guardrails may change while it runs;
    the primary metric (what a bandit learns from) may not."""
    metrics = parse_experiment_metrics(raw)
    current = experiment.metrics
    if current is None or metrics.primary != current.primary:
        raise ValidationError("metrics.primary cannot change once an experiment exists (it decides what it "
                              "learns from and what its reward counters mean); create a new experiment",
                              code="invalid_metric")
    check_metrics(storage, experiment.mode, metrics)
    entry = AuditEntry(actor=actor, action="experiment.edited", experiment_key=experiment.key,
                       before={"metrics": current.to_dict()}, after={"metrics": metrics.to_dict()}, at=now)
    storage.set_experiment_metrics(experiment.id, metrics, now, audit=entry)  # type: ignore[attr-defined]
    cache.invalidate(experiment.key)
    updated = storage.get_experiment(experiment.key)
    if updated is None:
        raise NotFound(f"no experiment {experiment.key!r}", code="experiment_not_found")
    return updated
