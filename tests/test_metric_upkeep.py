"""The materialised metric values kept up outside user requests (``service.metric_upkeep``):
the guardrail schedule folds running experiments, ``flask fold-metrics`` and ``flask
rebuild-stats`` build on demand; and chunked folds (bounded transactions) stay exact on both
backends. Real SQLite files and real PostgreSQL; sums checked against the live statement."""
from __future__ import annotations

import os
import time

import numpy as np
import pytest

from app.service import guardrails
from app.storage import NewEvent
from app.storage.metric_fold import DONE, FOLD_LOCK, MORE, Dialect, fold

from .conftest import experiment_body
from .dbutil import TEST_DATABASE_URL_ENV, fresh_schema, is_postgres
from .test_metric_fold import DEFINITIONS, _check, _events

METRICS = (
    {"key": "conv", "type": "conversion", "event": "buy", "window_s": 100, "cuped_window_s": 50},
    {"key": "spend", "type": "sum", "event": "buy", "window_s": 100, "cap": 50, "cuped_window_s": 50},
    {"key": "clicks", "type": "count", "event": "click", "window_s": 100, "cap": 3},
)


def _storage(app):
    storage = app.extensions["lever.services"].storage
    storage.fold_lag_s = 0.0  # PostgreSQL: fold the rows just written (the lag is tested in test_metric_fold)
    return storage


def _setup(client, admin, storage, keys=("hero", "other"), visitors: int = 24) -> None:
    """Experiments with catalogue metrics (no guardrails: nothing else would fold them), their
    exposures and events."""
    for metric in METRICS:
        assert client.post("/api/v1/metrics", json=metric, headers=admin).status_code == 201
    rng = np.random.default_rng(7)
    for key in keys:
        body = experiment_body(key, mode="ab", holdout=0.2,
                               metrics={"primary": "conv", "secondary": ["spend", "clicks"]})
        assert client.post("/api/v1/experiments", json=body, headers=admin).status_code == 201
        for i in range(visitors):
            response = client.post("/api/v1/assign", json={"experiment": key, "visitor": f"{key}-v{i}"})
            assert response.status_code == 200, response.get_json()
            storage.record_events(f"{key}-v{i}", _events(rng, time.time(), 3), time.time())


def _definitions(storage):
    return storage.list_metrics(["conv", "spend", "clicks"])


def _state(storage, key: str) -> list[tuple]:
    experiment = storage.get_experiment(key)
    return storage._read("SELECT metric_key, events_through, assignments_through FROM metric_state "
                         "WHERE experiment_id = ? ORDER BY metric_key", (experiment.id,))


def _latest(storage) -> tuple[int, int]:
    """The newest ids: what a fold with no lag takes every watermark to."""
    return tuple(int(storage._read(f"SELECT MAX(id) FROM {table}")[0][0]) for table in ("events", "assignments"))


def _values(storage, key: str) -> int:
    experiment = storage.get_experiment(key)
    return storage._read("SELECT COUNT(*) FROM metric_values WHERE experiment_id = ?", (experiment.id,))[0][0]


def _pause(client, admin, key: str) -> None:
    response = client.patch(f"/api/v1/experiments/{key}", json={"status": "paused"}, headers=admin)
    assert response.status_code == 200, response.get_json()


def test_the_schedule_builds_running_experiments_so_stats_find_them_current(app, client, admin):
    storage = _storage(app)
    _setup(client, admin, storage)
    _pause(client, admin, "other")
    assert _state(storage, "hero") == []
    services = app.extensions["lever.services"]
    now = time.time()
    assert guardrails.run_due(storage, services.cache, now, 60, "worker-1") == []
    events, assignments = _latest(storage)
    assert _state(storage, "hero") == [(key, events, assignments) for key in ("clicks", "conv", "spend")]
    assert _values(storage, "hero") == 3 * 24  # every exposure of every metric
    assert _state(storage, "other") == []  # paused: left to a request or the CLI
    built = _state(storage, "hero")
    response = client.get("/api/v1/experiments/hero/stats", headers=admin)
    assert response.status_code == 200
    assert _state(storage, "hero") == built  # the request found nothing to fold
    _check(storage, storage.get_experiment("hero"), _definitions(storage), exact=True)
    # new events: the next holder of the lease folds them, not a process inside the interval
    storage.record_events("hero-v3", [NewEvent("buy", 4.0, None, time.time())], time.time())
    assert guardrails.run_due(storage, services.cache, now + 30, 60, "worker-2") is None
    assert _state(storage, "hero") == built
    assert guardrails.run_due(storage, services.cache, now + 61, 60, "worker-2") == []
    assert [row[1] for row in _state(storage, "hero")] == [events + 1] * 3
    _check(storage, storage.get_experiment("hero"), _definitions(storage), exact=True)


