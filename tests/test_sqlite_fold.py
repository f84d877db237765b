"""SQLite's hot-path design: assignments insert only their row; the counters of every
assignment above the watermark are folded in before any read, and the watermark survives
erasure of the newest rows (SQLite reuses ids above the newest remaining one) and the
v1 → v2 migration. WAL checkpoints run in a background thread, not in commits."""
from __future__ import annotations

import sqlite3
import time

import pytest
import sqlite_utils

from app import create_app
from app.storage.base import COUNTER_COLUMNS
from app.storage.schema import FOLDED_THROUGH_KEY, MIGRATIONS, SCHEMA_VERSION
from app.storage.sqlite import AUTOCHECKPOINT_PAGES, SQLiteStorage

from .conftest import ADMIN_TOKEN, SECRET_KEY, experiment_body


@pytest.fixture
def sqlite_app(tmp_path):  # no learning refresh (and so no fold) between the requests of a test
    app = create_app({"TESTING": True, "DATABASE_URL": f"sqlite:///{tmp_path / 'lever.db'}",
                      "LEVER_ADMIN_TOKEN": ADMIN_TOKEN, "LEVER_SECRET_KEY": SECRET_KEY,
                      "LEVER_REFRESH_MS": 600_000, "LEVER_ENV": "test", "LEVER_RATE_LIMIT": ""})
    yield app
    app.extensions["lever.storage"].close()


def _assign(client, key, visitor, **context):
    response = client.post("/api/v1/assign", json={"experiment": key, "visitor": visitor, "context": context})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def _raw(app, sql, params=()):
    with sqlite3.connect(app.extensions["lever.storage"].path) as conn:
        return conn.execute(sql, params).fetchall()


def _assignments_counted(storage, key):
    experiment = storage.get_experiment(key)
    return sum(t.assignments for t in storage.learning_snapshot(experiment.id).totals)


