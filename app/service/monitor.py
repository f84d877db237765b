"""The scheduled monitor: the conditions webhooks announce, raised once per transition.

``evaluate`` reads each running experiment's stats JSON through ``analysis.experiment_stats``
(the evaluation behind the report's badges and the guardrails), reduces it to one state per
(condition, subject) with the ``CONDITIONS`` registry, and hands the states to storage,
which keeps the last known state and raises the condition's event only when a state
changes into a bad one (a later return to good is recorded, silently). Running it every
minute or every second raises the same events: once per transition, not per check.

Conditions (subject: what one state belongs to):

* ``srm.detected``            the experiment: ``srm.ok`` is false (the split does not match the design)
* ``experiment.significant``  each non-control variant: ``uplift.decision`` is better or worse
* ``guardrail.failing``       each (metric, variant): ``metrics[].variants[].guardrail.status`` is failing
* ``personalisation.hurting`` bandit and contextual modes: ``personalisation.vs_holdout.decision`` is worse

A condition whose inputs are missing (null, thin data, no such section) reports no state,
so the stored one stands.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from ..domain.experiments import Experiment
from ..storage.webhooks import NewEvent, Observation, WebhookStore
from .analysis import experiment_stats
from .decisions import Services
from .webhooks import new_event

ADAPTIVE_MODES = ("bandit", "contextual")


@dataclass(frozen=True)
class Finding:
    """One condition's current state for one subject, and what its event would say."""

    subject: str
    state: str
    bad: bool
    summary: str
    data: Mapping[str, Any]


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def _percent(value: Any) -> str:
    number = _number(value)
    return "n/a" if number is None else f"{number * 100:+.1f}%"


def _p(value: Any) -> str:
    number = _number(value)
    return "n/a" if number is None else ("< 0.0001" if number < 1e-4 else f"{number:.4f}")


def srm_findings(stats: Mapping[str, Any]) -> list[Finding]:
    srm = stats.get("srm") or {}
    if not isinstance(srm.get("ok"), bool):
        return []
    key = stats.get("experiment")
    summary = (f"Sample-ratio mismatch on {key}: the traffic split does not match the design "
               f"(p {_p(srm.get('p_value'))}); check the integration before trusting its numbers.")
    data = {name: srm.get(name) for name in ("p_value", "threshold", "method", "observed", "expected")}
    return [Finding("", "ok" if srm["ok"] else "mismatch", not srm["ok"], summary, data)]


def significance_findings(stats: Mapping[str, Any]) -> list[Finding]:
    found = []
    for variant in stats.get("variants") or []:
        uplift = variant.get("uplift")
        if variant.get("key") == stats.get("control") or not isinstance(uplift, Mapping):
            continue
        decision = uplift.get("decision")
        if not isinstance(decision, str):
            continue
        summary = (f"{stats.get('experiment')}: variant {variant['key']} is {decision} than the control "
                   f"({_percent(uplift.get('relative'))}, anytime-valid p {_p(uplift.get('always_valid_p_value'))}).")
        data = {"variant": variant["key"], "control": stats.get("control"), "decision": decision,
                "analysis_slice": stats.get("analysis_slice"),
                **{name: uplift.get(name) for name in ("absolute", "relative", "ci_relative", "ci_always_valid",
                                                       "p_value_adjusted", "always_valid_p_value", "decision_rule")}}
        found.append(Finding(variant["key"], decision, decision in ("better", "worse"), summary, data))
    return found


def guardrail_findings(stats: Mapping[str, Any]) -> list[Finding]:
    found = []
    for metric in stats.get("metrics") or []:
        for variant in metric.get("variants") or []:
            guardrail = variant.get("guardrail")
            if not isinstance(guardrail, Mapping) or not isinstance(guardrail.get("status"), str):
                continue
            status = guardrail["status"]
            summary = (f"{stats.get('experiment')}: guardrail {metric.get('key')} is failing for variant "
                       f"{variant.get('key')} (action: {guardrail.get('action') or 'alert'}).")
            data = {"metric": metric.get("key"), "variant": variant.get("key"), "guardrail": dict(guardrail),
                    "guardrail_actions": stats.get("guardrail_actions")}
            found.append(Finding(f"{metric.get('key')}/{variant.get('key')}", status, status == "failing", summary,
                                 data))
    return found


def personalisation_findings(stats: Mapping[str, Any]) -> list[Finding]:
    if stats.get("mode") not in ADAPTIVE_MODES:
        return []
    lift = (stats.get("personalisation") or {}).get("vs_holdout")
    if not isinstance(lift, Mapping) or not isinstance(lift.get("decision"), str):
        return []
    decision = lift["decision"]
    summary = (f"{stats.get('experiment')}: personalisation is doing worse than the random holdout "
               f"({_percent(lift.get('relative'))}, anytime-valid p {_p(lift.get('always_valid_p_value'))}).")
    data = {name: lift.get(name) for name in ("decision", "absolute", "relative", "ci_relative", "ci_always_valid",
                                              "always_valid_p_value")}
    return [Finding("", decision, decision == "worse", summary, data)]


#: event type -> its states in one stats JSON
CONDITIONS: dict[str, Callable[[Mapping[str, Any]], list[Finding]]] = {
    "srm.detected": srm_findings,
    "experiment.significant": significance_findings,
    "guardrail.failing": guardrail_findings,
    "personalisation.hurting": personalisation_findings,
}


def observations(experiment: Experiment, stats: Mapping[str, Any], now: float) -> list[Observation]:
    """Every condition's states, each with the event it raises when it turns bad."""
    found = []
    for condition, find in CONDITIONS.items():
        for finding in find(stats):
            event: NewEvent | None = None
            if finding.bad:
                event = new_event(condition, experiment, finding.summary,
                                  {"subject": finding.subject, "state": finding.state, **finding.data}, now)
            found.append(Observation(condition, finding.subject, finding.state, event))
    return found


@dataclass(frozen=True)
class MonitorReport:
    experiments: int  # running experiments evaluated
    raised: tuple[NewEvent, ...]
    seconds: float


def evaluate(services: Services, now: float) -> MonitorReport:
    """One pass over every running experiment (the worker runs it every ``LEVER_MONITOR_INTERVAL_S``)."""
    started = time.monotonic()
    storage: WebhookStore = services.storage  # type: ignore[assignment]  # both SQL backends are WebhookStores
    raised: list[NewEvent] = []
    evaluated = 0
    for experiment in storage.list_experiments():
        if experiment.status != "running":
            continue
        entry = services.cache.get(storage, experiment.key, fresh=True)
        if entry is None:  # deleted meanwhile
            continue
        stats = experiment_stats(entry, storage)
        raised.extend(storage.observe(experiment.id, observations(entry.experiment, stats, now), now))
        evaluated += 1
    return MonitorReport(experiments=evaluated, raised=tuple(raised), seconds=time.monotonic() - started)
