"""Reference endpoints for the HTTP benchmark: what Flask under the same gunicorn costs
before Lever does any work.

* ``GET /healthz``: a JSON answer, no database (Lever's own /healthz also reads one row).
* ``POST /echo``: reads and parses the assign benchmark's JSON body and answers an
  assign-sized JSON body with Lever's CORS headers, deciding and writing nothing.
* ``POST /echo-insert``: the same, after inserting one row per request into a SQLite
  file (WAL, ``synchronous=NORMAL``, the unique sticky index and the visitor index of
  Lever's ``assignments``, checkpoints in the background as Lever does) and committing
  it — the least an assign that is logged before it is acknowledged can do. The file is
  ``REFERENCE_DB`` (a temporary one by default).

Read top to bottom, the rows split assign's cost: what any JSON POST pays in this stack
(``/healthz`` → ``/echo``), one committed row per request (→ ``/echo-insert``), and
Lever's own work — policy, sticky lookup, validation, token (→ ``/api/v1/assign``).
"""
from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import tempfile
import time

from flask import Flask, Response, jsonify, request

from app.storage.sqlite import AUTOCHECKPOINT_PAGES, WalCheckpointer

app = Flask(__name__)
app.json.sort_keys = False

_TOKEN = "MTIzNDU2OmJlbmNoOmI6YWJjZGVmMDEyMzQ1Njc4OQ.q6r7s8t9u0v1w2x3y4z5A6B7C8D9E0F1G2H3I4J5K6L"  # assign's length


_DATABASE = os.environ.get("REFERENCE_DB") or os.path.join(tempfile.mkdtemp(), "reference.db")
_connection: tuple[int, sqlite3.Connection, int] | None = None  # (pid, connection, lock file descriptor)


def _database() -> tuple[sqlite3.Connection, int]:
    """This worker's connection and the writers' lock file (as Lever's SQLite storage does)."""
    global _connection
    if _connection is None or _connection[0] != os.getpid():
        conn = sqlite3.connect(_DATABASE, isolation_level=None, timeout=5)
        lock = os.open(_DATABASE + ".lock", os.O_RDWR | os.O_CREAT)
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, experiment TEXT, visitor TEXT, "
                         "sticky_key TEXT, context TEXT, created_at REAL)")
            conn.execute("CREATE UNIQUE INDEX IF NOT EXISTS events_sticky ON events (experiment, sticky_key)")
            conn.execute("CREATE INDEX IF NOT EXISTS events_visitor ON events (visitor)")
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(f"PRAGMA wal_autocheckpoint={AUTOCHECKPOINT_PAGES}")
        WalCheckpointer(_DATABASE)
        _connection = (os.getpid(), conn, lock)
    return _connection[1], _connection[2]


def _answer(body: dict, event_id: int = 123456) -> Response:
    return jsonify({"assignment": _TOKEN, "experiment": body["experiment"], "variant": "b", "payload": {},
                    "propensity": 0.3333333333333333, "holdout": False, "model_version": event_id,
                    "status": "running", "sticky": False})


@app.get("/healthz")
def healthz():
    return jsonify({"status": "ok", "worker": os.getpid()})


@app.post("/echo")
def echo():
    return _answer(json.loads(request.get_data()))


@app.post("/echo-insert")
def echo_insert():
    body = json.loads(request.get_data())
    conn, lock = _database()
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        conn.execute("BEGIN IMMEDIATE")
        cursor = conn.execute(
            "INSERT INTO events (experiment, visitor, sticky_key, context, created_at) VALUES (?, ?, ?, ?, ?)",
            (body["experiment"], body["visitor"], body["visitor"], json.dumps(body.get("context")), time.time()))
        conn.execute("COMMIT")
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
    return _answer(body, cursor.lastrowid)


@app.after_request
def cors(response: Response) -> Response:
    response.headers["Access-Control-Allow-Origin"] = request.headers.get("Origin") or "*"
    response.headers.extend((("Access-Control-Allow-Methods", "POST, OPTIONS"),
                             ("Access-Control-Allow-Headers", "Content-Type"), ("Access-Control-Max-Age", "86400")))
    response.headers["Vary"] = "Origin"
    return response
