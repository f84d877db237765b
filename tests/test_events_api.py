"""POST /api/v1/events: visitor tokens, idempotency, limits, backfill, learning from the
primary metric, erasure/export/retention of events — on both backends."""
from __future__ import annotations

import time

import pytest

from app import create_app

from .conftest import ADMIN_TOKEN, SECRET_KEY, experiment_body


def _assign(client, visitor="v-1", experiment="hero"):
    response = client.post("/api/v1/assign", json={"experiment": experiment, "visitor": visitor})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def _events(client, body, headers=None):
    return client.post("/api/v1/events", json=body, headers=headers or {})


def test_visitor_token_is_required_and_bound_to_the_visitor(client, make_experiment):
    make_experiment()
    mine = _assign(client, "v-1")["visitor_token"]
    other = _assign(client, "v-2")["visitor_token"]
    event = [{"name": "purchase", "value": 49.9, "event_id": "order-991"}]
    missing = _events(client, {"visitor": "v-1", "events": event})
    assert missing.status_code == 403 and missing.get_json()["error"]["code"] == "visitor_token_required"
    for token in (other, mine[:-2] + "xx", "garbage"):
        refused = _events(client, {"visitor": "v-1", "visitor_token": token, "events": event})
        assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "invalid_visitor_token"
    ok = _events(client, {"visitor": "v-1", "visitor_token": mine, "events": event})
    assert ok.status_code == 202 and ok.get_json() == {"accepted": 1, "duplicates": 0}
    assert ok.headers["Access-Control-Allow-Origin"] == "*"
    again = _events(client, {"visitor": "v-1", "visitor_token": mine, "events": event + event})
    assert again.get_json() == {"accepted": 0, "duplicates": 2}
    batch = client.post("/api/v1/assign", json={"experiments": ["hero"], "visitor": "v-1"}).get_json()
    assert batch["visitor_token"] == mine == batch["assignments"][0]["visitor_token"]


def test_the_assignment_token_is_no_visitor_token(client, make_experiment):
    make_experiment()
    assignment = _assign(client)["assignment"]
    response = _events(client, {"visitor": "v-1", "visitor_token": assignment, "events": [{"name": "x"}]})
    assert response.status_code == 403


