"""PostgreSQL connections killed under load: retry or a 503 JSON error, never a 500 or a partial write.

A real gunicorn (2 sync workers) serves assign and reward requests from 8 client threads
while another thread repeatedly runs ``pg_terminate_backend`` on every backend of the
app (recognised by the test schema's application_name). Afterwards: every acknowledged
assignment and counted reward is in the database and nothing else is (a 503 wrote
nothing), the counters equal the event log, and the service answers normally again
without a restart. Bounded: a fixed number of visitors, 10 s client timeouts, loopback.

And through a loopback proxy that drops every connection at the first COMMIT and refuses
new ones: the outcome cannot be checked, so the answer is 503 ``outcome_unknown`` rather
than a "nothing was written" that nobody could know.
"""
from __future__ import annotations

import os
import socket
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest
import requests

from app import create_app
from app.storage import open_storage

from .conftest import ADMIN_TOKEN, SECRET_KEY, experiment_body
from .dbutil import TEST_DATABASE_URL_ENV, fresh_schema, query
from .servers import gunicorn

pytestmark = pytest.mark.skipif(not os.environ.get(TEST_DATABASE_URL_ENV),
                                reason=f"{TEST_DATABASE_URL_ENV} is not set (PostgreSQL-only test)")

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
ENV = {"LEVER_ADMIN_TOKEN": ADMIN_TOKEN, "LEVER_SECRET_KEY": SECRET_KEY, "LEVER_REFRESH_MS": "100",
       "LEVER_RATE_LIMIT": ""}
VISITORS = 480
KILL_ROUNDS = 25


def _kill_app_backends(base_url: str, application_name: str) -> int:
    with psycopg.connect(base_url, autocommit=True, connect_timeout=5) as conn:
        return len(conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = %s AND pid <> pg_backend_pid()", (application_name,)
        ).fetchall())


def _check_error(response: requests.Response) -> None:
    assert response.status_code == 503, (response.status_code, response.text[:500])
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == "service_unavailable", body


@pytest.mark.slow
def test_killed_connections_retry_or_503_and_never_write_half(tmp_path):
    base_url = os.environ[TEST_DATABASE_URL_ENV]
    # durable commits here: the window in which a kill lands during COMMIT is the real one
    with fresh_schema(base_url, durable=True) as url:
        application_name = parse_qs(urlsplit(url).query)["application_name"][0]
        log_path = tmp_path / "gunicorn.log"
        with gunicorn(url, workers=2, env=ENV, log_path=log_path) as base:
            assert requests.post(f"{base}/api/v1/experiments", json=experiment_body(), headers=ADMIN,
                                 timeout=10).status_code == 201
            assert requests.post(f"{base}/api/v1/experiments",
                                 json=experiment_body("numeric", reward="numeric", sticky=False),
                                 headers=ADMIN, timeout=10).status_code == 201

            statuses: Counter[int] = Counter()
            lock = threading.Lock()
            acknowledged_assigns: set[str] = set()
            counted_rewards: set[str] = set()
            stop = threading.Event()

            def note(response: requests.Response) -> bool:
                with lock:
                    statuses[response.status_code] += 1
                if response.status_code in (200, 202):
                    return True
                _check_error(response)
                return False

            def visitor(i: int) -> None:
                key = "numeric" if i % 2 else "hero"
                with requests.Session() as session:
                    response = session.post(f"{base}/api/v1/assign", json={"experiment": key, "visitor": f"f{i}"},
                                            timeout=10)
                    if not note(response):
                        return
                    token = response.json()["assignment"]
                    with lock:
                        acknowledged_assigns.add(f"f{i}")
                    if i % 3 == 0:
                        body = {"assignment": token, "value": 2.5, "event_id": f"e{i}"} if key == "numeric" \
                            else {"assignment": token}
                        for _ in range(2):  # a client retry: counted at most once
                            response = session.post(f"{base}/api/v1/reward", json=body, timeout=10)
                            if note(response) and response.json()["counted"]:
                                with lock:
                                    assert f"f{i}" not in counted_rewards, "a reward was counted twice"
                                    counted_rewards.add(f"f{i}")

            kills = []

            def killer() -> None:
                for _ in range(KILL_ROUNDS):
                    if stop.wait(0.12):
                        return
                    kills.append(_kill_app_backends(base_url, application_name))

            killer_thread = threading.Thread(target=killer)
            killer_thread.start()
            try:
                with ThreadPoolExecutor(max_workers=8) as pool:
                    list(pool.map(visitor, range(VISITORS)))
            finally:
                stop.set()
                killer_thread.join()

            assert sum(kills) > 0, "no backend was terminated: the test did not test anything"
            assert set(statuses) <= {200, 202, 503}, statuses
            assert statuses[200] > 0

            # acknowledged == stored, exactly: a 503 wrote nothing, a 200 lost nothing
            stored = {row[0] for row in query(url, "SELECT visitor FROM assignments")}
            assert stored == acknowledged_assigns
            rewarded = {row[0] for row in query(
                url, "SELECT a.visitor FROM rewards r JOIN assignments a ON a.id = r.assignment_id")}
            assert rewarded == counted_rewards
            assert query(url, "SELECT COUNT(*) FROM rewards")[0][0] == len(counted_rewards)

            # counters moved in the same transactions as the events
            storage = open_storage(url)
            try:
                for key in ("hero", "numeric"):
                    experiment = storage.get_experiment(key)
                    snapshot = storage.learning_snapshot(experiment.id)
                    assignments, rewards = query(
                        url, "SELECT COUNT(*), COALESCE(SUM(reward_count), 0) FROM assignments "
                             "WHERE experiment_id = ?", (experiment.id,))[0]
                    assert sum(t.assignments for t in snapshot.totals) == assignments
                    assert sum(t.reward_events for t in snapshot.totals) == rewards
            finally:
                storage.close()

            # recovered without a restart: both workers answer, every request succeeds again
            deadline = time.monotonic() + 10
            while True:
                pids = {requests.get(f"{base}/healthz", timeout=5).json().get("worker") for _ in range(16)}
                if len(pids - {None}) == 2 or time.monotonic() > deadline:
                    break
            with requests.Session() as session:
                after = [session.post(f"{base}/api/v1/assign", json={"experiment": "hero", "visitor": f"after{i}"},
                                      timeout=10).status_code for i in range(40)]
            assert after == [200] * 40

        log = log_path.read_text(errors="replace")
        assert "Traceback" not in log, log[-4000:]
        print(f"\nstatuses {dict(statuses)}, backends terminated {sum(kills)} in {len(kills)} rounds, "
              f"retries logged {log.count('retrying')}, commits confirmed {log.count('commit confirmed')}")


