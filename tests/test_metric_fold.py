"""The materialised metric values (``app.storage.metric_fold``) against the live reference
statement (``per_visitor_sql``), on both backends: random interleavings of assignments,
events (backfilled before the exposure too), definition changes and erasures; concurrent
folders; a lower id committing late on PostgreSQL; and the shifted sums of issue #16."""
from __future__ import annotations

import dataclasses
import threading
import time

import numpy as np
import pytest

from app.domain.metrics import MetricDefinition, RatioPart
from app.storage import NewEvent
from app.storage.metrics import materialised_sql, per_visitor_sql
from stats.metric_estimates import mean_arm
from stats.metric_inputs import MetricSlice

from .dbutil import is_postgres

DEFINITIONS = (
    MetricDefinition(key="conv", name="c", type="conversion", event="buy", window_s=100, cuped_window_s=50),
    MetricDefinition(key="later", name="l", type="conversion", event="visit", delay_s=20, window_s=30),
    MetricDefinition(key="clicks", name="k", type="count", event="click", window_s=100, cap=3, cuped_window_s=60),
    MetricDefinition(key="spend", name="s", type="sum", event="buy", window_s=100, cap=50.0, cuped_window_s=50),
    MetricDefinition(key="aov", name="a", type="ratio", numerator=RatioPart("buy", "sum"),
                     denominator=RatioPart("click", "count"), window_s=100, cap=60.0),
)
SUMS = ("value_sum", "value_sumsq", "pre_sum", "pre_sumsq", "pre_cross_sum", "numerator_sum", "numerator_sumsq",
        "denominator_sum", "denominator_sumsq", "cross_sum")


def _storage(app):
    return app.extensions["lever.services"].storage


def _check(storage, experiment, definitions, exact: bool) -> None:
    """metric_sums (materialised + tail) == the live statement's sums; with ``exact`` (nothing
    left in the tail) the materialised per-visitor relation equals the live one row for row."""
    got = storage.metric_sums(experiment, definitions)
    live = storage.live_metric_sums(experiment, definitions)
    for definition in definitions:
        mine = {(s.variant_id, s.holdout): s.unshifted() for s in got[definition.key]}
        reference = {(s.variant_id, s.holdout): s for s in live[definition.key]}
        assert set(mine) == set(reference), definition.key
        for cell, expected in reference.items():
            assert mine[cell].visitors == expected.visitors
            for name in SUMS:
                assert getattr(mine[cell], name) == pytest.approx(getattr(expected, name), rel=1e-9, abs=1e-7), \
                    (definition.key, cell, name)
    if exact:
        relation = sorted(storage._read(*materialised_sql(experiment, definitions)))
        reference_rows = sorted(storage._read(*per_visitor_sql(experiment, definitions, storage._SCALAR_MIN)))
        assert [tuple(map(float, row)) for row in relation] == [tuple(map(float, row)) for row in reference_rows]


def _assign(client, visitor: str) -> None:
    response = client.post("/api/v1/assign", json={"experiment": "hero", "visitor": visitor})
    assert response.status_code == 200, response.get_json()


def _events(rng, t0: float, count: int) -> list[NewEvent]:
    """Values in quarters (sums exact in any order); ts from before the exposure (backfilled:
    the pre-period) to after the windows."""
    return [NewEvent(name=["buy", "visit", "click"][int(rng.integers(0, 3))],
                     value=float(rng.integers(0, 160)) / 4, event_id=None,
                     ts=t0 + float(rng.integers(-320, 520)) / 4) for _ in range(count)]


@pytest.mark.parametrize("sticky", [True, False])
@pytest.mark.parametrize("lag", [0.0, None])
def test_random_interleavings_match_the_live_statement(app, client, make_experiment, sticky, lag):
    storage = _storage(app)
    if lag is not None:
        storage.fold_lag_s = lag
        storage.fold_chunk = 3
    exact = storage.fold_lag_s == 0  # PostgreSQL's default lag leaves these young rows to the tail
    make_experiment(mode="ab", sticky=sticky, holdout=0.2)
    experiment = storage.get_experiment("hero")
    rng = np.random.default_rng(23 if sticky else 29)
    definitions = list(DEFINITIONS)
    visitors: list[str] = []
    start = time.time()
    for step in range(140):
        action = int(rng.integers(0, 10))
        if action < 3 or not visitors:
            visitors.append(f"v{step}")
            _assign(client, visitors[-1])
        elif action == 3 and not sticky:
            _assign(client, visitors[int(rng.integers(0, len(visitors)))])  # not an exposure
        else:  # events, also of visitors exposed later or never
            visitor = visitors[int(rng.integers(0, len(visitors)))] if action < 9 else f"later{step}"
            storage.record_events(visitor, _events(rng, start, int(rng.integers(1, 5))), time.time())
        if step == 60:  # a definition change rebuilds that metric
            definitions[3] = dataclasses.replace(definitions[3], window_s=40, cap=30.0)
        if step == 90:  # a metric newly added to the experiment is built from scratch
            definitions.append(MetricDefinition(key="visits", name="v", type="count", event="visit", window_s=60))
        if step in (70, 110):  # erasure: the visitor's rows leave the values and the slices
            storage.erase_visitor(visitors.pop(int(rng.integers(0, len(visitors)))))
        if step % 15 == 14:
            _check(storage, experiment, definitions, exact)
    _check(storage, experiment, definitions, exact)
    if exact:
        folded = storage._read("SELECT COUNT(*) FROM metric_values WHERE experiment_id = ?", (experiment.id,))[0][0]
        assert folded > 0


