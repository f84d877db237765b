"""Issue: a NUL in a visitor id was a 500 on PostgreSQL (text cannot hold NUL) and stored as-is
on SQLite. Control characters (C0, DEL, C1) and lone surrogates are refused in every
identifier and stored string with a 400 ``invalid_characters``, the same on both backends."""
from __future__ import annotations

import json
from urllib.parse import quote

import pytest

from app.domain.errors import ValidationError
from app.domain.requests import identifier

from .dbutil import query
from .hostile import assert_error, assert_still_works, strict_json

BAD = ["a\u0000b", "\u0001", "tab\there", "new\nline", "del\u007f", "c1\u0085", "c1\u009f", "\u001b[31m"]


def count(app) -> tuple[int, int]:
    url = app.config["DATABASE_URL"]
    return query(url, "SELECT COUNT(*) FROM assignments")[0][0], query(url, "SELECT COUNT(*) FROM rewards")[0][0]


@pytest.fixture
def hero(make_experiment, client):
    make_experiment("hero", reward="numeric")
    token = client.post("/api/v1/assign", json={"experiment": "hero", "visitor": "known"}).get_json()["assignment"]
    return token


def post(client, path: str, body: dict):
    # json.dumps escapes the control characters (\u0000), as a browser's JSON.stringify does
    return client.post(path, data=json.dumps(body), content_type="application/json")


@pytest.mark.parametrize("bad", BAD, ids=[repr(b) for b in BAD])
def test_control_characters_are_refused_everywhere(client, app, admin, hero, bad):
    before = count(app)
    cases = [
        ("/api/v1/assign", {"experiment": "hero", "visitor": bad}),
        ("/api/v1/assign", {"experiments": ["hero"], "visitor": bad}),
        ("/api/v1/assign", {"experiment": "hero", "visitor": "v", "context": {bad: 1}}),
        ("/api/v1/assign", {"experiment": "hero", "visitor": "v", "context": {"k": bad}}),
        ("/api/v1/reward", {"experiment": "hero", "visitor": bad, "value": 1}),
        ("/api/v1/reward", {"assignment": hero, "value": 1, "event_id": bad}),
        ("/api/v1/reward", {"experiment": "hero", "visitor": "known", "value": 1, "event_id": bad}),
    ]
    for path, body in cases:
        assert_error(post(client, path, body), 400, "invalid_characters")
    for method in (client.get, client.delete):  # werkzeug's path converter does not match a newline: 404
        error = assert_error(method(f"/api/v1/visitors/{quote(bad)}", headers=admin))
        assert error["code"] == ("not_found" if "\n" in bad else "invalid_characters")
    assert count(app) == before
    assert_still_works(client, admin, "hero")


@pytest.mark.parametrize("field, value", [
    ("name", "Hero\u0000"),
    ("allowed_origins", ["https://a.example\u0000"]),
    ("context", [{"name": "device", "type": "categorical", "levels": ["mobile\u0000", "desktop"]}]),
])
def test_experiment_definitions_refuse_control_characters(client, admin, field, value):
    body = {"key": "exp", "variants": ["a", "b"], field: value}
    assert_error(post_admin(client, admin, body), 400, "invalid_characters")
    assert client.get("/api/v1/experiments/exp", headers=admin).status_code == 404


def post_admin(client, admin, body):
    return client.post("/api/v1/experiments", data=json.dumps(body), content_type="application/json", headers=admin)


def test_a_lone_surrogate_is_refused(client, app, hero):
    before = count(app)
    for text in ('{"experiment": "hero", "visitor": "a\\ud800b"}',
                 '{"experiment": "hero", "visitor": "v", "context": {"\\udfff": 1}}'):
        assert_error(client.post("/api/v1/assign", data=text, content_type="application/json"), 400)
    assert count(app) == before


NICE = ["Zoë", "日本語-ユーザー", "🙂 visitor", "ж" * 200, "a b", "\u00a0nbsp", "x\u200by", "e\u0301"]


@pytest.mark.parametrize("visitor", NICE)
def test_printable_unicode_is_accepted_and_round_trips(client, admin, hero, visitor):
    assigned = post(client, "/api/v1/assign", {"experiment": "hero", "visitor": visitor, "context": {"city": visitor}})
    assert assigned.status_code == 200, assigned.get_json()
    exported = client.get(f"/api/v1/visitors/{quote(visitor)}", headers=admin)
    assert exported.status_code == 200
    body = strict_json(exported)
    assert body["visitor"] == visitor and body["assignments"][0]["context"] == {"city": visitor}
    erased = client.delete(f"/api/v1/visitors/{quote(visitor)}", headers=admin)
    assert erased.get_json()["erased_assignments"] == 1


def test_identifier_is_the_one_validator():
    assert identifier("visitor-1", "visitor") == "visitor-1"
    for bad in [*BAD, "\ud800", "a\udc00"]:
        with pytest.raises(ValidationError) as raised:
            identifier(bad, "visitor")
        assert raised.value.code == "invalid_characters" and "visitor" in raised.value.message
