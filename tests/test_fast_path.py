"""The fast path (``app.web.fast_path``) answers exactly as the Flask views do.

The same scripted conversation, good and hostile requests, goes to two apps that differ only
in ``LEVER_FAST_PATH``, each on its own fresh database with the same secrets and the same
seeded random generator; every answer must be the same: status line, every header in order,
body bytes. The fast-path app counts the requests that reach Flask behind it, so the test
also pins which requests the fast path served itself and which it handed on. Afterwards both
databases hold the same rows. The last test does the same through real gunicorn on loopback,
raw bytes on the socket (only the Date header may differ)."""
from __future__ import annotations

import json
import os
import socket
import sqlite3
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pytest
from flask import Flask

from app import create_app
from app.web.fast_path import FastPath

from .conftest import ADMIN_TOKEN, SECRET_KEY, experiment_body
from .dbutil import TEST_DATABASE_URL_ENV, backends, fresh_schema, query
from .servers import gunicorn
from .teams_helpers import make_key

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
SHOP = "https://shop.example"
MAX_BODY = 2048
SEED = 20261203


class CountingApp:
    """Behind the fast path: records the paths handed to Flask, then lets Flask answer."""

    def __init__(self, flask_app: Callable) -> None:
        self.flask_app = flask_app
        self.paths: list[str] = []

    def __call__(self, environ: dict, start_response: Callable):
        self.paths.append(environ["PATH_INFO"])
        return self.flask_app(environ, start_response)


@dataclass(frozen=True)
class Answer:
    label: str
    status: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    reached_flask: bool

    def json(self) -> Any:
        return json.loads(self.body)


