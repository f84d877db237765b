"""Public API: assign and reward, stickiness, holdout, propensities, idempotency."""
from __future__ import annotations

import json

import numpy as np
import pytest

from .dbutil import query


def rows(app, sql, params=()):
    return query(app.config["DATABASE_URL"], sql, params)


def assign(client, visitor="v1", experiment="hero", **extra):
    response = client.post("/api/v1/assign", json={"experiment": experiment, "visitor": visitor, **extra})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_assign_answers_with_a_token_variant_payload_and_propensity(client, make_experiment, app):
    make_experiment()
    body = assign(client, context={"device": "mobile", "hour": 14})
    assert set(body) >= {"assignment", "experiment", "variant", "payload", "propensity", "holdout", "model_version"}
    assert body["variant"] in ("control", "b")
    assert body["payload"] == {"headline": "A" if body["variant"] == "control" else "B"}
    assert 0 < body["propensity"] <= 1
    stored = rows(app, "SELECT visitor, context, propensity, holdout, model_version FROM assignments")
    assert stored == [("v1", json.dumps({"device": "mobile", "hour": 14}, separators=(",", ":")),
                       body["propensity"], int(body["holdout"]), body["model_version"])]


def test_sticky_visitor_gets_the_same_assignment_and_token(client, make_experiment, app):
    make_experiment()
    first = assign(client)
    again = assign(client)
    assert again["assignment"] == first["assignment"] and again["variant"] == first["variant"]
    assert again["sticky"] is True
    assert rows(app, "SELECT COUNT(*) FROM assignments") == [(1,)]


def test_non_sticky_experiment_logs_every_decision(client, make_experiment, app):
    make_experiment(sticky=False)
    tokens = {assign(client)["assignment"] for _ in range(5)}
    assert len(tokens) == 5
    assert rows(app, "SELECT COUNT(*) FROM assignments") == [(5,)]


def test_logged_probabilities_sum_to_one_and_match_the_propensity(client, make_experiment, app):
    make_experiment(variants=[{"key": k} for k in ("control", "b", "c", "d")], holdout=0.3)
    for i in range(60):
        assign(client, visitor=f"v{i}")
    variant_ids = dict(rows(app, "SELECT key, id FROM variants"))
    for variant_id, probabilities, propensity, holdout in rows(
            app, "SELECT variant_id, probabilities, propensity, holdout FROM assignments"):
        probabilities = {int(k): v for k, v in json.loads(probabilities).items()}
        assert sorted(probabilities) == sorted(variant_ids.values())
        assert sum(probabilities.values()) == pytest.approx(1.0, abs=1e-12)
        assert probabilities[variant_id] == pytest.approx(propensity)
        assert min(probabilities.values()) >= 0.01 - 1e-12  # min_share floor
        if holdout:
            assert propensity == pytest.approx(0.25)


def test_holdout_share_is_sticky_by_hash(client, make_experiment):
    make_experiment(holdout=0.5, sticky=False)
    flags = [assign(client, visitor=f"v{i}")["holdout"] for i in range(400)]
    assert 0.4 < np.mean(flags) < 0.6
    assert [assign(client, visitor=f"v{i}")["holdout"] for i in range(400)] == flags


def test_ab_buckets_are_deterministic_and_follow_the_weights(client, make_experiment):
    make_experiment(mode="ab", weights={"control": 0.8, "b": 0.2}, sticky=False, holdout=0.0)
    variants = [assign(client, visitor=f"v{i}")["variant"] for i in range(1000)]
    assert 0.76 < variants.count("control") / 1000 < 0.84
    assert [assign(client, visitor=f"v{i}")["variant"] for i in range(50)] == variants[:50]
    body = assign(client, visitor="v1")
    assert body["propensity"] == pytest.approx(0.8 if body["variant"] == "control" else 0.2)


