"""What both backends share: the rows they read turned into records, the values they write,
and the counter increments of every event.

Pure functions and constants only: no connections, no SQL dialect, no transactions. A
backend selects the columns named here (in this order) with its own placeholders and
locking, and hands the rows to these functions; where it writes counters it asks here
how much each one moves, then writes them its own way (SQLite one upsert per event,
PostgreSQL summed per row in one transaction, sharded and in key order).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from ..domain.errors import Conflict
from ..domain.experiments import Experiment, ExperimentSpec, Variant
from ..domain.metrics import experiment_metrics_from_dict
from .base import (
    COUNTER_COLUMNS,
    ArmTotals,
    ModelRemoval,
    ModelUpdate,
    NewAssignment,
    SegmentTotals,
    StoredAssignment,
    TimeBucket,
    period_of,
)

# -- experiments ---------------------------------------------------------------------
#: columns of ``experiments`` read by ``experiments``, in its row order
EXPERIMENT_COLUMNS = (
    "id, key, name, mode, reward, control, holdout, min_share, reward_window_s, sticky, context, "
    "options, status, winner, created_at, updated_at, stopped_variants"
)
#: columns of ``variants`` read by ``experiments``, in its row order
VARIANT_COLUMNS = "experiment_id, id, key, payload, weight"
#: columns written by ``experiment_values`` (status 'running', no winner: the SQL states them)
EXPERIMENT_INSERT_COLUMNS = (
    "key, name, mode, reward, control, holdout, min_share, reward_window_s, sticky, context, options, "
    "status, winner, created_at, updated_at"
)


def experiment_values(spec: ExperimentSpec, now: float) -> tuple[Any, ...]:
    """Parameters of the experiment insert, in ``EXPERIMENT_INSERT_COLUMNS`` order without status and winner."""
    return (spec.key, spec.name, spec.mode, spec.reward, spec.control, spec.holdout, spec.min_share,
            spec.reward_window_s, int(spec.sticky), json.dumps(list(spec.context)),
            json.dumps(experiment_options(spec)), now, now)


def experiment_options(spec: ExperimentSpec) -> dict[str, Any]:
    """The ``options`` JSON of an experiment: what has no column of its own."""
    return {"decay_half_life_s": spec.decay_half_life_s, "allowed_origins": list(spec.allowed_origins),
            "planned_visitors": spec.planned_visitors, "crosses": [list(pair) for pair in spec.crosses],
            "reward_delay_s": spec.reward_delay_s, "max_abs_value": spec.max_abs_value,
            "metrics": spec.metrics.to_dict() if spec.metrics is not None else None}


def variant_values(experiment_id: int, spec: ExperimentSpec) -> list[tuple[Any, ...]]:
    """(experiment_id, key, position, payload, weight) of every variant, in position order."""
    return [(experiment_id, variant.key, position, json.dumps(dict(variant.payload)),
             spec.weights[position] if spec.weights else None)
            for position, variant in enumerate(spec.variants)]


def experiments(rows: Sequence[Sequence[Any]], variant_rows: Sequence[Sequence[Any]]) -> list[Experiment]:
    """Experiments from their ``EXPERIMENT_COLUMNS`` rows and the ``VARIANT_COLUMNS`` rows of
    their variants (ordered by experiment, then position)."""
    by_experiment: dict[int, list[Sequence[Any]]] = {}
    for row in variant_rows:
        by_experiment.setdefault(row[0], []).append(row)
    found = []
    for row in rows:
        variants = by_experiment.get(row[0], [])
        options = json.loads(row[11])
        weights = tuple(v[4] for v in variants) if row[3] == "ab" else None
        found.append(Experiment(
            id=row[0], key=row[1], name=row[2], mode=row[3], reward=row[4], control=row[5], holdout=row[6],
            min_share=row[7], reward_window_s=row[8], sticky=bool(row[9]),
            context=tuple(json.loads(row[10])), status=row[12], winner=row[13], created_at=row[14],
            updated_at=row[15], weights=weights, decay_half_life_s=options.get("decay_half_life_s"),
            allowed_origins=tuple(options.get("allowed_origins", ())),
            planned_visitors=options.get("planned_visitors"),
            crosses=tuple(tuple(pair) for pair in options.get("crosses", ())),
            reward_delay_s=options.get("reward_delay_s"),
            metrics=experiment_metrics_from_dict(options.get("metrics")),
            stopped_variants=tuple(json.loads(row[16])) if row[16] else (),
            max_abs_value=options.get("max_abs_value"),
            variants=tuple(Variant(key=v[2], payload=json.loads(v[3]), id=v[1]) for v in variants),
        ))
    return found


# -- assignments ---------------------------------------------------------------------
#: columns of ``assignments`` read by ``assignment``, in its row order
ASSIGNMENT_COLUMNS = (
    "id, experiment_id, variant_id, visitor, context, propensity, holdout, model_version, created_at, "
    "reward_total, reward_count"
)
#: columns written by ``assignment_values``, in its order
ASSIGNMENT_INSERT_COLUMNS = (
    "experiment_id, variant_id, visitor, sticky_key, context, probabilities, propensity, holdout, "
    "model_version, created_at, segments"
)


def assignment(row: Sequence[Any], existing: bool = False) -> StoredAssignment:
    return StoredAssignment(
        id=row[0], experiment_id=row[1], variant_id=row[2], visitor=row[3], context=json.loads(row[4]),
        propensity=row[5], holdout=bool(row[6]), model_version=row[7], created_at=row[8],
        reward_total=row[9], reward_count=row[10], existing=existing,
    )


# json.dumps with options builds an encoder per call; these are built once (same output)
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"))
_COMPACT_SORTED_JSON = json.JSONEncoder(separators=(",", ":"), sort_keys=True)


def assignment_values(item: NewAssignment) -> tuple[Any, ...]:
    """Parameters of the assignment insert, in ``ASSIGNMENT_INSERT_COLUMNS`` order (JSON as compact text)."""
    if not (item.propensity > 0.0 and math.isfinite(item.propensity)):  # the counters divide by it
        raise NonFiniteCounters(f"the policy gave propensity {item.propensity!r}")
    finite_or_refuse(item.probabilities.values(), "allocation probabilities")
    context_json = _COMPACT_SORTED_JSON.encode(dict(item.context))
    probabilities_json = _COMPACT_JSON.encode(dict(item.probabilities))  # int keys are written as strings
    segments_json = _COMPACT_JSON.encode(dict(item.segments)) if item.segments else None
    return (item.experiment_id, item.variant_id, item.visitor, item.visitor if item.sticky else None,
            context_json, probabilities_json, item.propensity, int(item.holdout), item.model_version,
            item.created_at, segments_json)


def new_assignment(item: NewAssignment, assignment_id: int) -> StoredAssignment:
    """The stored record of an assignment just inserted with ``assignment_values``."""
    return StoredAssignment(
        id=assignment_id, experiment_id=item.experiment_id, variant_id=item.variant_id,
        visitor=item.visitor, context=item.context, propensity=item.propensity, holdout=item.holdout,
        model_version=item.model_version, created_at=item.created_at,
    )


def parse_probabilities(probabilities_json: str) -> dict[int, float]:
    """The stored allocation probabilities of a decision, keyed by variant id."""
    return {int(k): p for k, p in json.loads(probabilities_json).items()}


# -- counter increments ----------------------------------------------------------------
#: counters that are whole numbers (the others are float sums)
INTEGER_COUNTERS = ("assignments", "conversions", "reward_events")


class NonFiniteCounters(Conflict):
    """A write would put a NaN or an infinity into the counters (a 409: nothing is written).

    New values are bounded at the edge (LEVER_MAX_ABS_VALUE), so only values that older
    versions let into the log get here: ``flask repair-values`` clamps or excludes them."""

    code = "non_finite_counters"

    def __init__(self, what: str) -> None:
        super().__init__(f"{what}: the counters of this experiment would not stay finite, so nothing was "
                         "written. Values recorded by an older version are the likely cause; an operator can "
                         "run `flask repair-values <experiment>` to clamp or exclude them.")


def finite_or_refuse(values: Iterable[float], what: str) -> None:
    """Every derived counter value is checked before any of them is written."""
    if not all(math.isfinite(v) for v in values):
        raise NonFiniteCounters(what)


def _outcome(total: float, count: int, shift: float) -> float:
    """z = y - K of an assignment's counters: 0 (not counted at all) until its first reward."""
    return total - shift if count > 0 else 0.0