def test_an_assign_writes_no_counter_and_the_next_read_counts_it(sqlite_app):
    client = sqlite_app.test_client()
    client.post("/api/v1/experiments", json=experiment_body("hero"), headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    for i in range(5):
        _assign(client, "hero", f"v{i}", device="mobile")
    assert _raw(sqlite_app, "SELECT COALESCE(SUM(assignments), 0) FROM arm_stats") == [(0,)]
    storage = sqlite_app.extensions["lever.storage"]
    assert _assignments_counted(storage, "hero") == 5
    assert _raw(sqlite_app, "SELECT value FROM meta WHERE key = ?", (FOLDED_THROUGH_KEY,)) == [("5",)]
    # the read folded them into the table; a second read adds nothing
    assert _raw(sqlite_app, "SELECT SUM(assignments) FROM arm_stats") == [(5,)]
    assert _assignments_counted(storage, "hero") == 5
    segments = storage.segment_totals(storage.get_experiment("hero").id)
    assert sum(s.assignments for s in segments) > 0


def test_fold_equals_a_rebuild_with_rewards_before_and_after_the_fold(sqlite_app):
    client = sqlite_app.test_client()
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    client.post("/api/v1/experiments", json=experiment_body("num", reward="numeric", variants=["control", "b", "c"]),
                headers=admin)
    storage = sqlite_app.extensions["lever.storage"]
    tokens = [_assign(client, "num", f"v{i}", device="mobile" if i % 2 else "desktop")["assignment"]
              for i in range(30)]
    for token in tokens[:10]:  # rewarded before their assignment was folded
        assert client.post("/api/v1/reward", json={"assignment": token, "value": 2.5}).status_code == 202
    _assignments_counted(storage, "num")  # folds
    for token in tokens[5:20]:  # some rewarded twice, across the fold
        assert client.post("/api/v1/reward", json={"assignment": token, "value": 1.0,
                                                   "event_id": "later"}).status_code == 202
    experiment = storage.get_experiment("num")
    folded = storage.learning_snapshot(experiment.id)
    folded_segments = storage.segment_totals(experiment.id)
    storage.rebuild_arm_stats(experiment)
    rebuilt = storage.learning_snapshot(experiment.id)
    assert folded.model_version == rebuilt.model_version == 30 + 10 + 15
    for a, b in zip(folded.totals, rebuilt.totals):
        for field in a.__dataclass_fields__:
            assert getattr(a, field) == pytest.approx(getattr(b, field), rel=1e-12), field
    assert [(s.feature, s.level, s.variant_id, s.assignments, s.conversions) for s in folded_segments if s.assignments] \
        == [(s.feature, s.level, s.variant_id, s.assignments, s.conversions)
            for s in storage.segment_totals(experiment.id)]


def test_erasing_the_newest_rows_lowers_the_watermark_so_reused_ids_are_counted(sqlite_app):
    client = sqlite_app.test_client()
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    client.post("/api/v1/experiments", json=experiment_body("hero"), headers=admin)
    _assign(client, "hero", "keep")
    _assign(client, "hero", "forget-me")  # id 2, unfolded
    assert client.delete("/api/v1/visitors/forget-me", headers=admin).status_code == 200
    assert _raw(sqlite_app, "SELECT value FROM meta WHERE key = ?", (FOLDED_THROUGH_KEY,)) == [("1",)]
    _assign(client, "hero", "newcomer")  # SQLite hands out id 2 again
    assert _raw(sqlite_app, "SELECT id FROM assignments WHERE visitor = 'newcomer'") == [(2,)]
    assert _assignments_counted(sqlite_app.extensions["lever.storage"], "hero") == 2


def test_pruning_keeps_pending_assignments_in_the_totals(sqlite_app):
    client = sqlite_app.test_client()
    client.post("/api/v1/experiments", json=experiment_body("hero"), headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    for i in range(4):
        _assign(client, "hero", f"v{i}")
    storage = sqlite_app.extensions["lever.storage"]
    assert storage.prune_events(before=1e12) == 4  # everything, before any read folded it
    assert _assignments_counted(storage, "hero") == 4
    _assign(client, "hero", "after")  # id 1 again
    assert _assignments_counted(storage, "hero") == 5


def test_v1_database_migrates_with_its_per_request_counters_kept(tmp_path):
    path = tmp_path / "v1.db"
    db = sqlite_utils.Database(path)
    db["meta"].create({"key": str, "value": str}, pk="key")
    MIGRATIONS[1](db)
    db["meta"].insert({"key": "schema_version", "value": "1"})
    db["experiments"].insert({"id": 1, "key": "old", "name": "Old", "mode": "bandit", "reward": "binary",
                              "control": "a", "status": "running", "holdout": 0.0, "min_share": 0.0,
                              "reward_window_s": 60, "sticky": 1, "created_at": 0.0, "updated_at": 0.0})
    db["variants"].insert_all([{"id": 1, "experiment_id": 1, "key": "a", "position": 0, "weight": 1.0},
                               {"id": 2, "experiment_id": 1, "key": "b", "position": 1, "weight": 1.0}])
    db["assignments"].insert({"id": 7, "experiment_id": 1, "variant_id": 2, "visitor": "v", "sticky_key": "v",
                              "context": "{}", "probabilities": '{"1":0.5,"2":0.5}', "propensity": 0.5, "holdout": 0,
                              "model_version": 0, "created_at": 3600.0})
    # v1 counted that assignment in the same transaction
    zero = {c: 0 for c in COUNTER_COLUMNS if c in db["arm_stats"].columns_dict}  # v1's columns (v8 added two)
    db["arm_stats"].insert_all([
        {**zero, "experiment_id": 1, "variant_id": 2, "holdout": 0, "period": 3600, "shard": 0, "assignments": 1,
         "expected_assignments": 0.5, "inv_propensity_sum": 2.0, "inv_propensity_sumsq": 4.0},
        {**zero, "experiment_id": 1, "variant_id": 1, "holdout": 0, "period": 3600, "shard": 0,
         "expected_assignments": 0.5},
    ])
    db.close()

    storage = SQLiteStorage(f"sqlite:///{path}")
    assert storage.migrate() == SCHEMA_VERSION == max(MIGRATIONS)
    assert storage.get_meta(FOLDED_THROUGH_KEY) == "7"
    indexes = {row[0] for row in storage.conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "idx_assignments_experiment_id_visitor" not in indexes and "idx_assignments_visitor" in indexes
    totals = storage.learning_snapshot(1).totals
    assert sum(t.assignments for t in totals) == 1  # not counted a second time
    assert sum(t.expected_assignments for t in totals) == pytest.approx(1.0)
    assert storage.migrate() == SCHEMA_VERSION  # idempotent
    storage.close()


def test_wal_is_checkpointed_in_the_background_not_by_commits(tmp_path):
    """Commits no longer run SQLite's checkpoint (and its fsyncs) themselves: a thread copies
    the log into the database file. Read with immutable=1, the file ignores the WAL, so it
    shows only what a checkpoint has copied."""
    path = tmp_path / "lever.db"
    storage = SQLiteStorage(f"sqlite:///{path}")
    storage.migrate()
    assert storage.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == AUTOCHECKPOINT_PAGES
    with storage._write() as conn:
        conn.execute("INSERT INTO meta (key, value) VALUES ('probe', 'x')")

    def checkpointed() -> bool:
        with sqlite3.connect(f"file:{path}?immutable=1", uri=True) as reader:
            try:
                return reader.execute("SELECT COUNT(*) FROM meta WHERE key = 'probe'").fetchone()[0] == 1
            except sqlite3.OperationalError:  # not even the schema is in the file yet
                return False

    deadline = time.monotonic() + 5
    while not checkpointed():
        assert time.monotonic() < deadline, "no background checkpoint within 5 s"
        time.sleep(0.05)
    thread = storage._checkpointer[1]._thread
    storage.close()
    thread.join(timeout=2)
    assert not thread.is_alive()


def test_background_checkpoints_can_be_turned_off(tmp_path):
    storage = SQLiteStorage(f"sqlite:///{tmp_path / 'lever.db'}", background_checkpoints=False)
    storage.migrate()
    assert storage.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000  # SQLite's default
    assert storage._checkpointer is None
    storage.close()
