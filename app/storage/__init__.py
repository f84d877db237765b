"""The storage package owns the database: which backend, its lifecycle per app and request.

``open_storage`` picks the backend from the URL scheme (a registry, not a chain of
ifs); ``init_app`` attaches one storage object to the app and releases request-scoped
resources at the end of every request; ``get_storage`` is what views call.
"""
from __future__ import annotations

from typing import Any, Callable

from flask import Flask, current_app

from .base import (
    ArmTotals,
    DuplicateKey,
    LearningSnapshot,
    NewAssignment,
    PrunedLog,
    RewardResult,
    Storage,
    StorageBusy,
    StorageError,
    StorageOutcomeUnknown,
    StoredAssignment,
)
from .sqlite import SQLiteStorage


def _sqlite(url: str, settings: dict[str, Any]) -> Storage:
    return SQLiteStorage(url, synchronous=settings.get("LEVER_SQLITE_SYNCHRONOUS", "NORMAL"),
                         busy_timeout_ms=settings.get("LEVER_SQLITE_BUSY_TIMEOUT_MS", 5000))


def _postgres(url: str, settings: dict[str, Any]) -> Storage:
    from .postgres import PostgresStorage  # imported only when configured: psycopg is optional

    return PostgresStorage(url)


BACKENDS: dict[str, Callable[[str, dict[str, Any]], Storage]] = {
    "sqlite": _sqlite,
    "postgres": _postgres,
    "postgresql": _postgres,
}


def open_storage(url: str, settings: dict[str, Any] | None = None) -> Storage:
    scheme = url.split(":", 1)[0]
    if scheme not in BACKENDS:
        raise ValueError(f"unsupported database URL scheme {scheme!r}")
    return BACKENDS[scheme](url, settings or {})


def get_storage() -> Storage:
    return current_app.extensions["lever.storage"]


def init_app(app: Flask) -> None:
    storage = open_storage(app.config["DATABASE_URL"], app.config)
    app.extensions["lever.storage"] = storage

    @app.teardown_appcontext
    def release_storage(_exception: BaseException | None) -> None:
        storage.release()


__all__ = [
    "ArmTotals", "BACKENDS", "DuplicateKey", "LearningSnapshot", "NewAssignment", "PrunedLog", "RewardResult", "Storage",
    "StorageBusy", "StorageError", "StorageOutcomeUnknown", "StoredAssignment", "get_storage", "init_app", "open_storage",
]
