"""Admin experiments API: create, list, read, patch; auth; validation."""
from __future__ import annotations

import pytest

from .conftest import experiment_body


def test_create_returns_the_stored_experiment(client, admin):
    response = client.post("/api/v1/experiments", json=experiment_body(holdout=0.2, min_share=0.05), headers=admin)
    assert response.status_code == 201
    body = response.get_json()
    assert body["key"] == "hero" and body["status"] == "running"
    assert [v["key"] for v in body["variants"]] == ["control", "b"]
    assert body["variants"][1]["payload"] == {"headline": "B"}
    assert body["holdout"] == 0.2 and body["min_share"] == 0.05
    assert client.get("/api/v1/experiments/hero", headers=admin).get_json() == body
    listed = client.get("/api/v1/experiments", headers=admin).get_json()["experiments"]
    assert [e["key"] for e in listed] == ["hero"]


def test_duplicate_key_is_409(client, admin, make_experiment):
    make_experiment()
    response = client.post("/api/v1/experiments", json=experiment_body(), headers=admin)
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "duplicate_key"


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}])
def test_admin_endpoints_need_the_token(client, headers):
    for method, path in (("post", "/api/v1/experiments"), ("get", "/api/v1/experiments"),
                         ("get", "/api/v1/experiments/hero"), ("patch", "/api/v1/experiments/hero"),
                         ("get", "/api/v1/experiments/hero/events.csv")):
        response = getattr(client, method)(path, json={}, headers=headers)
        assert response.status_code == 401, path
        assert response.get_json()["error"]["code"] == "unauthorized"
        assert "Access-Control-Allow-Origin" not in response.headers


def test_ab_weights_are_normalised_and_stored(client, admin):
    body = experiment_body(mode="ab", weights={"control": 3, "b": 1})
    stored = client.post("/api/v1/experiments", json=body, headers=admin).get_json()
    assert stored["weights"] == {"control": 0.75, "b": 0.25}


INVALID_EXPERIMENTS = [
    ({"key": "Bad Key"}, "key"),
    ({"key": "-leading"}, "key"),
    ({"key": "x" * 65}, "key"),
    ({"key": "new"}, "reserved"),  # /experiments/new is the report's create form
    ({"variants": [{"key": "only"}]}, "variants"),
    ({"variants": [{"key": f"v{i}"} for i in range(51)]}, "variants"),
    ({"variants": [{"key": "a"}, {"key": "a"}]}, "unique"),
    ({"variants": [{"key": "a", "payload": []}, {"key": "b"}]}, "payload"),
    ({"control": "nope"}, "control"),
    ({"mode": "magic"}, "mode"),
    ({"reward": "ratio"}, "reward"),
    ({"holdout": 0.6}, "holdout"),
    ({"holdout": -0.1}, "holdout"),
    ({"min_share": 0.6}, "min_share"),
    ({"reward_window_s": 0}, "reward_window_s"),
    ({"reward_window_s": 1.5}, "reward_window_s"),
    ({"sticky": "yes"}, "sticky"),
    ({"weights": {"control": 1, "b": 1}}, "weights"),
    ({"mode": "ab", "weights": {"control": 1}}, "weights"),
    ({"mode": "ab", "weights": {"control": 0, "b": 0}}, "weights"),
    ({"surprise": 1}, "unknown"),
]


@pytest.mark.parametrize("overrides, word", INVALID_EXPERIMENTS)
def test_invalid_definitions_are_400_and_write_nothing(client, admin, overrides, word):
    response = client.post("/api/v1/experiments", json=experiment_body(**overrides), headers=admin)
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "invalid_request" and word in error["message"]
    assert client.get("/api/v1/experiments", headers=admin).get_json()["experiments"] == []


def test_patch_status_and_winner(client, admin, make_experiment):
    make_experiment()
    paused = client.patch("/api/v1/experiments/hero", json={"status": "paused"}, headers=admin)
    assert paused.status_code == 200 and paused.get_json()["status"] == "paused"
    bad = client.patch("/api/v1/experiments/hero", json={"status": "running", "winner": "b"}, headers=admin)
    assert bad.status_code == 400
    unknown = client.patch("/api/v1/experiments/hero", json={"status": "stopped", "winner": "zzz"}, headers=admin)
    assert unknown.status_code == 400
    stopped = client.patch("/api/v1/experiments/hero", json={"status": "stopped", "winner": "b"}, headers=admin)
    assert stopped.get_json()["winner"] == "b"
    assert client.patch("/api/v1/experiments/missing", json={"status": "paused"}, headers=admin).status_code == 404
