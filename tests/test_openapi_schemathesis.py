"""Schemathesis against the app in-process (WSGI), driven by the served OpenAPI document.

Every operation gets generated valid and invalid inputs (examples, coverage and fuzzing
phases; a fixed seed, derandomised, no example database, so CI sees the same requests
each run). Checks: no 5xx, status codes / content types / headers / bodies as
documented, invalid input rejected, admin auth enforced, undocumented methods 405. And
no partial writes: whenever the answer is 4xx the database is byte-for-byte unchanged.

A fresh SQLite database is seeded with one experiment per mode (and a paused one) and an
assignment for visitor ``v-123`` in each; hooks swap generated experiment keys, path keys
and tokens for the seeded ones part of the time, so assign, reward, stats, policy and the
CSV export get past their 404s without making a valid input invalid or vice versa.
"""
from __future__ import annotations

import hashlib
import sqlite3

import pytest
import schemathesis
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from app import create_app
from app.domain.experiments import KEY_PATTERN
from app.web.openapi import build_spec
from app.settings import load_settings

from .conftest import ADMIN_TOKEN, SECRET_KEY

MAX_EXAMPLES = 25  # fuzzing examples per operation (the coverage and examples phases add their own)
SEED = 20240501

SEEDED = {
    "homepage-hero": {"mode": "bandit", "holdout": 0.5,
                      "variants": [{"key": "control", "payload": {"headline": "A"}}, {"key": "b"}]},
    "pricing": {"mode": "ab", "reward": "numeric", "variants": ["control", "cheap", "premium"],
                "weights": {"control": 2, "cheap": 1, "premium": 1}},
    "personal": {"mode": "contextual", "variants": ["control", "b"],
                 "context": [{"name": "device", "type": "categorical", "levels": ["mobile", "desktop"]},
                             {"name": "hour", "type": "cyclic", "period": 24}]},
    "on-hold": {"mode": "bandit", "variants": ["control", "b"]},
}
SEEDED_KEYS = tuple(SEEDED)

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance, negative_data_rejection, ignored_auth, unsupported_method]

CONFIG = {
    "seed": SEED,
    "headers": {"Authorization": f"Bearer {ADMIN_TOKEN}"},
    "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
    "phases": {"examples": {"enabled": True}, "coverage": {"enabled": True}, "fuzzing": {"enabled": True},
               "stateful": {"enabled": False}},
}


def _fingerprint(path: str) -> str:
    """A digest of every row of every table: equal digests, unchanged data."""
    digest = hashlib.sha256()
    conn = sqlite3.connect(path)
    try:
        tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        for table in tables:
            digest.update(table.encode())
            for row in conn.execute(f'SELECT * FROM "{table}" ORDER BY rowid'):
                digest.update(repr(row).encode())
    finally:
        conn.close()
    return digest.hexdigest()


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    path = tmp_path_factory.mktemp("schemathesis") / "lever.db"
    app = create_app({
        "TESTING": True, "DATABASE_URL": f"sqlite:///{path}", "LEVER_ADMIN_TOKEN": ADMIN_TOKEN,
        "LEVER_SECRET_KEY": SECRET_KEY, "LEVER_REFRESH_MS": 50, "LEVER_ENV": "test", "LEVER_RATE_LIMIT": "",
    })
    client = app.test_client()
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    tokens = []
    for key, definition in SEEDED.items():
        assert client.post("/api/v1/experiments", json={"key": key, **definition}, headers=admin).status_code == 201
        answer = client.post("/api/v1/assign", json={"experiment": key, "visitor": "v-123",
                                                     "context": {"device": "mobile", "hour": 9}})
        assert answer.status_code == 200, answer.get_json()
        tokens.append(answer.get_json()["assignment"])
    assert client.patch("/api/v1/experiments/on-hold", json={"status": "paused"}, headers=admin).status_code == 200
    TOKENS[:] = tokens
    SEEDED_APP.app = app
    yield app, str(path), tuple(tokens)
    SEEDED_APP.app = None
    app.extensions["lever.storage"].close()


