"""Upkeep of the materialised metric values outside user requests (issue #15).

A stats request folds what arrived since the last fold (``MetricStore.fold_metrics``): a few
milliseconds when the values are current, but a whole *build* — every exposure joined with
its events, a minute at a million exposures on SQLite — when nothing is materialised yet (an
upgrade, a metric added to an experiment, a changed definition). So the build happens here:

* the guardrail schedule (``guardrails.run_due``, one process per ``LEVER_GUARDRAIL_INTERVAL_S``
  by the database lease) folds every running experiment with metrics before it evaluates the
  guardrails, so the next stats request finds them current;
* ``flask fold-metrics [KEY]`` builds and folds on demand (after an upgrade: every experiment
  with metrics, whatever its status), ``flask rebuild-stats KEY`` rebuilds from scratch.

Folds are serialised per experiment and chunked (``metric_fold``): a request that arrives
during a build waits for no giant transaction, and nothing is counted twice whoever folds.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterable

from ..domain.experiments import Experiment
from ..storage import Storage


@dataclass(frozen=True)
class FoldReport:
    """One experiment's fold: how many metrics, whether this process did it, how long it took."""

    experiment: str
    metrics: int
    folded: bool  # False: another worker held the experiment's fold (PostgreSQL), nothing done here
    seconds: float

    def summary(self) -> str:
        if not self.folded:
            return f"{self.experiment}: another worker is folding its metrics"
        return f"{self.experiment}: {self.metrics} metrics current in {self.seconds:.1f} s"


def fold_experiment(storage: Storage, experiment: Experiment, rebuild: bool = False) -> FoldReport | None:
    """Bring the experiment's metric values up to date (``rebuild``: from scratch); None
    without catalogue metrics."""
    if experiment.metrics is None or not experiment.metrics.keys:
        return None
    # catalogue entries are never deleted; the order is the stats' (metric_analysis)
    catalogue = {d.key: d for d in storage.list_metrics(list(experiment.metrics.keys))}  # type: ignore[attr-defined]
    definitions = [catalogue[key] for key in experiment.metrics.keys]
    started = time.monotonic()
    folded = storage.fold_metrics(experiment, definitions, rebuild=rebuild)  # type: ignore[attr-defined]
    return FoldReport(experiment.key, len(definitions), folded, time.monotonic() - started)


def fold_all(storage: Storage, experiments: Iterable[Experiment], rebuild: bool = False) -> list[FoldReport]:
    """``fold_experiment`` of each experiment with metrics, in order."""
    found = (fold_experiment(storage, experiment, rebuild) for experiment in experiments)
    return [report for report in found if report is not None]


def fold_running(storage: Storage) -> list[FoldReport]:
    """What the schedule runs: every running experiment with metrics."""
    return fold_all(storage, (e for e in storage.list_experiments() if e.status == "running"))