class Conversation:
    """One app's side of the script: every request recorded as an ``Answer``."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.client = app.test_client()
        self.counter = app.wsgi_app.flask_app if isinstance(app.wsgi_app, FastPath) else None
        self.answers: list[Answer] = []

    def send(self, label: str, path: str, body: Any = None, method: str = "POST", headers: dict | None = None,
             content_type: str | None = "application/json", **environ: str) -> Answer:
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        before = len(self.counter.paths) if self.counter else 0
        response = self.client.open(path, method=method, data=data, headers=headers or {}, content_type=content_type,
                                    environ_overrides=environ)
        reached = self.counter is None or len(self.counter.paths) > before
        answer = Answer(label, response.status, tuple(response.headers.items()), response.get_data(), reached)
        self.answers.append(answer)
        return answer


def make_app(database_url: str, fast: bool, **settings: Any) -> Flask:
    # no policy refresh during a test (its timing would differ between the two sides)
    app = create_app({"TESTING": True, "DATABASE_URL": database_url, "LEVER_ADMIN_TOKEN": ADMIN_TOKEN,
                      "LEVER_SECRET_KEY": SECRET_KEY, "LEVER_REFRESH_MS": 600_000, "LEVER_ENV": "test",
                      "LEVER_RATE_LIMIT": "", "LEVER_MAX_BODY_BYTES": MAX_BODY, "LEVER_FAST_PATH": fast, **settings})
    # the same draws on both sides, so the bandit's choices (and so every token) are the same
    app.extensions["lever.services"].rng.bit_generator.state = np.random.default_rng(SEED).bit_generator.state
    assert isinstance(app.wsgi_app, FastPath) == fast
    if fast:
        app.wsgi_app.flask_app = CountingApp(app.wsgi_app.flask_app)
    return app


@pytest.fixture(params=backends())
def two_databases(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fast.db'}", f"sqlite:///{tmp_path / 'flask.db'}"
        return
    url = os.environ[TEST_DATABASE_URL_ENV]
    with fresh_schema(url) as fast, fresh_schema(url) as slow:
        yield fast, slow


@pytest.fixture
def pair_factory(two_databases) -> Iterator[Callable[..., tuple[Conversation, Conversation]]]:
    apps: list[Flask] = []

    def make(**settings: Any) -> tuple[Conversation, Conversation]:
        fast, slow = make_app(two_databases[0], True, **settings), make_app(two_databases[1], False, **settings)
        apps.extend((fast, slow))
        return Conversation(fast), Conversation(slow)

    yield make
    for app in apps:
        app.extensions["lever.storage"].close()


def _prepare(side: Conversation) -> dict[str, dict[str, str]]:
    """Experiments and keys (admin calls: Flask on both sides; not compared, they hold timestamps)."""
    client = side.client
    for body in (experiment_body("hero"), experiment_body("shop", mode="ab", allowed_origins=[SHOP]),
                 experiment_body("paused", mode="ab"), experiment_body("numeric", mode="ab", reward="numeric")):
        assert client.post("/api/v1/experiments", json=body, headers=ADMIN).status_code == 201
    assert client.patch("/api/v1/experiments/paused", json={"status": "paused"}, headers=ADMIN).status_code == 200
    return {role: make_key(client, ADMIN, role)[1] for role in ("ingest", "viewer")}


def _conversation(side: Conversation) -> None:
    """The script. Request bodies may use earlier answers (tokens): the same on both sides."""
    keys = _prepare(side)
    send = side.send
    first = send("assign", "/api/v1/assign", {"experiment": "hero", "visitor": "v1"}).json()
    send("assign sticky", "/api/v1/assign", {"experiment": "hero", "visitor": "v1"})
    send("assign with context", "/api/v1/assign", {"experiment": "hero", "visitor": "v2",
                                                   "context": {"device": "mobile", "visits": 3}})
    send("assign batched", "/api/v1/assign", {"experiments": ["hero", "shop", "paused"], "visitor": "v3"})
    send("assign paused", "/api/v1/assign", {"experiment": "paused", "visitor": "v4"})
    send("assign unknown experiment", "/api/v1/assign", {"experiment": "nope", "visitor": "v4"})
    send("assign allowed origin", "/api/v1/assign", {"experiment": "shop", "visitor": "v5"}, headers={"Origin": SHOP})
    send("assign origin with slash", "/api/v1/assign", {"experiment": "shop", "visitor": "v6"},
         headers={"Origin": SHOP + "/"})
    send("assign wrong origin", "/api/v1/assign", {"experiment": "shop", "visitor": "v7"},
         headers={"Origin": "https://evil.example"})
    send("assign origin null", "/api/v1/assign", {"experiment": "shop", "visitor": "v7"}, headers={"Origin": "null"})
    send("assign long user agent", "/api/v1/assign", {"experiment": "hero", "visitor": "v8"},
         headers={"User-Agent": "ua/" + "x" * 2000})
    for label, body in (("bad JSON", b"{nope"), ("empty body", b""), ("JSON list", b"[1, 2]"),
                        ("deep nesting", b"[" * 1020 + b"]" * 1020), ("NaN", b'{"experiment": NaN}'),
                        ("lone surrogate", b'{"experiment": "hero", "visitor": "\\ud800"}'),
                        ("latin-1 bytes", b'{"experiment": "hero", "visitor": "caf\xe9"}'),
                        ("unknown field", b'{"experiment": "hero", "visitor": "v9", "admin": true}'),
                        ("visitor too long", json.dumps({"experiment": "hero", "visitor": "v" * 500}).encode()),
                        ("both keys", b'{"experiment": "hero", "experiments": ["hero"], "visitor": "v9"}')):
        send(f"assign {label}", "/api/v1/assign", body)
    beacon = {"experiment": "hero", "visitor": "v10"}
    send("assign sendBeacon text/plain", "/api/v1/assign", beacon, content_type="text/plain;charset=UTF-8")
    send("assign form content type", "/api/v1/assign", beacon, content_type="application/x-www-form-urlencoded")
    send("assign multipart content type", "/api/v1/assign", beacon, content_type="multipart/form-data; boundary=x")
    send("assign no content type", "/api/v1/assign", beacon, content_type=None)
    send("assign oversize", "/api/v1/assign", b" " * (MAX_BODY + 1))
    send("assign at the size limit", "/api/v1/assign", json.dumps(beacon).encode().ljust(MAX_BODY))
    send("assign shorter than announced", "/api/v1/assign", b'{"experiment": "hero"', CONTENT_LENGTH="60")
    send("assign GET", "/api/v1/assign", method="GET", content_type=None)
    send("assign PUT", "/api/v1/assign", beacon, method="PUT")
    send("assign trailing slash", "/api/v1/assign/", beacon)
    send("assign query string", "/api/v1/assign?x=1", {"experiment": "hero", "visitor": "v11"})
    for path in ("/api/v1/assign", "/api/v1/reward", "/api/v1/events"):
        send(f"preflight {path}", path, method="OPTIONS", content_type=None,
             headers={"Origin": SHOP, "Access-Control-Request-Method": "POST"})
        send(f"preflight {path} without origin", path, method="OPTIONS", content_type=None)

    token, visitor_token = first["assignment"], first["visitor_token"]
    send("reward", "/api/v1/reward", {"assignment": token, "value": 1, "event_id": "e1"})
    send("reward again (duplicate)", "/api/v1/reward", {"assignment": token, "value": 1, "event_id": "e1"})
    send("reward zero", "/api/v1/reward", {"assignment": token, "value": 0})
    send("reward binary 5", "/api/v1/reward", {"assignment": token, "value": 5})
    send("reward forged token", "/api/v1/reward", {"assignment": token[:-2] + "xx", "value": 1})
    send("reward garbage token", "/api/v1/reward", {"assignment": "not-a-token", "value": 1})
    by_visitor = {"experiment": "hero", "visitor": "v2", "value": 1}
    send("reward by visitor, no credential", "/api/v1/reward", by_visitor)
    send("reward by visitor, unknown key", "/api/v1/reward", by_visitor,
         headers={"Authorization": "Bearer lever_sk_forged0123456789"})
    send("reward by visitor, viewer key", "/api/v1/reward", by_visitor, headers=keys["viewer"])
    send("reward by visitor, ingest key", "/api/v1/reward", {**by_visitor, "event_id": "e2"}, headers=keys["ingest"])
    send("reward by visitor, admin token", "/api/v1/reward", {**by_visitor, "event_id": "e3"}, headers=ADMIN)
    send("reward by visitor, no assignment", "/api/v1/reward", {**by_visitor, "visitor": "nobody"}, headers=ADMIN)
    send("reward numeric out of range", "/api/v1/reward", {"experiment": "numeric", "visitor": "v1", "value": 1e300},
         headers=ADMIN)
    send("reward wrong origin", "/api/v1/reward", {"assignment": token, "value": 1},
         headers={"Origin": "https://evil.example"})

    event = {"name": "purchase", "value": 49.9, "event_id": "o1"}
    send("events", "/api/v1/events", {"visitor": "v1", "visitor_token": visitor_token, "events": [event]})
    send("events duplicate", "/api/v1/events", {"visitor": "v1", "visitor_token": visitor_token, "events": [event]})
    send("events without visitor token", "/api/v1/events", {"visitor": "v1", "events": [event]})
    send("events forged visitor token", "/api/v1/events",
         {"visitor": "v1", "visitor_token": visitor_token[:-2] + "xx", "events": [event]})
    send("events another visitor's token", "/api/v1/events",
         {"visitor": "v2", "visitor_token": visitor_token, "events": [event]})
    send("events ts from a page", "/api/v1/events",
         {"visitor": "v1", "visitor_token": visitor_token, "events": [{"name": "signup", "ts": 1767225600}]})
    backfill = {"visitor": "v1", "events": [{"name": "signup", "event_id": "s1", "ts": 1767225600}]}
    send("events admin backfill", "/api/v1/events", backfill, headers=ADMIN)
    send("events ingest key", "/api/v1/events", {**backfill, "visitor": "v2"}, headers=keys["ingest"])
    send("events viewer key", "/api/v1/events", backfill, headers=keys["viewer"])
    send("events empty bearer", "/api/v1/events", backfill, headers={"Authorization": "Bearer "})
    send("events basic auth", "/api/v1/events", backfill, headers={"Authorization": "Basic YWRtaW46YWRtaW4="})
    send("events forged key", "/api/v1/events", backfill, headers={"Authorization": "Bearer lever_sk_forged"})
    send("events too many", "/api/v1/events",
         {"visitor": "v1", "visitor_token": visitor_token, "events": [{"name": "view"}] * 101})
    send("events bad name", "/api/v1/events",
         {"visitor": "v1", "visitor_token": visitor_token, "events": [{"name": "bad name!"}]})
    send("events bad JSON", "/api/v1/events", b'{"visitor": ')


#: what the fast path hands to Flask: not its routes or methods, or a body it cannot take as is
DELEGATED = {"assign empty body",  # the test client sends no Content-Length for it
             "assign oversize", "assign shorter than announced", "assign GET", "assign PUT", "assign trailing slash"}


def _assert_same(fast: Conversation, slow: Conversation) -> None:
    assert [a.label for a in fast.answers] == [a.label for a in slow.answers]
    for ours, flasks in zip(fast.answers, slow.answers):
        assert (ours.status, ours.headers, ours.body) == (flasks.status, flasks.headers, flasks.body), ours.label


def _rows(database_url: str) -> dict[str, list[tuple]]:
    return {"assignments": query(database_url, "SELECT id, variant_id, visitor, propensity, holdout, model_version "
                                               "FROM assignments ORDER BY id"),
            "rewards": query(database_url, "SELECT assignment_id, value, event_id FROM rewards ORDER BY id"),
            "events": query(database_url, "SELECT visitor, name, value, event_id FROM events ORDER BY id")}


def test_the_fast_path_answers_every_request_as_flask_does(pair_factory, two_databases):
    fast, slow = pair_factory()
    _conversation(fast)
    _conversation(slow)
    _assert_same(fast, slow)
    assert {a.label for a in fast.answers if a.reached_flask} == DELEGATED
    by_label = {a.label: a for a in fast.answers}
    # the script is not vacuous: it reached the answers it is about
    assert by_label["assign"].status == "200 OK" and by_label["reward"].status == "202 ACCEPTED"
    assert by_label["events"].json() == {"accepted": 1, "duplicates": 0}
    for label, code in (("assign bad JSON", "invalid_json"), ("assign lone surrogate", "invalid_json"),
                        ("assign oversize", "payload_too_large"), ("assign wrong origin", "origin_not_allowed"),
                        ("reward forged token", "invalid_assignment_token"),
                        ("reward by visitor, no credential", "unauthorized"),
                        ("reward by visitor, viewer key", "insufficient_role"),
                        ("events forged key", "unauthorized"), ("events viewer key", "insufficient_role")):
        assert by_label[label].json()["error"]["code"] == code, label
    assert by_label["preflight /api/v1/events"].status == "204 NO CONTENT"
    assert dict(by_label["assign allowed origin"].headers)["Access-Control-Allow-Origin"] == SHOP
    fast_rows, slow_rows = _rows(two_databases[0]), _rows(two_databases[1])
    assert fast_rows == slow_rows and len(fast_rows["assignments"]) >= 8 and len(fast_rows["events"]) == 3


def _without_retry_after(answer: Answer) -> tuple:
    return answer.status, tuple(h for h in answer.headers if h[0] != "Retry-After"), answer.body


def test_both_paths_count_in_one_rate_limit_window(pair_factory):
    fast, slow = pair_factory(LEVER_RATE_LIMIT="4/minute")
    for side in (fast, slow):
        _prepare(side)
        side.send("preflight (free)", "/api/v1/assign", method="OPTIONS", content_type=None)
        first = side.send("assign 1", "/api/v1/assign", {"experiment": "hero", "visitor": "r1"}).json()
        side.send("reward 2", "/api/v1/reward", {"assignment": first["assignment"]})
        side.send("oversize 3 (Flask, counted)", "/api/v1/assign", b" " * (MAX_BODY + 1))
        side.send("events 4", "/api/v1/events", {"visitor": "r1", "visitor_token": first["visitor_token"],
                                                  "events": [{"name": "view"}]})
        side.send("assign 5", "/api/v1/assign", {"experiment": "hero", "visitor": "r2"})
        side.send("bad JSON 6", "/api/v1/events", b"{")
        side.send("oversize 7", "/api/v1/assign", b" " * (MAX_BODY + 1))
        side.send("preflight still free", "/api/v1/reward", method="OPTIONS", content_type=None)
        side.send("another address", "/api/v1/assign", {"experiment": "hero", "visitor": "r3"},
                  REMOTE_ADDR="192.0.2.7")
    assert [_without_retry_after(a) for a in fast.answers] == [_without_retry_after(a) for a in slow.answers]
    assert [a.status[:3] for a in fast.answers] == ["204", "200", "202", "413", "202", "429", "429", "429", "204",
                                                    "200"]
    limited = [a for a in fast.answers + slow.answers if a.status.startswith("429")]
    assert all(a.json()["error"]["code"] == "rate_limited" for a in limited)
    assert all(1 <= int(dict(a.headers)["Retry-After"]) <= 60 for a in limited)
    assert [a.label for a in fast.answers if a.reached_flask] == ["oversize 3 (Flask, counted)", "oversize 7"]


def test_a_failed_write_is_the_same_503_and_writes_nothing(pair_factory, two_databases):
    if not two_databases[0].startswith("sqlite"):
        pytest.skip("the lock is SQLite's (PostgreSQL's failures: tests/test_postgres_faults.py)")
    fast, slow = pair_factory(LEVER_SQLITE_BUSY_TIMEOUT_MS=200)
    for side, url in ((fast, two_databases[0]), (slow, two_databases[1])):
        _prepare(side)
        first = side.send("assign", "/api/v1/assign", {"experiment": "hero", "visitor": "f1"}).json()
        holder = sqlite3.connect(url[len("sqlite:///"):], isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        try:
            side.send("assign locked", "/api/v1/assign", {"experiment": "hero", "visitor": "f2"})
            side.send("reward locked", "/api/v1/reward", {"assignment": first["assignment"]})
            side.send("events locked", "/api/v1/events", {"visitor": "f1", "visitor_token": first["visitor_token"],
                                                           "events": [{"name": "view"}]})
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        side.send("assign after", "/api/v1/assign", {"experiment": "hero", "visitor": "f3"})
    _assert_same(fast, slow)
    assert [a.status[:3] for a in fast.answers] == ["200", "503", "503", "503", "200"]
    assert fast.answers[1].json()["error"]["code"] == "service_unavailable"
    assert _rows(two_databases[0]) == _rows(two_databases[1])
    assert [row[2] for row in _rows(two_databases[0])["assignments"]] == ["f1", "f3"]
    assert _rows(two_databases[0])["rewards"] == [] and _rows(two_databases[0])["events"] == []


def test_flask_serves_alone_when_the_fast_path_is_off_or_the_hooks_are_unknown(tmp_path):
    app = make_app(f"sqlite:///{tmp_path / 'a.db'}", False)
    assert not isinstance(app.wsgi_app, FastPath)
    app.before_request(lambda: None)  # a hook the fast path would not run: it must step aside
    assert FastPath(app, app.wsgi_app).routes == {}
    app.extensions["lever.storage"].close()
    on = make_app(f"sqlite:///{tmp_path / 'b.db'}", True)
    assert set(on.wsgi_app.routes) == {"/api/v1/assign", "/api/v1/reward", "/api/v1/events"}
    on.extensions["lever.storage"].close()


def _allow_sorted(line: bytes) -> bytes:
    """werkzeug lists a 405's Allow methods in set order, which differs between processes."""
    name, _, methods = line.partition(b": ")
    return name + b": " + b", ".join(sorted(methods.split(b", ")))


