"""Right to be forgotten, data export, hashed visitor ids, retention, rate limits."""
from __future__ import annotations

import time

import numpy as np
import pytest
from limits import parse, storage, strategies

from app import create_app
from app.service.modes import MODES
from app.web.limits import MemoryWindows
from bandits import LinearArmState

from .conftest import ADMIN_TOKEN, SECRET_KEY, experiment_body
from .dbutil import query


def _fill(client, key, visitors, reward_every=2, **context):
    tokens = []
    for i, visitor in enumerate(visitors):
        body = client.post("/api/v1/assign", json={"experiment": key, "visitor": visitor,
                                                   "context": {"device": "mobile", **context}}).get_json()
        tokens.append(body["assignment"])
        if i % reward_every == 0:
            client.post("/api/v1/reward", json={"assignment": body["assignment"], "value": 1})
    return tokens


def _totals(storage, key):
    experiment = storage.get_experiment(key)
    return storage.learning_snapshot(experiment.id), storage.segment_totals(experiment.id)


def test_erasing_a_visitor_removes_events_and_keeps_counters_equal_to_a_rebuild(app, client, admin, make_experiment,
                                                                                   database_url):
    make_experiment("one")
    make_experiment("two", mode="ab", reward="numeric", sticky=False)
    _fill(client, "one", [f"v{i}" for i in range(40)] + ["forget-me"])
    _fill(client, "two", [f"v{i}" for i in range(10)] + ["forget-me", "forget-me"], reward_every=1)
    export = client.get("/api/v1/visitors/forget-me", headers=admin).get_json()
    assert len(export["assignments"]) == 3 and {a["experiment"] for a in export["assignments"]} == {"one", "two"}
    assert any(a["rewards"] for a in export["assignments"])

    response = client.delete("/api/v1/visitors/forget-me", headers=admin)
    assert response.status_code == 200 and response.get_json()["erased_assignments"] == 3
    assert query(database_url, "SELECT COUNT(*) FROM assignments WHERE visitor = ?", ("forget-me",)) == [(0,)]
    assert client.get("/api/v1/visitors/forget-me", headers=admin).get_json()["assignments"] == []

    storage = app.extensions["lever.storage"]
    for key in ("one", "two"):
        counters, segments = _totals(storage, key)
        storage.rebuild_arm_stats(storage.get_experiment(key))
        rebuilt, rebuilt_segments = _totals(storage, key)
        assert counters.model_version == rebuilt.model_version
        for a, b in zip(counters.totals, rebuilt.totals):
            for field in a.__dataclass_fields__:
                assert getattr(a, field) == pytest.approx(getattr(b, field), abs=1e-9), (key, field)
        nonzero = [s for s in segments if s.assignments]
        assert [(s.feature, s.level, s.assignments, s.conversions) for s in nonzero] == [
            (s.feature, s.level, s.assignments, s.conversions) for s in rebuilt_segments]
    assert client.delete("/api/v1/visitors/forget-me").status_code == 401


def test_erasure_takes_a_visitor_out_of_the_contextual_model(app, client, admin, make_experiment):
    make_experiment(mode="contextual", context=[{"name": "device", "type": "categorical", "levels": ["mobile"]}])
    _fill(client, "hero", [f"v{i}" for i in range(20)] + ["gone"], reward_every=1)
    client.delete("/api/v1/visitors/gone", headers=admin)
    storage = app.extensions["lever.storage"]
    experiment = storage.get_experiment("hero")
    after_erase = storage.learning_snapshot(experiment.id).model_states
    storage.rebuild_arm_stats(experiment, MODES[experiment.mode].rebuilder(experiment))
    rebuilt = storage.learning_snapshot(experiment.id).model_states
    for variant_id, blob in rebuilt.items():
        a, b = LinearArmState.from_bytes(after_erase[variant_id]), LinearArmState.from_bytes(blob)
        np.testing.assert_allclose(a.precision_increment, b.precision_increment, atol=1e-9)
        np.testing.assert_allclose(a.target, b.target, atol=1e-9)


def test_hashed_visitor_ids_are_never_stored_as_sent(tmp_path):
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'h.db'}", "LEVER_ADMIN_TOKEN": ADMIN_TOKEN,
                      "LEVER_SECRET_KEY": SECRET_KEY, "LEVER_HASH_VISITORS": True, "LEVER_RATE_LIMIT": ""})
    client = app.test_client()
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    client.post("/api/v1/experiments", json=experiment_body(), headers=admin)
    first = client.post("/api/v1/assign", json={"experiment": "hero", "visitor": "alice@example.com"}).get_json()
    again = client.post("/api/v1/assign", json={"experiment": "hero", "visitor": "alice@example.com"}).get_json()
    assert again["assignment"] == first["assignment"]  # still sticky
    stored = query(app.config["DATABASE_URL"], "SELECT visitor FROM assignments")
    assert stored[0][0].startswith("h:") and "alice" not in stored[0][0]
    server_side = client.post("/api/v1/reward", json={"experiment": "hero", "visitor": "alice@example.com"},
                              headers=admin)
    assert server_side.status_code == 202 and server_side.get_json()["counted"] is True
    assert len(client.get("/api/v1/visitors/alice@example.com", headers=admin).get_json()["assignments"]) == 1
    assert client.delete("/api/v1/visitors/alice@example.com", headers=admin).get_json()["erased_assignments"] == 1


