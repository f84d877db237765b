"""Fixtures in the flaskr style: an app on a fresh database (SQLite, and PostgreSQL when
TEST_DATABASE_URL is set), its client and CLI runner."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest

from app import create_app

from .dbutil import TEST_DATABASE_URL_ENV, backends, fresh_schema

ADMIN_TOKEN = "test-admin-token-0123456789abcdef0123"
SECRET_KEY = "test-secret-key-0123456789abcdef01234567"


@pytest.fixture(params=backends())
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database per test: a SQLite file, and (when TEST_DATABASE_URL is set) a fresh
    PostgreSQL schema. If TEST_DATABASE_URL is set but unreachable, the tests fail (not skip)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'lever.db'}"
        return
    with fresh_schema(os.environ[TEST_DATABASE_URL_ENV]) as url:
        yield url


@pytest.fixture
def app(database_url: str):
    app = create_app({
        "TESTING": True,
        "DATABASE_URL": database_url,
        "LEVER_ADMIN_TOKEN": ADMIN_TOKEN,
        "LEVER_SECRET_KEY": SECRET_KEY,
        "LEVER_REFRESH_MS": 50,
        "LEVER_ENV": "test",
        "LEVER_RATE_LIMIT": "",  # the rate-limit test turns it on
    })
    yield app
    app.extensions["lever.storage"].close()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def admin() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def experiment_body(key: str = "hero", **overrides) -> dict:
    body = {
        "key": key,
        "name": "Hero",
        "mode": "bandit",
        "variants": [{"key": "control", "payload": {"headline": "A"}}, {"key": "b", "payload": {"headline": "B"}}],
        "control": "control",
    }
    body.update(overrides)
    return body


@pytest.fixture
def make_experiment(client, admin):
    def make(key: str = "hero", **overrides) -> dict:
        response = client.post("/api/v1/experiments", json=experiment_body(key, **overrides), headers=admin)
        assert response.status_code == 201, response.get_json()
        return response.get_json()

    return make
