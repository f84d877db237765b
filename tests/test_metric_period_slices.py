"""The per-hour metric slices the fold maintains (``metric_fold``: metric_slices per hour of t0
with the propensity sums) against the live reference statement (``metric_period_sql``), on both
backends: interleavings of exposures with varying propensities over several hours, events
(backfilled before t0, arriving after several folds), chunked folds, a definition change, a
new metric, erasures and retention pruning; the hour expression against ``base.period_of``; the
v9 upgrade; and the stats of a bandit experiment against the live per-hour statement."""
from __future__ import annotations

import dataclasses
import math
import time

import numpy as np
import pytest
import sqlite_utils

from app.domain.metrics import MetricDefinition, RatioPart
from app.service import metric_analysis
from app.storage import PERIOD_SECONDS, NewAssignment, NewEvent
from app.storage.base import period_of
from app.storage.metric_adaptive import _row, metric_period_sql
from app.storage.schema import MIGRATIONS, SCHEMA_VERSION
from app.storage.sqlite import SQLiteStorage

from .conftest import experiment_body
from .test_metric_fold import SUMS
from .test_metrics_adaptive_api import DEFINITIONS as API_DEFINITIONS
from .test_metrics_adaptive_api import _plant

DEFINITIONS = (
    MetricDefinition(key="conv", name="c", type="conversion", event="buy", window_s=900, cuped_window_s=300),
    MetricDefinition(key="later", name="l", type="conversion", event="visit", delay_s=300, window_s=600),
    MetricDefinition(key="clicks", name="k", type="count", event="click", window_s=900, cap=3, cuped_window_s=400),
    MetricDefinition(key="spend", name="s", type="sum", event="buy", window_s=900, cap=50.0, cuped_window_s=300),
    MetricDefinition(key="aov", name="a", type="ratio", numerator=RatioPart("buy", "sum"),
                     denominator=RatioPart("click", "count"), window_s=900, cap=60.0),
)
#: logged propensities (not binary fractions: the sums agree to rounding, not bit for bit)
PROPENSITIES = (0.1, 0.25, 0.3, 0.5, 0.8, 0.9)


def _storage(app):
    return app.extensions["lever.services"].storage


def _live(storage, experiment, definitions):
    sql, params = metric_period_sql(experiment, definitions, storage._SCALAR_MIN, storage._PERIOD_OF.format(t0="t0"))
    return [_row(row, definitions) for row in storage._read(sql, params)]


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-7)


def _check(storage, experiment, definitions) -> int:
    """metric_period_sums from the maintained slices (never the live fallback here) == the live
    statement, per (hour, variant, slice): n, Σ1/p, Σ1/p², each metric's sums and Σy/p, Σy²/p², Σy/p².
    Returns the number of hours."""
    shifts, _cells = storage.folded_cells(experiment, definitions, by_period=True)
    assert len(shifts) == len(definitions)  # every metric current: the maintained slices were read
    got = storage.metric_period_sums(experiment, definitions)
    live = _live(storage, experiment, definitions)
    assert [(r.period, r.variant_id, r.holdout, r.visitors) for r in got] == [
        (r.period, r.variant_id, r.holdout, r.visitors) for r in live]
    for mine, reference in zip(got, live):
        cell = (mine.period, mine.variant_id, mine.holdout)
        assert _close(mine.inv_propensity_sum, reference.inv_propensity_sum), cell
        assert _close(mine.inv_propensity_sumsq, reference.inv_propensity_sumsq), cell
        for definition, ours, theirs, our_ips, their_ips in zip(definitions, mine.metrics, reference.metrics,
                                                                 mine.ips, reference.ips):
            plain = ours.unshifted()
            for name in SUMS:
                assert _close(getattr(plain, name), getattr(theirs, name)), (definition.key, cell, name)
            assert (our_ips is None) == (their_ips is None) == (definition.type == "ratio")
            if our_ips is not None:
                assert all(_close(a, b) for a, b in zip(our_ips, their_ips)), (definition.key, cell, our_ips, their_ips)
    return len({r.period for r in got})


