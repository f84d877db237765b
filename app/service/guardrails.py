"""Guardrails that act: evaluation, the actions they take, and the schedule.

A guardrail fails for a variant when the always-valid one-sided test of
``stats.metric_guardrails`` shows it worse than control by more than ``max_regression``
(valid at every look, so evaluating often costs no false alarms). On failure:

* ``alert``: the action is recorded (once per experiment, metric, variant and action) and
  shown in the stats' ``guardrail_actions``;
* ``stop_variant``: also, in the same transaction, the variant joins the experiment's
  ``stopped_variants``: new visitors are allocated over the other variants with exact,
  re-normalised propensities (``modes.stopped``) and its returning visitors see the
  control (``decisions.assign``).

Personalisation (bandit and contextual with a holdout): the same test of the policy's
traffic against the holdout, on the primary metric and every guardrail, records an
``alert`` with variant ``"policy"`` when personalisation is hurting.

When: at every stats request (``analysis.experiment_stats``) and on a schedule:
``GuardrailMonitor`` is a per-process daemon thread that wakes every
``LEVER_GUARDRAIL_INTERVAL_S`` and evaluates only when it takes the database lease
``guardrails`` (``MetricStore.take_lease``), so across all workers and instances one
process evaluates per interval. The schedule first folds the metric values of every running
experiment (``metric_upkeep.fold_running``), so builds happen there, not in stats requests.

Hook: ``on_action(experiment, action)`` is called after each newly recorded action
(the audit log and webhooks subscribe there; default: nothing).
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import Any, Callable

from ..domain.audit import AuditEntry
from ..domain.experiments import Experiment
from ..storage import GuardrailAction, Storage, StorageError
from .metric_analysis import MetricsReport, analyse
from .metric_upkeep import fold_running
from .policy_cache import LearningCache, PolicyEntry

log = logging.getLogger("lever.guardrails")

LEASE = "guardrails"
#: the pseudo-variant of personalisation checks (policy traffic against the holdout)
POLICY = "policy"
ActionHook = Callable[[Experiment, GuardrailAction], None]
#: a scheduled fold that took this long (a build) is logged
SLOW_FOLD_S = 1.0


def _evidence(result: Any, variant: Any) -> dict[str, Any]:
    evidence = {"guardrail": result.to_dict()}
    if variant is not None:
        evidence.update(visitors=variant.visitors, value=variant.value,
                        uplift=None if variant.uplift is None else {
                            "absolute": variant.uplift.absolute, "relative": variant.uplift.relative,
                            "always_valid_p_value": variant.uplift.always_valid_p_value})
    return evidence


def enforce(entry: PolicyEntry, report: MetricsReport, storage: Storage, cache: LearningCache, now: float,
            on_action: ActionHook | None = None) -> list[GuardrailAction]:
    """Record the actions of every failing guardrail not acted on before; returns the new ones."""
    experiment = entry.experiment
    taken: list[GuardrailAction] = []

    def act(metric: str, variant: str, action: str, evidence: dict[str, Any]) -> None:
        entry = AuditEntry(actor="guardrail", action="guardrail.action", experiment_key=experiment.key,
                           target=f"{metric}/{variant}", after={"action": action, "evidence": evidence}, at=now)
        if storage.record_guardrail_action(experiment.id, metric, variant, action, now,  # type: ignore[attr-defined]
                                           evidence, audit=entry):
            done = GuardrailAction(experiment.id, metric, variant, action, now, evidence)
            taken.append(done)
            log.warning("guardrail %s on %s/%s: %s", metric, experiment.key, variant, action)
            if on_action is not None:
                on_action(experiment, done)

    for result in report.results:
        if result.role != "guardrail":
            continue
        for variant in result.variants:
            guard = variant.guardrail
            if guard is not None and guard.status == "failing" and variant.key not in experiment.stopped_variants:
                act(result.key, variant.key, guard.action, _evidence(guard, variant))
    for spec, guard in report.personalisation:
        if guard.status == "failing":
            act(spec.key, POLICY, "alert", _evidence(guard, None))
    if any(a.action == "stop_variant" for a in taken):
        cache.invalidate(experiment.key)  # this worker stops serving it at once, the others within a refresh
    return taken


def actions_json(storage: Storage, experiment: Experiment) -> list[dict[str, Any]]:
    """The stats' ``guardrail_actions``: {metric, variant, action, at, evidence}, oldest first."""
    return [{"metric": a.metric, "variant": a.variant, "action": a.action, "at": a.at, "evidence": a.evidence}
            for a in storage.guardrail_actions(experiment.id)]  # type: ignore[attr-defined]


def _watched(experiment: Experiment) -> bool:
    """Running, and with something to watch (guardrails, or personalisation against a holdout)."""
    if experiment.status != "running":
        return False
    has_guardrails = experiment.metrics is not None and bool(experiment.metrics.guardrails)
    return has_guardrails or (experiment.mode in ("bandit", "contextual") and experiment.holdout > 0)


def evaluate_all(storage: Storage, cache: LearningCache, now: float,
                 on_action: ActionHook | None = None) -> list[GuardrailAction]:
    """One evaluation of every watched experiment (what the schedule runs)."""
    taken: list[GuardrailAction] = []
    for experiment in storage.list_experiments():
        if not _watched(experiment):
            continue
        entry = cache.get(storage, experiment.key, fresh=True)
        if entry is not None:
            taken += enforce(entry, analyse(entry, storage), storage, cache, now, on_action)
    return taken


def run_due(storage: Storage, cache: LearningCache, now: float, interval_s: float, holder: str,
            on_action: ActionHook | None = None) -> list[GuardrailAction] | None:
    """When this holder takes the lease for the next interval: fold the metric values of every
    running experiment (``metric_upkeep``: builds happen here, not in a stats request), then
    ``evaluate_all``; else None."""
    if not storage.take_lease(LEASE, holder, now, interval_s):  # type: ignore[attr-defined]
        return None
    for report in fold_running(storage):
        if report.seconds >= SLOW_FOLD_S:
            log.info("metric values of %s", report.summary())
    return evaluate_all(storage, cache, now, on_action)


class GuardrailMonitor:
    """The schedule: one daemon thread per process (started lazily, again after a fork)."""

    def __init__(self, storage: Storage, cache: LearningCache, interval_s: float,
                 on_action: ActionHook | None = None) -> None:
        self.storage, self.cache, self.interval_s, self.on_action = storage, cache, interval_s, on_action
        self._pid = 0
        self._lock = threading.Lock()
        self._stopped = threading.Event()

    def ensure_started(self) -> None:
        if self._pid == os.getpid() or self.interval_s <= 0:
            return
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            threading.Thread(target=self._run, name="lever-guardrails", daemon=True).start()

    def _run(self) -> None:
        holder = f"{socket.gethostname()}:{os.getpid()}"
        while not self._stopped.wait(self.interval_s):
            try:
                run_due(self.storage, self.cache, time.time(), self.interval_s, holder, self.on_action)
            except StorageError:
                log.warning("guardrail evaluation skipped: the database is busy", exc_info=True)

    def stop(self) -> None:
        self._stopped.set()
