"""Every malformed, oversized or unknown request gets a 4xx JSON error and writes nothing."""
from __future__ import annotations

import json

import pytest

from .dbutil import query

LONG = "x" * 201


def count_rows(app) -> tuple[int, int]:
    url = app.config["DATABASE_URL"]
    return (query(url, "SELECT COUNT(*) FROM assignments")[0][0],
            query(url, "SELECT COUNT(*) FROM rewards")[0][0])


def _assign(**fields):
    return {"experiment": "hero", "visitor": "v1", **fields}


CASES = [
    # (name, path, raw body, expected status, expected error code)
    ("not json", "/api/v1/assign", b"{oops", 400, "invalid_json"),
    ("empty body", "/api/v1/assign", b"", 400, "invalid_json"),
    ("json array", "/api/v1/assign", json.dumps([1, 2]).encode(), 400, "invalid_json"),
    ("json string", "/api/v1/assign", b'"hello"', 400, "invalid_json"),
    ("no experiment", "/api/v1/assign", json.dumps({"visitor": "v"}).encode(), 400, "invalid_request"),
    ("both experiment and experiments", "/api/v1/assign",
     json.dumps(_assign(experiments=["hero"])).encode(), 400, "invalid_request"),
    ("bad experiment key", "/api/v1/assign", json.dumps(_assign(experiment="Not A Key")).encode(), 400, "invalid_request"),
    ("unknown experiment", "/api/v1/assign", json.dumps(_assign(experiment="missing")).encode(), 404,
     "experiment_not_found"),
    ("visitor missing", "/api/v1/assign", json.dumps({"experiment": "hero"}).encode(), 400, "invalid_request"),
    ("visitor empty", "/api/v1/assign", json.dumps(_assign(visitor="")).encode(), 400, "invalid_request"),
    ("visitor number", "/api/v1/assign", json.dumps(_assign(visitor=12)).encode(), 400, "invalid_request"),
    ("visitor too long", "/api/v1/assign", json.dumps(_assign(visitor=LONG)).encode(), 400, "invalid_request"),
    ("context not object", "/api/v1/assign", json.dumps(_assign(context=[1])).encode(), 400, "invalid_request"),
    ("too many context keys", "/api/v1/assign",
     json.dumps(_assign(context={f"k{i}": i for i in range(51)})).encode(), 400, "invalid_request"),
    ("context string too long", "/api/v1/assign", json.dumps(_assign(context={"a": LONG})).encode(), 400,
     "invalid_request"),
    ("context nested object", "/api/v1/assign", json.dumps(_assign(context={"a": {"b": 1}})).encode(), 400,
     "invalid_request"),
    ("context list", "/api/v1/assign", json.dumps(_assign(context={"a": [1]})).encode(), 400, "invalid_request"),
    ("context NaN", "/api/v1/assign", b'{"experiment":"hero","visitor":"v","context":{"a":NaN}}', 400,
     "invalid_request"),
    ("context Infinity", "/api/v1/assign", b'{"experiment":"hero","visitor":"v","context":{"a":Infinity}}', 400,
     "invalid_request"),
    ("context huge number", "/api/v1/assign", b'{"experiment":"hero","visitor":"v","context":{"a":1e999}}', 400,
     "invalid_request"),
    ("context empty key", "/api/v1/assign", json.dumps(_assign(context={"": 1})).encode(), 400, "invalid_request"),
    ("unknown field", "/api/v1/assign", json.dumps(_assign(extra=1)).encode(), 400, "invalid_request"),
    ("batch too large", "/api/v1/assign",
     json.dumps({"experiments": [f"e{i}" for i in range(21)], "visitor": "v"}).encode(), 400, "invalid_request"),
    ("batch empty", "/api/v1/assign", json.dumps({"experiments": [], "visitor": "v"}).encode(), 400, "invalid_request"),
    ("batch repeated", "/api/v1/assign", json.dumps({"experiments": ["hero", "hero"], "visitor": "v"}).encode(), 400,
     "invalid_request"),
    ("body over 16 KB", "/api/v1/assign", json.dumps(_assign(context={"a": "x" * 17000})).encode(), 413,
     "payload_too_large"),
    ("reward not json", "/api/v1/reward", b"[", 400, "invalid_json"),
    ("reward nothing", "/api/v1/reward", b"{}", 400, "invalid_request"),
    ("reward token number", "/api/v1/reward", json.dumps({"assignment": 5}).encode(), 400, "invalid_request"),
    ("reward bad token", "/api/v1/reward", json.dumps({"assignment": "abc"}).encode(), 400, "invalid_assignment_token"),
    ("reward value string", "/api/v1/reward", json.dumps({"experiment": "hero", "visitor": "v", "value": "1"}).encode(),
     400, "invalid_request"),
    ("reward value NaN", "/api/v1/reward", b'{"experiment":"hero","visitor":"v","value":NaN}', 400, "invalid_request"),
    ("reward value bool", "/api/v1/reward", json.dumps({"experiment": "hero", "visitor": "v", "value": True}).encode(),
     400, "invalid_request"),
    ("reward event_id too long", "/api/v1/reward",
     json.dumps({"experiment": "hero", "visitor": "v", "event_id": "e" * 129}).encode(), 400, "invalid_request"),
    ("reward token and visitor", "/api/v1/reward", json.dumps({"assignment": "a", "visitor": "v"}).encode(), 400,
     "invalid_request"),
    ("reward unknown visitor", "/api/v1/reward", json.dumps({"experiment": "hero", "visitor": "nobody"}).encode(), 404,
     "assignment_not_found"),
    ("reward unknown experiment", "/api/v1/reward", json.dumps({"experiment": "nope", "visitor": "v"}).encode(), 404,
     "experiment_not_found"),
    ("reward binary value 2", "/api/v1/reward", json.dumps({"experiment": "hero", "visitor": "known", "value": 2}).encode(),
     400, "invalid_reward_value"),
    ("unknown route", "/api/v1/nothing", b"{}", 404, "not_found"),
    ("wrong method", "/api/v1/healthz", b"{}", 404, "not_found"),
]


@pytest.mark.parametrize("name, path, raw, status, code", CASES, ids=[c[0] for c in CASES])
def test_bad_request_table(client, make_experiment, app, admin, name, path, raw, status, code):
    make_experiment()
    client.post("/api/v1/assign", json={"experiment": "hero", "visitor": "known"})
    before = count_rows(app)
    # with a credential: rewards by visitor id need one (the public endpoints ignore it otherwise)
    response = client.post(path, data=raw, content_type="application/json", headers=admin)
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == code and body["error"]["message"]
    assert count_rows(app) == before


def test_get_on_assign_is_405_json(client):
    response = client.get("/api/v1/assign")
    assert response.status_code == 405
    assert response.get_json()["error"]["code"] == "method_not_allowed"