class CommitCuttingProxy:
    """A TCP forwarder on loopback to the test PostgreSQL. Once ``armed``, the first client
    message that carries ``COMMIT`` is not forwarded: every forwarded connection is closed
    and the proxy stops accepting — a database that vanishes during a commit."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.armed = threading.Event()
        self.cut = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.cut.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target, timeout=5)
            with self._lock:
                self._sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, from_client: bool) -> None:
        try:
            while data := source.recv(65536):
                if from_client and self.armed.is_set() and b"COMMIT\x00" in data:
                    self._cut()
                    return
                sink.sendall(data)
        except OSError:
            pass

    def _cut(self) -> None:
        self.cut.set()
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()

    def close(self) -> None:
        if not self.cut.is_set():
            self._cut()


def test_a_commit_whose_outcome_cannot_be_checked_is_a_503_outcome_unknown_not_nothing_written():
    base_url = os.environ[TEST_DATABASE_URL_ENV]
    with fresh_schema(base_url) as url:
        parts = urlsplit(url)
        proxy = CommitCuttingProxy((parts.hostname or "127.0.0.1", parts.port or 5432))
        proxied = url.replace(f"{parts.hostname}:{parts.port or 5432}", f"127.0.0.1:{proxy.port}", 1)
        app = create_app({"TESTING": True, "DATABASE_URL": proxied, "LEVER_ADMIN_TOKEN": ADMIN_TOKEN,
                          "LEVER_SECRET_KEY": SECRET_KEY, "LEVER_ENV": "test", "LEVER_RATE_LIMIT": ""})
        try:
            client = app.test_client()
            assert client.post("/api/v1/experiments", json=experiment_body(), headers=ADMIN).status_code == 201
            assert client.post("/api/v1/assign", json={"experiment": "hero", "visitor": "before"}).status_code == 200
            proxy.armed.set()
            started = time.monotonic()
            response = client.post("/api/v1/assign", json={"experiment": "hero", "visitor": "during"})
            assert proxy.cut.is_set()
            assert response.status_code == 503, response.get_data(as_text=True)
            assert response.get_json()["error"]["code"] == "outcome_unknown"
            assert time.monotonic() - started < 30  # bounded: the settle deadline and the pool timeout
        finally:
            proxy.close()
            app.extensions["lever.storage"].close()
        # what really happened: the COMMIT never reached the server, so "may or may not" was the honest answer
        assert query(url, "SELECT visitor FROM assignments ORDER BY id") == [("before",)]