def decision_increments(variant_id: int, probabilities: Mapping[int, float], propensity: float, total: float,
                        count: int, sign: int, shift: float = 0.0) -> list[tuple[int, tuple[float, ...]]]:
    """(arm id, ``COUNTER_COLUMNS`` values) that add (sign=1) or remove (sign=-1) one
    assignment with outcome ``total`` from ``count`` rewards: every arm's expected count,
    and the served arm's decision, outcome and inverse-propensity sums (the outcome ones,
    of z = total - ``shift``, only when rewarded: ``base.ArmTotals``). ``NonFiniteCounters``
    if any of them is not finite."""
    if not propensity > 0.0:
        raise NonFiniteCounters(f"propensity {propensity!r}")
    weight = 1.0 / propensity
    rewarded = count > 0
    z = _outcome(total, count, shift)
    increments = []
    for arm_id, probability in probabilities.items():
        served = arm_id == variant_id
        values = (
            (1, int(rewarded), count, z, z * z, probability, weight, weight * weight,
             z * weight, z * z * weight * weight, z * weight * weight,
             weight if rewarded else 0.0, weight * weight if rewarded else 0.0)
            if served else (0, 0, 0, 0.0, 0.0, probability, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
        )
        increments.append((arm_id, tuple(sign * v for v in values)))
        finite_or_refuse(increments[-1][1], "the counters of this assignment")
    return increments


#: segment_stats values of a new decision (no outcome yet)
NEW_DECISION_SEGMENT_VALUES = (1, 0, 0.0, 0.0)


def reward_increments(total: float, count: int, value: float, propensity: float,
                      shift: float = 0.0) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(arm_stats values in ``COUNTER_COLUMNS`` order, segment_stats values) of one reward
    ``value`` on an assignment that had outcome ``total`` from ``count`` rewards.

    y goes from ``total`` to ``total + value`` (numeric rewards of one assignment add up), so
    its shifted outcome z = y - K goes from z_old (0 while unrewarded: the assignment was
    not in the rewarded sums) to z_new: Σz moves by z_new - z_old, Σz² by z_new² - z_old²
    (both small numbers when K is near the values), and a first reward brings the
    assignment's 1/p and 1/p² into the rewarded sums. ``NonFiniteCounters`` if y or any of
    them would not be finite.
    """
    if not propensity > 0.0:
        raise NonFiniteCounters(f"propensity {propensity!r}")
    new_total = total + value
    weight = 1.0 / propensity
    first = count == 0
    z_old, z_new = _outcome(total, count, shift), new_total - shift
    # K = 0: exactly the pre-v8 increments; else the change of z as stored (total + value is
    # rounded to y's precision, so a rebuild from the stored totals finds the same sums)
    change = value if shift == 0.0 else z_new - z_old
    square_change = z_new * z_new - z_old * z_old
    arm = (0, int(first), 1, change, square_change, 0.0,
           0.0, 0.0, change * weight, square_change * weight * weight, change * weight * weight,
           weight if first else 0.0, weight * weight if first else 0.0)
    finite_or_refuse((new_total, *arm), "this reward")
    return arm, (0, int(first), change, square_change)


def erased_segment_values(total: float, count: int, shift: float = 0.0) -> tuple[int, int, float, float]:
    """segment_stats values that take out one assignment with outcome ``total`` from ``count`` rewards."""
    z = _outcome(total, count, shift)
    return (-1, -int(count > 0), -z, -z * z)


#: columns of ``assignments`` read by ``erasures``, in its row order
ERASE_COLUMNS = (
    "id, experiment_id, variant_id, holdout, created_at, propensity, probabilities, "
    "reward_total, reward_count, segments, context, "
    "(SELECT COALESCE(e.reward_shift, 0) FROM experiments e WHERE e.id = assignments.experiment_id)"
)


@dataclass(frozen=True)
class Erasure:
    """What erasing one assignment takes out of the counters (and, on request, its arm state)."""

    assignment_id: int
    experiment_id: int
    variant_id: int
    holdout: int  # as stored: 0 or 1
    period: int
    #: arm_stats rows to add, as ``decision_increments`` (sign=-1) of the final outcome
    arms: list[tuple[int, tuple[float, ...]]]
    #: segment levels of the assignment (empty when it had none) and what each loses
    segments: Mapping[str, str]
    segment_values: tuple[int, int, float, float]
    context_json: str
    created_at: float
    total: float

    def model_update(self, model_removal: ModelRemoval | None) -> ModelUpdate | None:
        """The update that takes this assignment out of its contextual arm state (None: nothing to change)."""
        if model_removal is None:
            return None
        return model_removal(self.experiment_id, json.loads(self.context_json), self.created_at, self.total)


def erasures(rows: Sequence[Sequence[Any]]) -> Iterator[Erasure]:
    """From ``ERASE_COLUMNS`` rows, in their order."""
    for row in rows:
        (assignment_id, experiment_id, variant_id, holdout, created_at, propensity, probabilities_json,
         total, count, segments_json, context_json) = row[:11]
        shift = row[11] if len(row) > 11 else 0.0  # the reward shift column (rows without it: K = 0)
        yield Erasure(
            assignment_id=assignment_id, experiment_id=experiment_id, variant_id=variant_id, holdout=holdout,
            period=period_of(created_at),
            arms=decision_increments(variant_id, parse_probabilities(probabilities_json), propensity, total, count,
                                     sign=-1, shift=float(shift)),
            segments=json.loads(segments_json) if segments_json else {},
            segment_values=erased_segment_values(total, count, float(shift)),
            context_json=context_json, created_at=created_at, total=total,
        )


# -- learning and analysis reads --------------------------------------------------------
#: the select list of ``arm_totals`` rows after variant_id and holdout
COUNTER_SUMS = ", ".join(f"SUM({c})" for c in COUNTER_COLUMNS)


#: the last column of every counter read: the experiment's reward shift K, read in the same
#: statement as the sums so that they always agree (NULL: no numeric reward counted yet, or
#: counted before v8 as raw sums: 0). Its parameter is the experiment id, before the WHERE's.
REWARD_SHIFT_COLUMN = "(SELECT COALESCE(e.reward_shift, 0) FROM experiments e WHERE e.id = ?)"


def arm_totals(rows: Sequence[Sequence[Any]]) -> tuple[ArmTotals, ...]:
    """From (variant_id, holdout, ``COUNTER_SUMS``..., ``REWARD_SHIFT_COLUMN``) rows."""
    return tuple(
        ArmTotals(row[0], bool(row[1]), *(int(v) if c in INTEGER_COUNTERS else float(v)
                                          for c, v in zip(COUNTER_COLUMNS, row[2:-1])), reward_shift=float(row[-1]))
        for row in rows
    )


def segment_totals(rows: Sequence[Sequence[Any]]) -> list[SegmentTotals]:
    """From (feature, level, variant_id, holdout, assignments, conversions, reward_sum, reward_sumsq,
    ``REWARD_SHIFT_COLUMN``) rows."""
    return [SegmentTotals(f, l, v, bool(h), int(n), int(c), float(t), float(q), float(k))
            for f, l, v, h, n, c, t, q, k in rows]


def time_buckets(rows: Sequence[Sequence[Any]]) -> list[TimeBucket]:
    """From (period, variant_id, holdout, assignments, conversions, reward_sum, ``REWARD_SHIFT_COLUMN``)
    rows; the raw Σy = Σ_r (y - K) + n_r K (the chart's totals need no more precision than that)."""
    return [TimeBucket(float(p), v, bool(h), int(n), int(c), float(t) + int(c) * float(k) if k else float(t))
            for p, v, h, n, c, t, k in rows]


#: columns of ``assignments a JOIN variants v`` read by ``event``, in its row order
EVENT_COLUMNS = (
    "a.id, a.visitor, v.key, a.context, a.propensity, a.holdout, a.model_version, a.created_at, "
    "a.reward_total, a.reward_count, a.variant_id, a.probabilities"
)


def events(fetch_batch: Callable[[int], Sequence[Sequence[Any]]]) -> Iterator[dict[str, Any]]:
    """``iter_events``: the ``event`` of every row of ``fetch_batch(after_id)`` (``EVENT_COLUMNS``
    rows in id order, at most one batch) until a batch comes back empty."""
    last_id = 0
    while rows := fetch_batch(last_id):
        yield from (event(row) for row in rows)
        last_id = rows[-1][0]


def event(row: Sequence[Any]) -> dict[str, Any]:
    """One ``iter_events`` item (context and probabilities as the stored JSON text)."""
    return {
        "id": row[0], "visitor": row[1], "variant": row[2], "context": row[3], "propensity": row[4],
        "holdout": bool(row[5]), "model_version": row[6], "created_at": row[7],
        "reward_total": row[8], "reward_count": row[9], "variant_id": row[10],
        "probabilities": row[11],
    }


# -- privacy ---------------------------------------------------------------------------
#: columns of ``assignments a JOIN experiments e JOIN variants v`` read by ``visitor_events``
VISITOR_COLUMNS = ("a.id, e.key, v.key, a.context, a.propensity, a.holdout, a.model_version, a.created_at, "
                   "a.reward_total, a.reward_count")
#: columns of ``rewards r`` read by ``visitor_events``
VISITOR_REWARD_COLUMNS = "r.assignment_id, r.value, r.event_id, r.created_at"


def visitor_events(rows: Sequence[Sequence[Any]], rewards: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
    """The data export: ``VISITOR_COLUMNS`` rows, each with its ``VISITOR_REWARD_COLUMNS`` rewards."""
    by_assignment: dict[int, list[dict[str, Any]]] = {}
    for assignment_id, value, event_id, created_at in rewards:
        by_assignment.setdefault(assignment_id, []).append(
            {"value": value, "event_id": event_id, "created_at": created_at})
    return [
        {"id": r[0], "experiment": r[1], "variant": r[2], "context": json.loads(r[3]), "propensity": r[4],
         "holdout": bool(r[5]), "model_version": r[6], "created_at": r[7], "reward_total": r[8],
         "reward_count": r[9], "rewards": by_assignment.get(r[0], [])}
        for r in rows
    ]
