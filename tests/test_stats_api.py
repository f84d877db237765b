"""GET /api/v1/experiments/<key>/stats: the engine's numbers on SQL-summed counters,
checked against statsmodels on counts taken independently from the events CSV."""
from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from statsmodels.stats.proportion import proportion_confint, proportions_ztest

REQUIRED_VARIANT_FIELDS = {"key", "visitors", "conversions", "rate", "ci", "uplift", "chance_to_be_best",
                           "expected_loss", "allocation"}
REQUIRED_UPLIFT_FIELDS = {"absolute", "relative", "ci_relative", "p_value", "p_value_adjusted", "always_valid_p_value"}


def fill(client, key, truth, visitors, seed=5, devices=("mobile", "desktop")):
    rng = np.random.default_rng(seed)
    for i in range(visitors):
        device = devices[int(rng.integers(len(devices)))]
        body = client.post("/api/v1/assign", json={"experiment": key, "visitor": f"s{i}",
                                                   "context": {"device": device, "returning": bool(i % 2)}}).get_json()
        if rng.random() < truth[body["variant"]]:
            client.post("/api/v1/reward", json={"assignment": body["assignment"]})


def events(client, admin, key):
    text = client.get(f"/api/v1/experiments/{key}/events.csv", headers=admin).get_data(as_text=True)
    return list(csv.DictReader(io.StringIO(text)))


def test_ab_stats_match_statsmodels_on_independent_counts(client, admin, make_experiment):
    make_experiment(mode="ab", holdout=0.0, sticky=False)
    fill(client, "hero", {"control": 0.10, "b": 0.14}, 1500)
    body = client.get("/api/v1/experiments/hero/stats", headers=admin).get_json()
    assert body["analysis_slice"] == "all" and body["control"] == "control"
    rows = events(client, admin, "hero")
    counts = {k: (sum(r["variant"] == k for r in rows), sum(r["variant"] == k and float(r["reward_total"]) > 0
                                                           for r in rows)) for k in ("control", "b")}
    by_key = {v["key"]: v for v in body["variants"]}
    for key, (n, conversions) in counts.items():
        variant = by_key[key]
        assert REQUIRED_VARIANT_FIELDS <= set(variant)
        assert (variant["visitors"], variant["conversions"]) == (n, conversions)
        assert variant["rate"] == pytest.approx(conversions / n, abs=1e-12)
        assert variant["ci"] == pytest.approx(list(proportion_confint(conversions, n, method="wilson")), abs=1e-5)
    uplift = by_key["b"]["uplift"]
    assert REQUIRED_UPLIFT_FIELDS <= set(uplift)
    _, p_value = proportions_ztest([counts["b"][1], counts["control"][1]], [counts["b"][0], counts["control"][0]])
    assert uplift["p_value"] == pytest.approx(p_value, abs=1e-5)
    assert sum(v["chance_to_be_best"] for v in body["variants"]) == pytest.approx(1.0, abs=1e-9)
    assert body["srm"]["ok"] is True and body["srm"]["p_value"] > 0.001
    assert json.dumps(body)  # plain JSON, no NaN
    assert "NaN" not in client.get("/api/v1/experiments/hero/stats", headers=admin).get_data(as_text=True)


def test_bandit_stats_use_the_holdout_and_report_personalisation_and_segments(client, admin, make_experiment):
    make_experiment(holdout=0.3)
    fill(client, "hero", {"control": 0.05, "b": 0.15}, 1200)
    body = client.get("/api/v1/experiments/hero/stats", headers=admin).get_json()
    assert body["analysis_slice"] == "holdout"
    assert any(w["code"] == "adaptive_allocation" for w in body["warnings"])
    rows = events(client, admin, "hero")
    holdout_n = {k: sum(r["variant"] == k and r["holdout"] == "True" for r in rows) for k in ("control", "b")}
    assert {v["key"]: v["visitors"] for v in body["variants"]} == holdout_n
    assert {v["key"]: v["visitors_total"] for v in body["variants"]} == {
        k: sum(r["variant"] == k for r in rows) for k in ("control", "b")}
    assert body["personalisation"]["vs_holdout"]["absolute"] is not None
    assert set(body["off_policy"]) >= {"uniform_random", "variants", "current_policy"}
    devices = {s["level"] for s in body["segments"] if s["feature"] == "device"}
    assert devices == {"mobile", "desktop"}
    returning = {s["level"] for s in body["segments"] if s["feature"] == "returning"}
    assert returning == {"true", "false"}
    mobile = next(s for s in body["segments"] if s["feature"] == "device" and s["level"] == "mobile")
    mobile_rows = [r for r in rows if json.loads(r["context"])["device"] == "mobile" and r["holdout"] == "True"]
    by_key = {v["key"]: v for v in mobile["variants"]}
    assert by_key["control"]["visitors"] == sum(r["variant"] == "control" for r in mobile_rows)


def test_empty_experiment_gives_reason_codes_not_errors(client, admin, make_experiment):
    make_experiment(reward="numeric")
    response = client.get("/api/v1/experiments/hero/stats", headers=admin)
    assert response.status_code == 200
    body = response.get_json()
    assert all(v["visitors"] == 0 for v in body["variants"])
    treatment = next(v for v in body["variants"] if v["key"] == "b")
    assert treatment["uplift"]["p_value"] is None and treatment["uplift"]["reason"]


def test_stats_need_admin_and_an_existing_experiment(client, admin):
    assert client.get("/api/v1/experiments/none/stats").status_code == 401
    assert client.get("/api/v1/experiments/none/stats", headers=admin).status_code == 404