def _seeded_key(value, draw_key):
    """``draw_key`` (seeded) in place of a generated key that is itself valid: validity unchanged."""
    if isinstance(value, str) and KEY_PATTERN.fullmatch(value):
        return draw_key
    return value


#: filled by the ``seeded`` fixture, read by the hooks while examples are generated
TOKENS: list[str] = []


class _SeededApp:
    """The WSGI app schemathesis talks to (its own probes included): the ``seeded`` fixture's app."""

    app = None

    def __call__(self, environ, start_response):
        return self.app(environ, start_response)


SEEDED_APP = _SeededApp()

# The document does not depend on the database: build it from the default settings (the test
# below checks the served one is the same) so pytest can parametrize at collection time.
# (schemathesis.pytest.from_fixture would load it from the app, but fails under pytest 9.2:
# it reads the removed ``Function._nodeid``.)
schema = schemathesis.openapi.from_dict(build_spec(load_settings(environ={})),
                                        config=SchemathesisConfig.from_dict(CONFIG))
schema.app = SEEDED_APP


@schema.hook
def flatmap_path_parameters(context, path_parameters):
    if not isinstance(path_parameters, dict) or "key" not in path_parameters:
        return st.just(path_parameters)
    return st.sampled_from((None,) + SEEDED_KEYS).map(
        lambda k: path_parameters if k is None else {**path_parameters, "key": _seeded_key(path_parameters["key"], k)})


#: experiment-definition options that only fit some other fields (control among the variants,
#: weights for ab only, ...): a valid definition without them is one the service can store
CROSS_FIELD_OPTIONS = ("control", "weights", "decay", "context", "min_share")


@schema.hook
def flatmap_case(context, case):
    body = case.body
    if not isinstance(body, dict):
        return st.just(case)
    positive = case.meta is not None and case.meta.generation.mode.is_positive

    def swap(choice):
        if choice is None:
            return case
        new = dict(body)
        if "experiment" in new:
            new["experiment"] = _seeded_key(new["experiment"], SEEDED_KEYS[choice % len(SEEDED_KEYS)])
        keys = new.get("experiments")
        if isinstance(keys, list) and 0 < len(keys) <= len(SEEDED_KEYS) and len(set(map(str, keys))) == len(keys) \
                and all(isinstance(k, str) and KEY_PATTERN.fullmatch(k) for k in keys):
            new["experiments"] = list(SEEDED_KEYS[:len(keys)])
        if isinstance(new.get("assignment"), str) and new["assignment"] and TOKENS:
            new["assignment"] = TOKENS[choice % len(TOKENS)]
        if isinstance(new.get("visitor"), str) and new["visitor"].strip() and "experiment" in body:
            new["visitor"] = "v-123"
        if positive and "variants" in new:
            for name in CROSS_FIELD_OPTIONS:
                new.pop(name, None)
            if new.get("mode") == "contextual":
                new["mode"] = "bandit"
        case.body = new
        return case

    return st.sampled_from((None, 0, 1, 2, 3)).map(swap)


def test_served_document_is_the_tested_one(seeded):
    app, _, _ = seeded
    assert app.test_client().get("/api/v1/openapi.json").get_json() == schema.raw_schema


@schema.parametrize()
def test_api_conforms_to_its_document(case, seeded):
    app, path, _ = seeded
    before = _fingerprint(path)
    response = case.call()
    status = response.status_code
    case.validate_response(response, checks=CHECKS)
    if 400 <= status < 500:
        assert _fingerprint(path) == before, f"{case.method} {case.formatted_path} answered {status} but wrote"


def test_the_write_check_sees_writes(seeded):
    app, path, _ = seeded
    client = app.test_client()
    before = _fingerprint(path)
    created = client.post("/api/v1/experiments", json={"key": "fingerprint-check", "variants": ["a", "b"]},
                          headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert created.status_code == 201
    after_create = _fingerprint(path)
    assert after_create != before
    response = client.post("/api/v1/assign", json={"experiment": "fingerprint-check", "visitor": "v-fp"})
    assert response.status_code == 200
    assert _fingerprint(path) != after_create