def _raw(base: str, request: bytes) -> bytes:
    """One request on its own connection; the whole answer, Date header removed (Allow sorted)."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(request)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    lines = [_allow_sorted(line) if line.lower().startswith(b"allow:") else line
             for line in head.split(b"\r\n") if not line.lower().startswith(b"date:")]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def _post(path: str, body: bytes, *headers: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close", *headers]
    if not any(h.lower().startswith("transfer-encoding") for h in headers):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def test_gunicorn_answers_the_same_bytes_on_the_wire(tmp_path):
    env = {"LEVER_ADMIN_TOKEN": ADMIN_TOKEN, "LEVER_SECRET_KEY": SECRET_KEY, "LEVER_RATE_LIMIT": "",
           "LEVER_MAX_BODY_BYTES": str(MAX_BODY)}
    paused = json.dumps({"experiment": "paused", "visitor": "w1"}).encode()
    requests = [
        _post("/api/v1/assign", paused, f"Origin: {SHOP}", "Content-Type: application/json"),
        _post("/api/v1/assign", paused, "Content-Type: text/plain"),
        _post("/api/v1/assign", b"{nope"),
        _post("/api/v1/assign", b'{"experiment": "nope", "visitor": "w1"}'),
        _post("/api/v1/assign", b" " * (MAX_BODY + 1)),
        _post("/api/v1/assign", b"%x\r\n%s\r\n0\r\n\r\n" % (len(paused), paused), "Transfer-Encoding: chunked"),
        _post("/api/v1/reward", b'{"assignment": "forged", "value": 1}', "Origin: https://evil.example"),
        _post("/api/v1/events", b'{"visitor": "w1", "events": [{"name": "view"}]}'),
        _post("/api/v1/events", b'{"visitor": "w1", "events": [{"name": "view"}]}', "Authorization: Bearer nope"),
        b"OPTIONS /api/v1/events HTTP/1.1\r\nHost: x\r\nConnection: close\r\nOrigin: https://a.example\r\n\r\n",
        b"GET /api/v1/assign HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    ]
    answers = []
    with ExitStack() as stack:
        for number, fast in enumerate(("true", "false")):
            base = stack.enter_context(gunicorn(f"sqlite:///{tmp_path / f'{number}.db'}", workers=1,
                                                env={**env, "LEVER_FAST_PATH": fast}))
            created = _raw(base, _post("/api/v1/experiments", json.dumps(experiment_body("paused")).encode(),
                                       f"Authorization: Bearer {ADMIN_TOKEN}"))
            assert created.startswith(b"HTTP/1.1 201")
            patch = _post("/api/v1/experiments/paused", b'{"status": "paused"}',
                          f"Authorization: Bearer {ADMIN_TOKEN}")
            assert _raw(base, patch.replace(b"POST", b"PATCH", 1)).startswith(b"HTTP/1.1 200")
            answers.append([_raw(base, request) for request in requests])
    for request, ours, flasks in zip(requests, *answers):
        assert ours == flasks, request
    assert [a.split(b" ", 2)[1] for a in answers[0]] == [b"200", b"200", b"400", b"404", b"413", b"200", b"400",
                                                         b"403", b"401", b"204", b"405"]