def _expose(storage, experiment, visitor: str, t0: float, rng) -> None:
    ids = [v.id for v in experiment.variants]
    p = float(PROPENSITIES[int(rng.integers(0, len(PROPENSITIES)))])
    storage.record_assignments([NewAssignment(
        experiment_id=experiment.id, variant_id=ids[int(rng.integers(0, len(ids)))], visitor=visitor, sticky=True,
        context={}, propensity=p, probabilities={ids[0]: p, ids[1]: 1 - p}, holdout=bool(rng.random() < 0.25),
        model_version=0, created_at=t0)])


def _events(rng, t0: float, count: int) -> list[NewEvent]:
    """Values in quarters; ts from before the exposure (backfilled: the pre-period) to after the windows."""
    return [NewEvent(name=["buy", "visit", "click"][int(rng.integers(0, 3))],
                     value=float(rng.integers(0, 160)) / 4, event_id=None,
                     ts=t0 + float(rng.integers(-2000, 5000)) / 4) for _ in range(count)]


@pytest.mark.parametrize("sticky", [True, False])
@pytest.mark.parametrize("lag", [0.0, None])
def test_maintained_period_sums_equal_the_live_statement(app, make_experiment, sticky, lag):
    storage = _storage(app)
    if lag is not None:  # None: the backend's own (PostgreSQL: young events stay in the read-time tail)
        storage.fold_lag_s = lag
    storage.fold_chunk = 3  # builds and advances of many chunks
    make_experiment(mode="bandit", sticky=sticky, holdout=0.25)
    experiment = storage.get_experiment("hero")
    rng = np.random.default_rng(41 if sticky else 43)
    definitions = list(DEFINITIONS)
    t0: dict[str, float] = {}
    clock = (time.time() // PERIOD_SECONDS - 6) * PERIOD_SECONDS + 900.0  # six hours ago
    hours = set()
    for step in range(170):
        action = int(rng.integers(0, 10))
        if action < 3 or not t0:
            clock += float(rng.uniform(0, 420))
            t0[f"v{step}"] = clock
            _expose(storage, experiment, f"v{step}", clock, rng)
        elif action == 3 and not sticky:  # a later assignment of an exposed visitor: not an exposure
            visitor = list(t0)[int(rng.integers(0, len(t0)))]
            _expose(storage, experiment, visitor, clock + 1.0, rng)
        else:  # events of exposed visitors (after several folds too), or of one never exposed
            visitor = list(t0)[int(rng.integers(0, len(t0)))] if action < 9 else f"never{step}"
            storage.record_events(visitor, _events(rng, t0.get(visitor, clock), int(rng.integers(1, 5))), time.time())
        if step == 70:  # a definition change rebuilds that metric
            definitions[3] = dataclasses.replace(definitions[3], window_s=500, cap=30.0)
        if step == 100:  # a metric new to the experiment is built from scratch
            definitions.append(MetricDefinition(key="visits", name="v", type="count", event="visit", window_s=700))
        if step in (80, 125):  # erasure: the visitor's rows leave their hour's slices
            assert storage.erase_visitor(_pop(t0, rng)) >= 1
        if step % 20 == 19:
            hours.add(_check(storage, experiment, definitions))
    # young exposures of this hour with events: on PostgreSQL new rows of the tail, per hour
    for i in range(4):
        now = time.time() - 5.0
        t0[f"young{i}"] = now
        _expose(storage, experiment, f"young{i}", now, rng)
        storage.record_events(f"young{i}", _events(rng, now - 1000, 3), time.time())
    assert _check(storage, experiment, definitions) >= 5
    cutoff = sorted(t0.values())[len(t0) // 3]
    assert storage.prune_events(cutoff) > 0  # retention: every metric rebuilds at its next read
    assert storage._read("SELECT COUNT(*) FROM metric_slices")[0][0] == 0
    _check(storage, experiment, definitions)
    assert storage._read("SELECT COUNT(DISTINCT period) FROM metric_slices WHERE experiment_id = ?",
                         (experiment.id,))[0][0] >= 3


def _pop(t0: dict[str, float], rng) -> str:
    visitor = list(t0)[int(rng.integers(0, len(t0)))]
    del t0[visitor]
    return visitor


def test_the_hour_of_t0_is_base_period_of(app):
    """The SQL hour (a floor on both backends) equals ``base.period_of``, below zero and at the edges too."""
    storage = _storage(app)
    for t in (-7200.5, -3600.0, -3599.75, -1.0, -0.25, 0.0, 0.5, 3599.999, 3600.0, 3600.25, 1_790_000_000.25):
        expression = storage._PERIOD_OF.format(t0="t.t0")
        found = storage._read(f"SELECT {expression} FROM (SELECT CAST(? AS DOUBLE PRECISION) AS t0) t", (t,))
        assert int(found[0][0]) == period_of(t), t


def test_v9_upgrade_forgets_the_folded_state(tmp_path):
    """A v8 database: its per-slice metric_slices is replaced by the per-hour one and the folded
    state is forgotten, so every metric rebuilds at its next fold."""
    path = tmp_path / "v8.db"
    db = sqlite_utils.Database(str(path))
    db["meta"].create({"key": str, "value": str}, pk="key")
    for version, migration in sorted(MIGRATIONS.items()):
        if version <= 8:
            migration(db)
    db["meta"].insert({"key": "schema_version", "value": "8"})
    db["metric_state"].insert({"experiment_id": 1, "metric_key": "m", "fingerprint": "{}", "events_through": 3,
                               "assignments_through": 2, "shift_y": 0.0, "shift_x": 0.0})
    db["metric_slices"].insert({"experiment_id": 1, "metric_key": "m", "variant_id": 1, "holdout": 0, "visitors": 2,
                                "s_y": 1.0, "s_yy": 1.0, "s_x": 0.0, "s_xx": 0.0, "s_xy": 0.0})
    db.close()
    storage = SQLiteStorage(f"sqlite:///{path}")
    assert storage.migrate() == SCHEMA_VERSION == 9
    assert storage._read("SELECT COUNT(*) FROM metric_state")[0][0] == 0
    assert storage._read("SELECT COUNT(*) FROM metric_slices")[0][0] == 0
    columns = [row[1] for row in storage._read("PRAGMA table_info(metric_slices)")]
    assert columns[4] == "period" and columns[-5:] == ["s_w", "s_ww", "s_yw", "s_yyww", "s_yww"]


class _LivePeriods:
    """The real storage whose per-hour sums come from the live statement (the reference the stats
    used before the maintained period slices); every other call is the storage's own."""

    def __init__(self, storage) -> None:
        self._storage = storage

    def __getattr__(self, name: str):
        return getattr(self._storage, name)

    def metric_period_sums(self, experiment, definitions):
        return _live(self._storage, experiment, definitions)


def _same(a, b, where: str = "") -> None:
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), where
        for key in a:
            _same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and isinstance(b, (int, float)):
        assert math.isclose(a, b, rel_tol=1e-7, abs_tol=1e-9), (where, a, b)
    else:
        assert a == b, (where, a, b)


def test_bandit_stats_are_those_of_the_live_period_statement(app, client, admin, make_experiment):
    for definition in API_DEFINITIONS:
        body = {k: v for k, v in definition.to_dict().items() if k not in ("created_at", "updated_at")}
        response = client.post("/api/v1/metrics", json=body, headers=admin)
        assert response.status_code == 201, response.get_json()
    body = experiment_body(mode="bandit", holdout=0.3, metrics={
        "primary": "buy", "secondary": ["spend", "aov"],
        "guardrails": [{"metric": "clicks", "max_regression": 0.5, "action": "alert"}]})
    assert client.post("/api/v1/experiments", json=body, headers=admin).status_code == 201
    storage = _storage(app)
    experiment = storage.get_experiment("hero")
    _plant(storage, experiment, (time.time() // PERIOD_SECONDS - 5) * PERIOD_SECONDS + 600.0, seed=11)
    stats = client.get("/api/v1/experiments/hero/stats", headers=admin).get_json()
    assert storage._read("SELECT COUNT(DISTINCT period) FROM metric_slices WHERE experiment_id = ?",
                         (experiment.id,))[0][0] == 4  # the stats read the maintained hours
    services = app.extensions["lever.services"]
    entry = services.cache.get(storage, "hero", fresh=True)
    report = metric_analysis.analyse(entry, _LivePeriods(storage))
    _same(stats["metrics"], [r.to_dict() for r in report.results], "metrics")
    _same(stats["personalisation_lift"], metric_analysis.lifts_json(report), "personalisation_lift")
    _same(stats["personalisation_guardrails"], metric_analysis.personalisation_json(report), "guardrails")
    assert stats["personalisation_lift"]  # the all-visitor estimates are there to compare
