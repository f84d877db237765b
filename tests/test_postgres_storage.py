"""PostgreSQL backend specifics: races settled by locks, the one retry, ambiguous commits, 503s.

Only with TEST_DATABASE_URL (everything behavioural runs on both backends through the
``database_url`` fixture in the other suites).
"""
from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from app import create_app
from app.domain.experiments import ExperimentSpec, Variant
from app.storage import NewAssignment, StorageBusy, open_storage
from app.storage.postgres import PostgresStorage
from app.storage.schema import SCHEMA_VERSION

from .conftest import ADMIN_TOKEN, SECRET_KEY
from .dbutil import TEST_DATABASE_URL_ENV, fresh_schema, query

pytestmark = pytest.mark.skipif(not os.environ.get(TEST_DATABASE_URL_ENV),
                                reason=f"{TEST_DATABASE_URL_ENV} is not set (PostgreSQL-only tests)")


@pytest.fixture
def pg_url():
    with fresh_schema(os.environ[TEST_DATABASE_URL_ENV]) as url:
        yield url


@pytest.fixture
def storage(pg_url):
    store = PostgresStorage(pg_url)
    store.migrate()
    yield store
    store.close()


def _experiment(storage, key="hero", sticky=True):
    return storage.create_experiment(ExperimentSpec(
        key=key, name=key, mode="bandit", reward="binary", variants=(Variant("control"), Variant("b")),
        control="control", sticky=sticky), now=time.time())


def _item(experiment, visitor, model_update=None):
    ids = [v.id for v in experiment.variants]
    return NewAssignment(experiment_id=experiment.id, variant_id=ids[0], visitor=visitor, sticky=experiment.sticky,
                         context={}, propensity=0.5, probabilities={ids[0]: 0.5, ids[1]: 0.5}, holdout=False,
                         model_version=0, created_at=time.time(), model_update=model_update)


def test_heroku_scheme_and_search_path_are_honoured(pg_url):
    heroku = "postgres://" + pg_url[len("postgresql://"):]
    store = open_storage(heroku)
    try:
        assert store.migrate() == SCHEMA_VERSION and store.healthy()
        schema = dict(urlparam.split("=", 1) for urlparam in pg_url.split("?", 1)[1].split("&"))["application_name"]
        tables = {row[0] for row in query(pg_url, "SELECT table_name FROM information_schema.tables "
                                                  "WHERE table_schema = ?", (schema,))}
        assert {"meta", "experiments", "variants", "assignments", "rewards", "arm_stats", "model_state"} <= tables
    finally:
        store.close()


def test_concurrent_migrations_from_many_workers_are_safe(pg_url):
    stores = [PostgresStorage(pg_url) for _ in range(6)]
    try:
        with ThreadPoolExecutor(max_workers=6) as pool:
            assert list(pool.map(lambda s: s.migrate(), stores)) == [SCHEMA_VERSION] * 6
    finally:
        for store in stores:
            store.close()
    assert query(pg_url, "SELECT value FROM meta WHERE key = 'schema_version'") == [(str(SCHEMA_VERSION),)]


def test_sticky_race_gives_one_row_and_one_count(storage, pg_url):
    experiment = _experiment(storage)
    barrier = threading.Barrier(8)

    def assign(_):
        barrier.wait()
        return storage.record_assignments([_item(experiment, "same")])[0]

    stores = ThreadPoolExecutor(max_workers=8)
    with stores:
        results = list(stores.map(assign, range(8)))
    assert len({r.id for r in results}) == 1
    assert sum(not r.existing for r in results) == 1
    assert query(pg_url, "SELECT COUNT(*) FROM assignments") == [(1,)]
    assert sum(t.assignments for t in storage.learning_snapshot(experiment.id).totals) == 1