@pytest.mark.parametrize("body, word", [
    ({"visitor": "v", "events": []}, "events"),
    ({"visitor": "v", "events": [{"name": "x"}] * 101}, "at most 100"),
    ({"visitor": "v", "events": [{"name": "bad name"}]}, "events[0].name"),
    ({"visitor": "v", "events": [{"name": "x", "value": "1"}]}, "events[0].value"),
    ({"visitor": "v", "events": [{"name": "x", "colour": 1}]}, "colour"),
    ({"visitor": "", "events": [{"name": "x"}]}, "visitor"),
    ({"visitor": "v", "events": [{"name": "x", "event_id": ""}]}, "event_id"),
])
def test_bad_events_are_400_and_write_nothing(app, client, body, word):
    response = _events(client, body, {"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert response.status_code == 400, response.get_json()
    assert word in response.get_json()["error"]["message"]
    assert app.extensions["lever.services"].storage._read("SELECT COUNT(*) FROM events")[0][0] == 0


def test_non_finite_value_is_refused(client, admin):
    response = client.post("/api/v1/events", data='{"visitor": "v", "events": [{"name": "x", "value": NaN}]}',
                           headers={**admin, "Content-Type": "application/json"})
    assert response.status_code == 400 and "finite" in response.get_json()["error"]["message"]


def test_server_side_backfill_with_ts(app, client, admin, make_experiment):
    make_experiment()
    token = _assign(client)["visitor_token"]
    now = time.time()
    public = _events(client, {"visitor": "v-1", "visitor_token": token, "events": [{"name": "x", "ts": now - 60}]})
    assert public.status_code == 400 and public.get_json()["error"]["code"] == "ts_not_allowed"
    future = _events(client, {"visitor": "v-1", "events": [{"name": "x", "ts": now + 3600}]}, admin)
    assert future.status_code == 400 and "future" in future.get_json()["error"]["message"]
    app.config["LEVER_RETENTION_DAYS"] = 30
    old = _events(client, {"visitor": "v-1", "events": [{"name": "x", "ts": now - 31 * 86400}]}, admin)
    assert old.status_code == 400 and "retention" in old.get_json()["error"]["message"]
    ok = _events(client, {"visitor": "never-assigned", "events": [{"name": "visit", "ts": now - 86400}]}, admin)
    assert ok.status_code == 202
    rows = app.extensions["lever.services"].storage._read("SELECT visitor, name, ts FROM events")
    assert rows == [("never-assigned", "visit", pytest.approx(now - 86400))]  # history of an unexposed visitor


def test_export_erasure_and_retention_cover_events(app, client, admin, make_experiment):
    make_experiment()
    token = _assign(client, "v-1")["visitor_token"]
    _events(client, {"visitor": "v-1", "visitor_token": token, "events": [{"name": "purchase", "value": 5}]})
    _events(client, {"visitor": "v-2", "events": [{"name": "visit", "ts": time.time() - 40 * 86400}]}, admin)
    exported = client.get("/api/v1/visitors/v-1", headers=admin).get_json()
    assert [(e["name"], e["value"]) for e in exported["events"]] == [("purchase", 5.0)]
    assert client.delete("/api/v1/visitors/v-1", headers=admin).status_code == 200
    assert client.get("/api/v1/visitors/v-1", headers=admin).get_json()["events"] == []
    storage = app.extensions["lever.services"].storage
    storage.prune_events(time.time() - 30 * 86400)
    assert storage._read("SELECT COUNT(*) FROM events")[0][0] == 0


def test_hashed_visitor_ids_keep_events_joined(database_url):
    app = create_app({"TESTING": True, "DATABASE_URL": database_url, "LEVER_ADMIN_TOKEN": ADMIN_TOKEN,
                      "LEVER_SECRET_KEY": SECRET_KEY, "LEVER_HASH_VISITORS": True, "LEVER_RATE_LIMIT": ""})
    client = app.test_client()
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    client.post("/api/v1/metrics", json={"key": "buy", "type": "conversion", "event": "buy"}, headers=admin)
    client.post("/api/v1/experiments", json=experiment_body(mode="ab", metrics={"primary": "buy"}), headers=admin)
    token = _assign(client, "v-1")["visitor_token"]
    _events(client, {"visitor": "v-1", "visitor_token": token, "events": [{"name": "buy"}]})
    storage = app.extensions["lever.storage"]
    assert storage._read("SELECT visitor FROM events")[0][0].startswith("h:")
    stats = client.get("/api/v1/experiments/hero/stats", headers=admin).get_json()
    assert sum(v["visitors"] * (v["value"] or 0) for v in stats["metrics"][0]["variants"]) == pytest.approx(1.0)
    storage.close()


@pytest.mark.parametrize("metric, value, expected_total", [
    ({"key": "purchase_rate", "type": "conversion", "event": "purchase"}, 49.9, 1.0),
    ({"key": "revenue", "type": "sum", "event": "purchase"}, 49.9, 49.9),
    ({"key": "purchases", "type": "count", "event": "purchase"}, 49.9, 1.0),
])
def test_primary_metric_events_feed_the_bandit(client, admin, metric, value, expected_total):
    client.post("/api/v1/metrics", json=metric, headers=admin)
    created = client.post("/api/v1/experiments", json=experiment_body(metrics={"primary": metric["key"]}),
                          headers=admin)
    assert created.status_code == 201
    assigned = _assign(client)
    body = {"visitor": "v-1", "visitor_token": assigned["visitor_token"],
            "events": [{"name": "purchase", "value": value, "event_id": "order-1"}, {"name": "other"}]}
    assert _events(client, body).status_code == 202
    assert _events(client, body).get_json()["duplicates"] == 1  # the retry: counted once, reward too
    exported = client.get("/api/v1/visitors/v-1", headers=admin).get_json()["assignments"]
    assert exported[0]["reward_total"] == pytest.approx(expected_total)
    assert exported[0]["rewards"][0]["event_id"] == "order-1" and len(exported[0]["rewards"]) == 1
    stats = client.get("/api/v1/experiments/hero/stats", headers=admin).get_json()
    assert stats["model_version"] == 2  # one decision + one reward learned
    assert stats["metrics"][0]["key"] == metric["key"]
    # an unexposed visitor's purchase is history only
    _events(client, {"visitor": "stranger", "events": [{"name": "purchase", "value": 3}]}, admin)
    assert client.get("/api/v1/visitors/stranger", headers=admin).get_json()["assignments"] == []


def test_events_outside_the_window_do_not_reward(client, admin):
    client.post("/api/v1/metrics", json={"key": "retained", "type": "conversion", "event": "visit",
                                         "delay_s": 86400, "window_s": 6 * 86400}, headers=admin)
    client.post("/api/v1/experiments", json=experiment_body(metrics={"primary": "retained"}), headers=admin)
    assigned = _assign(client)
    _events(client, {"visitor": "v-1", "visitor_token": assigned["visitor_token"], "events": [{"name": "visit"}]})
    assert client.get("/api/v1/visitors/v-1", headers=admin).get_json()["assignments"][0]["reward_count"] == 0


def test_events_share_the_public_rate_limit(app, client, make_experiment):
    make_experiment()
    token = _assign(client)["visitor_token"]
    limited = create_app({"TESTING": True, "DATABASE_URL": app.config["DATABASE_URL"], "LEVER_ADMIN_TOKEN": ADMIN_TOKEN,
                          "LEVER_SECRET_KEY": SECRET_KEY, "LEVER_RATE_LIMIT": "2/minute"})
    other = limited.test_client()
    body = {"visitor": "v-1", "visitor_token": token, "events": [{"name": "x"}]}
    assert other.post("/api/v1/assign", json={"experiment": "hero", "visitor": "v-1"}).status_code == 200
    assert [other.post("/api/v1/events", json=body).status_code for _ in range(2)] == [202, 429]
    limited.extensions["lever.storage"].close()
