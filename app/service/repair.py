"""Operator repair of values older versions let in: ``flask repair-values KEY``.

Finds the experiment's rewards beyond a |value| bound (non-finite ones included) and the
assignment totals no bounded rewards can reach, clamps or excludes them in the log
(``app.storage.repair``), rebuilds every counter (and contextual arm state) from the
repaired log. The repair writes its audit entry (``experiment.values_repaired``, with what
was found and done) in the same transaction as the repaired rows, and one line to the
``lever.audit`` logger; the rebuild follows in its own transaction. A dry run only counts
and audits nothing. Refused (nothing written) once retention has pruned the log: the counters could
then no longer be rebuilt from it.
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

from ..domain.audit import AuditEntry
from ..domain.bounds import MAX_ABS_VALUE_CEILING, valid_bound
from ..domain.errors import Conflict, ValidationError
from ..domain.experiments import Experiment
from ..storage.repair import ACTIONS, BadValues, RepairStore
from .modes import MODES

audit = logging.getLogger("lever.audit")


@dataclass(frozen=True)
class RepairReport:
    experiment: str
    action: str
    max_abs_value: float
    dry_run: bool
    found: BadValues

    def audit_line(self) -> str:
        """One line of key=value pairs (what the audit log records)."""
        found = self.found
        return (f"repair-values experiment={self.experiment} action={self.action} max_abs={self.max_abs_value:g} "
                f"dry_run={str(self.dry_run).lower()} rewards={found.rewards} non_finite={found.non_finite} "
                f"clamped={found.clamped} excluded={found.excluded} assignments={found.assignments} "
                f"counter_rows={found.counter_rows} rebuilt={str(not self.dry_run).lower()}")

    def summary(self) -> str:
        """What the command prints."""
        found = self.found
        done = "dry run, nothing changed" if self.dry_run else "counters rebuilt"
        return (f"{self.experiment}: {found.rewards} rewards beyond ±{self.max_abs_value:g} "
                f"({found.non_finite} non-finite; clamped {found.clamped}, excluded {found.excluded}), "
                f"{found.assignments} assignment(s) recomputed, {found.counter_rows} counter row(s) non-finite; "
                f"{done}")


def repair_values(storage: RepairStore, experiment: Experiment, max_abs_value: float, action: str = "clamp",
                  dry_run: bool = False, actor: str = "cli") -> RepairReport:
    if action not in ACTIONS:
        raise ValidationError(f"action must be one of {', '.join(ACTIONS)}")
    if not valid_bound(max_abs_value):
        raise ValidationError(f"the bound must be a number above 0 and at most {MAX_ABS_VALUE_CEILING:g}")
    if not dry_run and storage.get_meta("pruned_before") is not None:
        raise Conflict("raw events were pruned (LEVER_RETENTION_DAYS): the counters cannot be rebuilt from the log, "
                       "so nothing was repaired", code="pruned_log")
    def entry(found: BadValues) -> AuditEntry:
        return AuditEntry(actor=actor, action="experiment.values_repaired", experiment_key=experiment.key,
                          target=action, after={"max_abs_value": max_abs_value, **dataclasses.asdict(found)})

    found = storage.repair_values(experiment.id, max_abs_value, action, dry_run, audit=entry)
    if not dry_run:
        storage.rebuild_arm_stats(experiment, MODES[experiment.mode].rebuilder(experiment))
    report = RepairReport(experiment=experiment.key, action=action, max_abs_value=max_abs_value, dry_run=dry_run,
                          found=found)
    audit.info(report.audit_line())
    return report