def test_retention_prunes_raw_events_but_keeps_the_totals(tmp_path):
    url = f"sqlite:///{tmp_path / 'r.db'}"
    app = create_app({"DATABASE_URL": url, "LEVER_ADMIN_TOKEN": ADMIN_TOKEN, "LEVER_SECRET_KEY": SECRET_KEY,
                      "LEVER_RETENTION_DAYS": 30, "LEVER_RATE_LIMIT": ""})
    client = app.test_client()
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    client.post("/api/v1/experiments", json=experiment_body(reward_window_s=86400), headers=admin)
    _fill(client, "hero", [f"v{i}" for i in range(30)])
    query(url, "UPDATE assignments SET created_at = created_at - 40 * 86400 WHERE id <= 20")
    before = client.get("/api/v1/experiments/hero/stats", headers=admin).get_json()
    result = app.test_cli_runner().invoke(args=["prune-events"])
    assert "pruned 20 assignments" in result.output
    assert query(url, "SELECT COUNT(*) FROM assignments") == [(10,)]
    after = client.get("/api/v1/experiments/hero/stats", headers=admin).get_json()
    assert [v["visitors_total"] for v in after["variants"]] == [v["visitors_total"] for v in before["variants"]]
    assert sum(v["visitors_total"] for v in after["variants"]) == 30
    rebuild = app.test_cli_runner().invoke(args=["rebuild-stats", "hero"])
    assert rebuild.exit_code != 0 and "pruned" in rebuild.output


def test_public_endpoints_are_rate_limited_with_a_json_429(tmp_path):
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'l.db'}", "LEVER_ADMIN_TOKEN": ADMIN_TOKEN,
                      "LEVER_SECRET_KEY": SECRET_KEY, "LEVER_RATE_LIMIT": "5/minute"})
    client = app.test_client()
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    client.post("/api/v1/experiments", json=experiment_body(), headers=admin)
    statuses = [client.post("/api/v1/assign", json={"experiment": "hero", "visitor": f"r{i}"}).status_code
                for i in range(7)]
    assert statuses == [200] * 5 + [429] * 2
    limited = client.post("/api/v1/assign", json={"experiment": "hero", "visitor": "r9"})
    assert limited.get_json()["error"]["code"] == "rate_limited" and "Retry-After" in limited.headers
    assert client.options("/api/v1/assign").status_code == 204  # preflights are not counted
    assert client.get("/api/v1/experiments", headers=admin).status_code == 200  # admin endpoints are not limited
    assert query(app.config["DATABASE_URL"], "SELECT COUNT(*) FROM assignments") == [(5,)]


def test_invalid_rate_limit_setting_fails_at_start(tmp_path, monkeypatch):
    from app.settings import SettingsError, load_settings

    with pytest.raises(SettingsError, match="LEVER_RATE_LIMIT"):
        load_settings(environ={"LEVER_RATE_LIMIT": "lots"})


def test_login_attempts_are_rate_limited(client):
    import re

    page = client.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    statuses = [client.post("/login", data={"token": f"guess-{i}", "csrf_token": csrf}).status_code
                for i in range(12)]
    assert statuses[:10] == [401] * 10 and statuses[10:] == [429, 429]
    assert client.get("/login").status_code == 200  # the form itself is not limited


def test_memory_windows_count_as_the_limits_library_does():
    """``memory://`` is counted by ``MemoryWindows`` (no timer thread); the same hits must get the
    same answers and reset times as ``limits``' FixedWindowRateLimiter over its MemoryStorage."""
    ours = MemoryWindows(prune_at=3)  # prunes on nearly every hit here: pruning must not change answers
    theirs = strategies.FixedWindowRateLimiter(storage.storage_from_string("memory://"))
    items = [parse("3/second"), parse("5/minute")]

    def both(client: str) -> list[tuple[bool, bool]]:
        return [(ours.hit(item, "public", client), theirs.hit(item, "public", client)) for item in items]

    answers = [both(client) for _ in range(7) for client in ("a", "b", "c", "d")]
    time.sleep(1.05)  # the per-second windows reset, the per-minute ones do not
    answers += [both(client) for client in ("a", "e")]
    assert all(mine == reference for pair in answers for mine, reference in pair)
    assert [pair[0][0] for pair in answers[:12]] == [True] * 12 and answers[12][0] == (False, False)
    assert answers[-2] == [(True, True), (False, False)]
    for item in items:
        assert ours.reset_time(item, "public", "a") == pytest.approx(
            theirs.get_window_stats(item, "public", "a").reset_time, abs=0.05)
