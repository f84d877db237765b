"""Group commit (app/storage/batching.py) on both backends: many requests' writes in one
transaction, each answered after the commit that holds its row; a batch that fails answers
every one of its requests with StorageBusy (503) and writes nothing; one poisoned item fails
alone; a request whose commit is stuck is answered by its deadline."""
from __future__ import annotations

import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from app.storage import GroupCommitOptions, NewAssignment, StorageBusy, StorageOutcomeUnknown, open_storage
from app.storage.batching import GroupCommitter
from app.domain.experiments import ExperimentSpec, Variant

from .dbutil import is_postgres, query


def _spec() -> ExperimentSpec:
    return ExperimentSpec(key="hero", name="Hero", mode="ab", reward="binary",
                          variants=(Variant(key="control", payload={}), Variant(key="b", payload={})), control="control")


def _item(experiment, visitor: str, model_update=None) -> NewAssignment:
    ids = [v.id for v in experiment.variants]
    return NewAssignment(experiment_id=experiment.id, variant_id=ids[0], visitor=visitor, sticky=True, context={},
                         propensity=0.5, probabilities={ids[0]: 0.5, ids[1]: 0.5}, holdout=False, model_version=0,
                         created_at=time.time(), model_update=model_update)


#: the two ways a batch is committed: by a writer thread, by the request that leads (``LEVER_GROUP_COMMIT_LEADER``)
MODES = pytest.mark.parametrize("leader", [False, True], ids=["writer-thread", "leader"])


@pytest.fixture(params=[False, True], ids=["writer-thread", "leader"])
def storage(database_url, request):
    settings = {"LEVER_GROUP_COMMIT": True, "LEVER_GROUP_COMMIT_MAX_BATCH": 64,
                "LEVER_GROUP_COMMIT_WAIT_US": 2000, "LEVER_WRITE_TIMEOUT_MS": 10000,
                "LEVER_GROUP_COMMIT_LEADER": request.param}
    store = open_storage(database_url, settings)
    store.migrate()
    yield store
    store.close()


def test_concurrent_writes_share_transactions_and_each_gets_its_own_row(storage, database_url):
    experiment = storage.create_experiment(_spec(), time.time())
    with ThreadPoolExecutor(max_workers=16) as pool:
        stored = list(pool.map(lambda i: storage.record_assignments([_item(experiment, f"v{i}")])[0], range(200)))
    assert sorted(s.visitor for s in stored) == sorted(f"v{i}" for i in range(200))
    assert len({s.id for s in stored}) == 200
    rows = dict(query(database_url, "SELECT visitor, id FROM assignments"))
    assert all(rows[s.visitor] == s.id for s in stored)  # each answer names its own committed row
    stats = storage._group_commit.stats()
    assert stats.items == 200 and stats.batches < 200, stats  # some transactions held several requests
    # counters moved with the rows (PostgreSQL: summed per batch; SQLite: folded on read)
    assert sum(t.assignments for t in storage.learning_snapshot(experiment.id).totals) == 200
    # the sticky race inside one batch: the same visitor twice gets one row, the second sees it
    with ThreadPoolExecutor(max_workers=8) as pool:
        again = list(pool.map(lambda _: storage.record_assignments([_item(experiment, "twice")])[0], range(8)))
    assert len({a.id for a in again}) == 1 and sum(not a.existing for a in again) == 1


def test_a_poisoned_item_fails_alone(storage, database_url):
    experiment = storage.create_experiment(_spec(), time.time())

    def poison(_state):
        raise ValueError("a model update that fails")

    barrier = threading.Barrier(6)

    def write(i: int):
        barrier.wait()
        try:
            return storage.record_assignments([_item(experiment, f"p{i}", poison if i == 0 else None)])[0]
        except ValueError as error:
            return error

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(write, range(6)))
    assert isinstance(results[0], ValueError)
    assert all(not isinstance(r, Exception) for r in results[1:])
    assert sorted(v for (v,) in query(database_url, "SELECT visitor FROM assignments")) == [f"p{i}" for i in range(1, 6)]