def test_cli_fold_metrics_builds_every_experiment_or_one(app, client, admin, runner):
    storage = _storage(app)
    _setup(client, admin, storage)
    _pause(client, admin, "other")
    assert client.post("/api/v1/experiments", json=experiment_body("plain"), headers=admin).status_code == 201
    result = runner.invoke(args=["fold-metrics", "hero"])
    assert result.exit_code == 0, result.output
    assert "hero: 3 metrics current" in result.output
    assert _state(storage, "hero") and not _state(storage, "other")
    result = runner.invoke(args=["fold-metrics"])  # every experiment with metrics, paused too
    assert result.exit_code == 0, result.output
    assert "folded the metric values of 2 of 2 experiments" in result.output
    events, assignments = _latest(storage)
    assert _state(storage, "other") == [(key, events, assignments) for key in ("clicks", "conv", "spend")]
    for key in ("hero", "other"):
        _check(storage, storage.get_experiment(key), _definitions(storage), exact=True)
    for args, word in ((["fold-metrics", "nope"], "no experiment"), (["fold-metrics", "plain"], "no catalogue")):
        result = runner.invoke(args=args)
        assert result.exit_code != 0 and word in result.output


def _corrupt(storage, key: str) -> None:
    experiment = storage.get_experiment(key)
    storage._transact(lambda tx: tx.execute("UPDATE metric_slices SET s_y = s_y + 1000, visitors = visitors + 5 "
                                            "WHERE experiment_id = ?", (experiment.id,)))


@pytest.mark.parametrize("command", [["rebuild-stats", "hero"], ["fold-metrics", "hero", "--rebuild"]])
def test_rebuild_recomputes_the_metric_tables(app, client, admin, runner, command):
    storage = _storage(app)
    _setup(client, admin, storage, keys=("hero",))
    assert runner.invoke(args=["fold-metrics"]).exit_code == 0
    _corrupt(storage, "hero")
    experiment, definitions = storage.get_experiment("hero"), _definitions(storage)
    with pytest.raises(AssertionError):  # a fold alone keeps the damage
        _check(storage, experiment, definitions, exact=True)
    result = runner.invoke(args=command)
    assert result.exit_code == 0, result.output
    assert "hero: 3 metrics current" in result.output
    _check(storage, experiment, definitions, exact=True)


def test_a_chunked_build_runs_in_bounded_transactions_and_stays_exact(app, client, admin):
    """Chunks of 4 new exposures per transaction, with exposures and events arriving between
    the transactions; the read in the middle adds the exact tail of the rest."""
    storage = _storage(app)
    _setup(client, admin, storage, keys=("hero",), visitors=30)
    experiment = storage.get_experiment("hero")
    definitions = list(DEFINITIONS)
    dialect = Dialect(storage._SCALAR_MIN, 0.0, storage._FOLD_LOCK_SQL, storage._PERIOD_OF, chunk=4)
    ids = [row[0] for row in storage._read("SELECT id FROM assignments WHERE experiment_id = ? ORDER BY id",
                                           (experiment.id,))]
    step = storage._transact(lambda tx: fold(tx, experiment, definitions, dialect, time.time()), idempotent=True)
    assert step == MORE
    assert {row[2] for row in storage._read("SELECT metric_key, events_through, assignments_through "
                                            "FROM metric_state")} == {ids[3]}
    assert _values(storage, "hero") == 4 * len(definitions)
    _check(storage, experiment, definitions, exact=False)  # four folded, the rest in the tail
    rng = np.random.default_rng(11)
    transactions, late = 1, 0
    while step == MORE:
        if transactions % 2:  # traffic between the chunks
            late += 1
            response = client.post("/api/v1/assign", json={"experiment": "hero", "visitor": f"late{late}"})
            assert response.status_code == 200
            storage.record_events(f"hero-v{late}", _events(rng, time.time(), 2), time.time())
        before = _values(storage, "hero")
        step = storage._transact(lambda tx: fold(tx, experiment, definitions, dialect, time.time()), idempotent=True)
        transactions += 1
        assert 0 < _values(storage, "hero") - before <= 4 * len(definitions)  # at most 4 new exposures each
        assert transactions < 40
    assert step == DONE
    assert _values(storage, "hero") == (len(ids) + late) * len(definitions)
    _check(storage, experiment, definitions, exact=True)


def test_fold_locks_of_another_schema_do_not_block(app, database_url, client, admin):
    """Advisory locks belong to the database: a fold of experiment 1 in another schema (another
    instance, another test run) must not make this schema's fold of its experiment 1 skip."""
    if not is_postgres(database_url):
        pytest.skip("SQLite folds in its own file's write transaction")
    import psycopg

    storage = _storage(app)
    _setup(client, admin, storage, keys=("hero",), visitors=4)
    experiment = storage.get_experiment("hero")
    lock = storage._FOLD_LOCK_SQL.replace("?", "%s")
    with fresh_schema(os.environ[TEST_DATABASE_URL_ENV]) as other_url, psycopg.connect(other_url) as other:
        assert other.execute(lock, (FOLD_LOCK, experiment.id)).fetchone()[0]  # held until this block ends
        assert storage.fold_metrics(experiment, _definitions(storage))
        with psycopg.connect(database_url) as same:  # the same schema's lock is the one folds take
            assert same.execute(lock, (FOLD_LOCK, experiment.id)).fetchone()[0]
            assert not storage.fold_metrics(experiment, _definitions(storage))
    assert _values(storage, "hero") == 3 * 4