def test_concurrent_binary_rewards_convert_once_and_model_state_updates_serialise(storage, pg_url):
    experiment = _experiment(storage, sticky=False)
    appended = lambda blob: (blob or b"") + b"x"  # noqa: E731  (a read-modify-write that loses nothing if locked)
    assignment = storage.record_assignments([_item(experiment, "v", appended)])[0]
    barrier = threading.Barrier(8)

    def reward(_):
        barrier.wait()
        return storage.record_reward(assignment, 1.0, None, True, time.time(), appended).accepted

    def decide(i):
        barrier.wait()
        return storage.record_assignments([_item(experiment, f"w{i}", appended)])[0]

    with ThreadPoolExecutor(max_workers=8) as pool:
        accepted = list(pool.map(reward, range(8)))
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(decide, range(8)))
    assert sum(accepted) == 1
    assert query(pg_url, "SELECT COUNT(*) FROM rewards") == [(1,)]
    snapshot = storage.learning_snapshot(experiment.id)
    assert sum(t.conversions for t in snapshot.totals) == 1
    assert snapshot.model_states[assignment.variant_id] == b"x" * (1 + 1 + 8)


class _DropAround:
    """Wraps a pooled connection so that its COMMIT dies, before or after the server committed."""

    def __init__(self, conn, base_url, after_commit):
        self._conn, self._base_url, self._after_commit = conn, base_url, after_commit

    def __getattr__(self, name):
        return getattr(self._conn, name)

    def _kill(self):
        with psycopg.connect(self._base_url, autocommit=True) as killer:
            killer.execute("SELECT pg_terminate_backend(%s)", (self._conn.info.backend_pid,))

    def execute(self, sql, *args, **kwargs):
        if sql != "COMMIT":
            return self._conn.execute(sql, *args, **kwargs)
        if self._after_commit:
            self._conn.execute("COMMIT")
            self._kill()
            self._conn.execute("SELECT pg_sleep(1)")  # raises: the connection is gone
            raise AssertionError("the connection survived its termination")
        self._kill()
        return self._conn.execute("COMMIT")


@pytest.mark.parametrize("after_commit", [True, False], ids=["committed", "not-committed"])
def test_a_drop_during_commit_is_settled_and_never_doubles(storage, pg_url, monkeypatch, after_commit):
    experiment = _experiment(storage, sticky=False)
    real_getconn = storage._getconn
    calls = []

    def getconn():
        conn = real_getconn()
        calls.append(conn)
        return _DropAround(conn, os.environ[TEST_DATABASE_URL_ENV], after_commit) if len(calls) == 1 else conn

    monkeypatch.setattr(storage, "_getconn", getconn)
    stored = storage.record_assignments([_item(experiment, "amb")])[0]
    monkeypatch.undo()
    assert query(pg_url, "SELECT id FROM assignments") == [(stored.id,)]
    assert sum(t.assignments for t in storage.learning_snapshot(experiment.id).totals) == 1


def test_a_connection_killed_between_requests_is_retried_once(storage, pg_url):
    experiment = _experiment(storage, sticky=False)
    storage.record_assignments([_item(experiment, "before")])
    with psycopg.connect(os.environ[TEST_DATABASE_URL_ENV], autocommit=True) as killer:
        schema_app = dict(p.split("=", 1) for p in pg_url.split("?", 1)[1].split("&"))["application_name"]
        killed = killer.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
                                (schema_app,)).fetchall()
    assert killed
    storage.record_assignments([_item(experiment, "after")])  # no exception: retried on a fresh connection
    assert storage.get_experiment("hero") is not None
    assert query(pg_url, "SELECT COUNT(*) FROM assignments") == [(2,)]


def test_unreachable_database_is_storage_busy_and_a_503_json(pg_url):
    app = create_app({"TESTING": True, "DATABASE_URL": pg_url, "LEVER_ADMIN_TOKEN": ADMIN_TOKEN,
                      "LEVER_SECRET_KEY": SECRET_KEY})
    store = app.extensions["lever.storage"]
    try:
        client = app.test_client()
        client.post("/api/v1/experiments", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                    json={"key": "hero", "name": "Hero", "variants": ["control", "b"], "control": "control"})
        store.close()
        store.conninfo = "postgresql://postgres@127.0.0.1:1/nowhere"  # nothing listens on port 1
        store.timeout_s = 1.0
        response = client.post("/api/v1/assign", json={"experiment": "hero", "visitor": "v"})
        assert response.status_code == 503
        assert response.get_json()["error"]["code"] == "service_unavailable"
        health = client.get("/healthz")
        assert health.status_code == 503 and health.get_json()["error"]["code"] == "database_unavailable"
        with pytest.raises(StorageBusy):
            store.get_meta("schema_version")
    finally:
        store.close()