@MODES
def test_a_failed_batch_is_a_busy_error_for_every_request_and_writes_nothing(tmp_path, leader):
    url = f"sqlite:///{tmp_path / 'lever.db'}"
    store = open_storage(url, {"LEVER_SQLITE_BUSY_TIMEOUT_MS": 300, "LEVER_GROUP_COMMIT_WAIT_US": 2000,
                               "LEVER_GROUP_COMMIT_LEADER": leader})
    store.migrate()
    experiment = store.create_experiment(_spec(), time.time())
    holder = sqlite3.connect(tmp_path / "lever.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock past the busy timeout
    started = time.monotonic()
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            outcomes = list(pool.map(lambda i: _outcome(lambda: store.record_assignments(
                [_item(experiment, f"b{i}")])), range(4)))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert all(isinstance(o, StorageBusy) and not isinstance(o, StorageOutcomeUnknown) for o in outcomes), outcomes
    assert time.monotonic() - started < 2.5  # each batch gives up at the busy timeout, the leader too
    assert query(url, "SELECT COUNT(*) FROM assignments") == [(0,)]
    assert store.record_assignments([_item(experiment, "after")])[0].visitor == "after"  # recovered
    store.close()


def _outcome(call):
    try:
        return call()
    except StorageBusy as error:
        return error


def test_a_stuck_commit_is_answered_by_the_deadline_and_a_queued_write_is_withdrawn():
    release = threading.Event()
    written: list[str] = []

    def transact(body):  # a transaction that hangs until released
        release.wait(5)
        results = body(None)
        return results

    committer = GroupCommitter(transact, GroupCommitOptions(max_batch=1, timeout_s=0.3))
    with ThreadPoolExecutor(max_workers=2) as pool:
        first = pool.submit(_outcome, lambda: committer.submit(lambda _: written.append("first")))
        time.sleep(0.05)  # the writer has taken the first one and hangs in its commit
        second = pool.submit(_outcome, lambda: committer.submit(lambda _: written.append("second")))
        started = time.monotonic()
        first_error, second_error = first.result(), second.result()
        assert time.monotonic() - started < 1.0
    assert isinstance(first_error, StorageOutcomeUnknown)  # in a commit: may land, and says so
    assert isinstance(second_error, StorageBusy) and not isinstance(second_error, StorageOutcomeUnknown)
    release.set()
    time.sleep(0.1)
    assert written == ["first"]  # the withdrawn one was never run
    committer.stop()


def test_without_group_commit_each_write_is_its_own_transaction(database_url):
    store = open_storage(database_url, {"LEVER_GROUP_COMMIT": False})
    store.migrate()
    try:
        experiment = store.create_experiment(_spec(), time.time())
        assert store._group_commit is None
        assert store.record_assignments([_item(experiment, "solo")])[0].visitor == "solo"
        if is_postgres(database_url):
            assert query(database_url, "SELECT COUNT(*) FROM assignments") == [(1,)]
    finally:
        store.close()


def test_a_mixin_write_rides_the_group_commit(storage, database_url):
    """``_transact_batched``: what the events mixin uses instead of ``_transact``."""
    assert storage._transact_batched(
        lambda tx: tx.execute("INSERT INTO meta (key, value) VALUES (?, ?)", ("k", "v")).rowcount) == 1
    assert storage.get_meta("k") == "v"
    before = storage._group_commit.stats().items
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda i: storage._transact_batched(
            lambda tx: tx.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (f"m{i}", "x"))), range(40)))
    assert storage._group_commit.stats().items == before + 40
    assert query(database_url, "SELECT COUNT(*) FROM meta WHERE key LIKE 'm%'") == [(40,)]


def test_a_stuck_leader_answers_when_its_commit_returns_and_its_followers_by_their_deadline():
    """Leader mode: the request that commits waits for its own transaction (the backend bounds it:
    ``leader_bound_s``); the requests queued behind it are answered by their own deadlines."""
    release = threading.Event()
    written: list[str] = []

    def transact(body):
        release.wait(5)
        return body(None)

    committer = GroupCommitter(transact, GroupCommitOptions(max_batch=1, timeout_s=0.3, leader=True))
    with ThreadPoolExecutor(max_workers=3) as pool:
        first = pool.submit(_outcome, lambda: committer.submit(lambda _: written.append("first") or "first"))
        time.sleep(0.05)  # the first leads and hangs in its commit
        queued = [pool.submit(_outcome, lambda i=i: committer.submit(lambda _: written.append(f"q{i}"))) for i in (1, 2)]
        started = time.monotonic()
        errors = [future.result() for future in queued]
        assert time.monotonic() - started < 1.0
        assert all(isinstance(e, StorageBusy) and not isinstance(e, StorageOutcomeUnknown) for e in errors), errors
        assert not first.done()
        release.set()
        assert first.result(timeout=2) == "first"
    assert written == ["first"]  # the withdrawn ones were never run
    assert committer.submit(lambda _: "next") == "next"  # the lead was handed on: the next request commits


def test_leader_mode_hands_the_lead_on_and_answers_every_request_once():
    sizes: list[int] = []

    def transact(body):
        results = body(None)
        sizes.append(len(results))
        time.sleep(0.001)  # a commit's latency: requests queue behind it and form batches
        return results

    committer = GroupCommitter(transact, GroupCommitOptions(leader=True, max_batch=8))
    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(lambda i: committer.submit(lambda _: i), range(2000)))
    assert answers == list(range(2000))
    assert sum(sizes) == 2000 and max(sizes) <= 8 and len(sizes) < 2000  # batches formed, bounded
    assert not committer._leading and not committer._queue  # nothing left in progress


def test_sqlite_leads_only_where_its_busy_timeout_bounds_the_commit(tmp_path):
    url = f"sqlite:///{tmp_path / 'lever.db'}"
    modes = {}
    for busy_ms, write_ms in ((5000, 10000), (8000, 10000)):
        store = open_storage(url, {"LEVER_SQLITE_BUSY_TIMEOUT_MS": busy_ms, "LEVER_WRITE_TIMEOUT_MS": write_ms})
        modes[busy_ms] = store._group_commit.leader
        store.close()
    assert modes == {5000: True, 8000: False}  # 2 lock waits of 8 s could outlast a 10 s deadline
    store = open_storage(url, {"LEVER_GROUP_COMMIT_LEADER": False})
    assert store._group_commit.leader is False
    store.close()