def test_two_concurrent_folders_do_not_double_count(app, client, make_experiment):
    storage = _storage(app)
    storage.fold_lag_s = 0.0
    make_experiment(mode="ab", sticky=True, holdout=0.2)
    experiment = storage.get_experiment("hero")
    for i in range(30):
        _assign(client, f"v{i}")
    storage.fold_metrics(experiment, DEFINITIONS)
    rng = np.random.default_rng(5)
    start, stop = time.time(), threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for round_ in range(40):
                storage.record_events(f"v{round_ % 30}", _events(rng, start, 3), time.time())
        except BaseException as error:  # surfaced below
            errors.append(error)
        finally:
            stop.set()

    def folder() -> None:
        try:
            while not stop.is_set():
                storage.fold_metrics(experiment, DEFINITIONS)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=writer), threading.Thread(target=folder), threading.Thread(target=folder)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    _check(storage, experiment, DEFINITIONS, exact=True)


def test_a_lower_id_committing_late_is_not_lost(app, database_url, client, make_experiment):
    """PostgreSQL hands out ids before commit: a fold between the two commits must not skip the
    lower id (it is young, so the fold leaves it and everything above to the tail)."""
    if not is_postgres(database_url):
        pytest.skip("SQLite commits one writer at a time")
    import psycopg

    storage = _storage(app)
    make_experiment(mode="ab", sticky=True, holdout=0.0)
    experiment = storage.get_experiment("hero")
    _assign(client, "v1")
    t0 = storage._read("SELECT created_at FROM assignments")[0][0]
    with psycopg.connect(database_url) as late:  # a transaction: the lower id, not yet committed
        late.execute("INSERT INTO events (visitor, name, value, ts, created_at) VALUES ('v1', 'buy', 7, %s, %s)",
                     (t0 + 1, time.time()))
        storage.record_events("v1", [NewEvent("buy", 5.0, None, t0 + 2)], time.time())
        _check(storage, experiment, DEFINITIONS[:1], exact=False)
        late.commit()
    _check(storage, experiment, DEFINITIONS, exact=False)
    spend = storage.metric_sums(experiment, DEFINITIONS[3:4])["spend"][0].unshifted()
    assert spend.value_sum == 12.0
    storage.fold_lag_s = 0.0  # now both are old enough: they fold, once each
    _check(storage, experiment, DEFINITIONS, exact=True)
    assert storage.metric_sums(experiment, DEFINITIONS[3:4])["spend"][0].unshifted().value_sum == 12.0


def test_prune_rebuilds_and_stays_equal(app, client, make_experiment):
    storage = _storage(app)
    storage.fold_lag_s = 0.0
    make_experiment(mode="ab", sticky=False, holdout=0.2)
    experiment = storage.get_experiment("hero")
    rng = np.random.default_rng(3)
    for i in range(20):
        _assign(client, f"v{i % 12}")
        storage.record_events(f"v{i % 12}", _events(rng, time.time(), 3), time.time())
    _check(storage, experiment, DEFINITIONS, exact=True)
    cutoff = sorted(row[0] for row in storage._read("SELECT created_at FROM assignments"))[6]
    assert storage.prune_events(cutoff) > 0
    assert storage._read("SELECT COUNT(*) FROM metric_state")[0][0] == 0
    _check(storage, experiment, DEFINITIONS, exact=True)


def test_shifted_sums_keep_the_variance_of_large_near_constant_values(app, client, make_experiment):
    """Issue #16: 1e9 + noise. The one-pass Σy² form is visibly wrong; the shifted sums give
    numpy's two-pass variance to 1e-9 relative."""
    storage = _storage(app)
    storage.fold_lag_s = 0.0
    make_experiment(mode="ab", sticky=True, holdout=0.0)
    experiment = storage.get_experiment("hero")
    rng = np.random.default_rng(16)
    values = {}
    for i in range(400):
        _assign(client, f"v{i}")
    t0 = dict(storage._read("SELECT visitor, created_at FROM assignments"))
    for visitor, start in t0.items():
        values[visitor] = 1e9 + float(rng.integers(-64, 64)) / 64
        storage.record_events(visitor, [NewEvent("buy", values[visitor], None, start + 1)], time.time())
    definition = MetricDefinition(key="big", name="b", type="sum", event="buy", window_s=100, cuped_window_s=0)
    variants = {row[0]: row[1] for row in storage._read("SELECT visitor, variant_id FROM assignments")}
    for sums in storage.metric_sums(experiment, [definition])["big"]:
        y = np.array([values[v] for v, variant in variants.items() if variant == sums.variant_id])
        fields = {name: getattr(sums, name) for name in MetricSlice.__dataclass_fields__
                  if name not in ("variant", "holdout")}
        arm = mean_arm(MetricSlice(variant="x", holdout=False, **fields))
        two_pass = float(np.var(y, ddof=1)) / y.size
        assert float(arm.variance) == pytest.approx(two_pass, rel=1e-9)
        assert float(arm.value) == pytest.approx(float(np.mean(y)), rel=1e-15)
        plain = sums.unshifted()  # the one-pass form of the same visitors
        one_pass = mean_arm(MetricSlice(variant="x", holdout=False, visitors=plain.visitors,
                                        value_sum=plain.value_sum, value_sumsq=plain.value_sumsq))
        assert abs(float(one_pass.variance) - two_pass) > 1e-3 * two_pass
