"""Test helpers that look at (or poke) the database directly, for either backend.

``query`` runs one statement and commits; placeholders are written ``?`` as in SQLite and
translated to ``%s`` for PostgreSQL. Integral ``Decimal`` results (PostgreSQL's SUM of an
integer column) come back as ``int`` and other decimals as ``float``, so assertions read
the same for both backends.

``fresh_schema`` gives a test its own empty PostgreSQL schema: a URL whose
``options=-csearch_path=<schema>`` points every connection at it, dropped afterwards.
"""
from __future__ import annotations

import os
import sqlite3
import uuid
from contextlib import contextmanager
from decimal import Decimal
from typing import Any, Iterator, Sequence
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

TEST_DATABASE_URL_ENV = "TEST_DATABASE_URL"


def backends() -> list[str]:
    """SQLite always; PostgreSQL too when TEST_DATABASE_URL is set."""
    return ["sqlite", "postgres"] if os.environ.get(TEST_DATABASE_URL_ENV) else ["sqlite"]


def is_postgres(database_url: str) -> bool:
    return database_url.startswith(("postgres://", "postgresql://"))


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, memoryview):
        return bytes(value)
    return value


def query(database_url: str, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
    """Run one statement, commit, and return its rows (empty for statements without any)."""
    if is_postgres(database_url):
        import psycopg

        with psycopg.connect(database_url, autocommit=True) as conn:
            cursor = conn.execute(sql.replace("%", "%%").replace("?", "%s"), tuple(params))
            rows = cursor.fetchall() if cursor.description else []
        return [tuple(_plain(v) for v in row) for row in rows]
    path = database_url[len("sqlite:///"):]
    conn = sqlite3.connect(path)
    try:
        with conn:
            return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def _with_schema(base_url: str, schema: str, durable: bool) -> str:
    parts = urlsplit(base_url)
    params = [(k, v) for k, v in parse_qsl(parts.query) if k not in ("options", "application_name")]
    options = f"-csearch_path={schema}" + ("" if durable else " -csynchronous_commit=off")
    params += [("options", options), ("application_name", schema)]
    return urlunsplit(parts._replace(query=urlencode(params, quote_via=quote)))  # libpq: %20, not +


def drop_schema(base_url: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(base_url, autocommit=True) as conn:
        # connections a test left open (an app it did not close) would hold locks on the schema
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                     "WHERE application_name = %s AND pid <> pg_backend_pid()", (schema,))
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@contextmanager
def fresh_schema(base_url: str, durable: bool = False) -> Iterator[str]:
    """A URL for a new, empty schema of ``base_url``'s database; the schema is dropped afterwards.

    Unless ``durable``, its sessions commit with ``synchronous_commit=off`` (like SQLite's
    ``synchronous=NORMAL`` in the other half of the suite): a commit is still atomic and
    visible at once, it just does not wait for the WAL fsync, which no test can observe
    short of crashing the server, and which costs ~3 ms per write on a slow disk.
    """
    import psycopg

    schema = f"lever_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base_url, autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield _with_schema(base_url, schema, durable)
    finally:
        drop_schema(base_url, schema)