def test_batched_assign_writes_all_experiments_in_one_request(client, make_experiment, app):
    make_experiment("one")
    make_experiment("two")
    response = client.post("/api/v1/assign", json={"experiments": ["one", "two"], "visitor": "v9"})
    body = response.get_json()
    assert response.status_code == 200 and body["visitor"] == "v9"
    assert [a["experiment"] for a in body["assignments"]] == ["one", "two"]
    assert rows(app, "SELECT COUNT(*) FROM assignments") == [(2,)]


def test_batch_with_an_unknown_experiment_writes_nothing(client, make_experiment, app):
    make_experiment("one")
    response = client.post("/api/v1/assign", json={"experiments": ["one", "missing"], "visitor": "v9"})
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "experiment_not_found"
    assert rows(app, "SELECT COUNT(*) FROM assignments") == [(0,)]


def test_binary_reward_counts_once(client, make_experiment, app):
    make_experiment()
    token = assign(client)["assignment"]
    first = client.post("/api/v1/reward", json={"assignment": token})
    retry = client.post("/api/v1/reward", json={"assignment": token, "value": 1})
    assert first.status_code == retry.status_code == 202
    assert first.get_json()["counted"] is True and retry.get_json()["counted"] is False
    assert rows(app, "SELECT COUNT(*) FROM rewards") == [(1,)]
    assert rows(app, "SELECT reward_total, reward_count FROM assignments") == [(1.0, 1)]
    assert rows(app, "SELECT SUM(conversions), SUM(reward_events) FROM arm_stats") == [(1, 1)]


def test_numeric_rewards_sum_and_deduplicate_by_event_id(client, make_experiment, app):
    make_experiment(reward="numeric")
    token = assign(client)["assignment"]
    for event_id, value in (("o-1", 12.5), ("o-1", 12.5), ("o-2", 7.5), (None, 1.0)):
        response = client.post("/api/v1/reward", json={"assignment": token, "value": value,
                                                       **({"event_id": event_id} if event_id else {})})
        assert response.status_code == 202
    assert rows(app, "SELECT reward_total, reward_count FROM assignments") == [(21.0, 3)]
    (sum_, sumsq, conversions), = rows(app, "SELECT SUM(reward_sum), SUM(reward_sumsq), SUM(conversions) FROM arm_stats")
    # the counters hold sums of y - K over the rewarded assignments, K = the first reward (schema v8)
    assert rows(app, "SELECT reward_shift FROM experiments") == [(12.5,)]
    assert (sum_, sumsq, conversions) == (21.0 - 12.5, (21.0 - 12.5) ** 2, 1)


def test_server_side_reward_by_experiment_and_visitor(client, make_experiment, app, admin):
    make_experiment()
    assign(client, visitor="server-v")
    response = client.post("/api/v1/reward", json={"experiment": "hero", "visitor": "server-v"}, headers=admin)
    assert response.status_code == 202 and response.get_json()["counted"] is True
    missing = client.post("/api/v1/reward", json={"experiment": "hero", "visitor": "nobody"}, headers=admin)
    assert missing.status_code == 404


def test_forged_and_altered_tokens_are_rejected(client, make_experiment, app):
    make_experiment()
    token = assign(client)["assignment"]
    payload, signature = token.split(".")
    altered = payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB") + "." + signature
    for bad in (altered, token + "x", "not-a-token", "a.b"):
        response = client.post("/api/v1/reward", json={"assignment": bad})
        assert response.status_code == 400, bad
        assert response.get_json()["error"]["code"] == "invalid_assignment_token"
    assert rows(app, "SELECT COUNT(*) FROM rewards") == [(0,)]


def test_token_for_an_unknown_assignment_is_404(app, client, make_experiment):
    make_experiment()
    signer = app.extensions["lever.services"].signer
    response = client.post("/api/v1/reward", json={"assignment": signer.sign(999, "hero", "b", "v1")})
    assert response.status_code == 404


