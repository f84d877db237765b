"""PostgreSQL's transaction contexts: what a write body tells the runner (``TxInfo``), the
group commit's batch context (``Batch``), the ``Tx`` the shared SQL runs on (``PostgresTx``),
and the dialect's small conversions (placeholders, the ``postgres://`` URL scheme)."""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Sequence

import psycopg

from .base import ModelUpdate, NewAssignment
from .postgres_counters import Counters
from .sql import Rows, Tx


@functools.lru_cache(maxsize=256)
def placeholders(sql: str) -> str:
    """The shared read paths' ``?`` placeholders as psycopg's ``%s``."""
    return sql.replace("?", "%s")


def normalise_url(url: str) -> str:
    """Heroku's ``postgres://`` and the standard ``postgresql://`` are the same to libpq."""
    if url.startswith("postgres://"):
        return "postgresql://" + url[len("postgres://"):]
    return url


@dataclass
class TxInfo:
    """What a write transaction's body tells the runner about itself."""

    #: (table, id) of a row this transaction inserted: proof that it committed
    witness: tuple[str, int] | None = None


@dataclass
class Batch:
    """The transaction context of one group commit (or of one event write without it): its
    items' counter increments and model updates are summed and written once, after every
    item, in the global lock order."""

    conn: psycopg.Connection
    tx: TxInfo
    counters: Counters
    updates: list[tuple[int, int, ModelUpdate]]
    #: new assignments queued by the batch's items, inserted together after every item has run:
    #: (item, its insert parameters, the item's result list, the position to fill in it)
    assignments: list[tuple[NewAssignment, tuple, list, int]] = field(default_factory=list)


class PostgresTx(Tx):
    def __init__(self, conn: psycopg.Connection, tx: TxInfo) -> None:
        self.conn, self.tx = conn, tx

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Rows:
        return self.conn.execute(placeholders(sql), params)

    def insert(self, sql: str, params: Sequence[Any] = ()) -> int:
        table = sql.split()[2]  # INSERT INTO <table> ...
        row_id = int(self.conn.execute(placeholders(sql) + " RETURNING id", params).fetchone()[0])
        self.tx.witness = (table, row_id)
        return row_id