def test_reward_after_the_window_is_422(client, make_experiment, app):
    make_experiment(reward_window_s=1)
    token = assign(client)["assignment"]
    rows(app, "UPDATE assignments SET created_at = created_at - 5")
    response = client.post("/api/v1/reward", json={"assignment": token})
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "reward_window_closed"
    assert rows(app, "SELECT COUNT(*) FROM rewards") == [(0,)]


def test_paused_serves_control_and_stopped_serves_the_winner_without_logging(client, admin, make_experiment, app):
    make_experiment()
    client.patch("/api/v1/experiments/hero", json={"status": "paused"}, headers=admin)
    paused = assign(client, visitor="p1")
    assert paused["variant"] == "control" and paused["assignment"] is None and paused["status"] == "paused"
    client.patch("/api/v1/experiments/hero", json={"status": "stopped", "winner": "b"}, headers=admin)
    stopped = assign(client, visitor="p2")
    assert stopped["variant"] == "b" and stopped["payload"] == {"headline": "B"}
    assert rows(app, "SELECT COUNT(*) FROM assignments") == [(0,)]


def test_cors_headers_only_on_public_endpoints(client, admin, make_experiment):
    make_experiment()
    origin = {"Origin": "https://shop.example"}
    preflight = client.options("/api/v1/assign", headers=origin)
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://shop.example"
    public = client.post("/api/v1/assign", json={"experiment": "hero", "visitor": "c"}, headers=origin)
    assert public.headers["Access-Control-Allow-Origin"] == "https://shop.example"
    private = client.get("/api/v1/experiments", headers={**admin, **origin})
    assert "Access-Control-Allow-Origin" not in private.headers


def test_allowed_origins_are_enforced(client, make_experiment, app):
    make_experiment(allowed_origins=["https://shop.example"])
    ok = client.post("/api/v1/assign", json={"experiment": "hero", "visitor": "o1"},
                     headers={"Origin": "https://shop.example"})
    denied = client.post("/api/v1/assign", json={"experiment": "hero", "visitor": "o2"},
                         headers={"Origin": "https://evil.example"})
    assert ok.status_code == 200 and denied.status_code == 403
    assert denied.get_json()["error"]["code"] == "origin_not_allowed"
    assert rows(app, "SELECT visitor FROM assignments") == [("o1",)]


def test_events_csv_joins_rewards(client, admin, make_experiment):
    make_experiment()
    token = assign(client, visitor="csv-1", context={"device": "mobile"})["assignment"]
    assign(client, visitor="csv-2")
    client.post("/api/v1/reward", json={"assignment": token})
    response = client.get("/api/v1/experiments/hero/events.csv", headers=admin)
    assert response.status_code == 200 and response.mimetype == "text/csv"
    lines = response.get_data(as_text=True).strip().splitlines()
    assert lines[0] == "id,visitor,variant,context,propensity,holdout,model_version,created_at,reward_total,reward_count"
    assert len(lines) == 3
    assert lines[1].startswith("1,csv-1,") and lines[1].endswith(",1.0,1")
    assert lines[2].endswith(",0.0,0")


def test_healthz_checks_the_database(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.get_json()["status"] == "ok"


def test_policy_endpoint_reflects_rewards_after_refresh(client, admin, make_experiment):
    import time

    make_experiment()
    before = client.get("/api/v1/experiments/hero/policy", headers=admin).get_json()
    for i in range(30):
        body = assign(client, visitor=f"r{i}")
        if body["variant"] == "b":
            client.post("/api/v1/reward", json={"assignment": body["assignment"]})
    time.sleep(0.06)
    after = client.get("/api/v1/experiments/hero/policy", headers=admin).get_json()
    assert after["model_version"] > before["model_version"]
    assert after["posterior"]["b"]["mean"] > after["posterior"]["control"]["mean"]
    assert after["allocation"]["b"] > 0.5
    assert sum(after["allocation"].values()) == pytest.approx(1.0)
