"""Decisions through the API: the rule in force, the planned horizon, every visitor counted
under a bandit, and the sample-size calculator — on both backends."""
from __future__ import annotations

import numpy as np
import pytest

from stats import power


def _drive(client, key: str, visitors: int, rates: dict[str, float], seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for i in range(visitors):
        body = client.post("/api/v1/assign", json={"experiment": key, "visitor": f"{key}-{seed}-{i}"}).get_json()
        if rng.random() < rates[body["variant"]]:
            assert client.post("/api/v1/reward", json={"assignment": body["assignment"]}).status_code == 202


def test_ab_decides_with_the_always_valid_rule(client, admin, make_experiment):
    make_experiment("plain", mode="ab", holdout=0.0)
    _drive(client, "plain", 400, {"control": 0.1, "b": 0.1})
    stats = client.get("/api/v1/experiments/plain/stats", headers=admin).get_json()
    uplift = stats["variants"][1]["uplift"]
    assert stats["decision_rule"] == "anytime_valid" and uplift["decision_rule"] == "anytime_valid"
    assert uplift["decision"] in ("better", "worse", "inconclusive")
    low, high = uplift["ci_always_valid"]
    fixed_low, fixed_high = uplift["ci_absolute"]
    assert low < fixed_low and high > fixed_high  # wider: it holds at every look


def test_a_planned_horizon_decides_only_once_reached(client, admin, make_experiment):
    make_experiment("planned", mode="ab", holdout=0.0, planned_visitors=200)
    assert client.get("/api/v1/experiments/planned", headers=admin).get_json()["planned_visitors"] == 200
    _drive(client, "planned", 100, {"control": 0.05, "b": 0.9})
    early = client.get("/api/v1/experiments/planned/stats", headers=admin).get_json()
    assert (early["decision_rule"], early["horizon_reached"]) == ("fixed_horizon", False)
    assert early["variants"][1]["uplift"]["decision"] == "inconclusive"  # however clear it looks
    _drive(client, "planned", 120, {"control": 0.05, "b": 0.9}, seed=1)
    late = client.get("/api/v1/experiments/planned/stats", headers=admin).get_json()
    assert late["horizon_reached"] is True and late["variants"][1]["uplift"]["decision"] == "better"


@pytest.mark.parametrize("body, message", [
    ({"mode": "bandit", "planned_visitors": 1000}, "applies only to mode ab"),
    ({"mode": "ab", "planned_visitors": 3}, "planned_visitors must be an integer"),
    ({"mode": "ab", "planned_visitors": 1e4}, "planned_visitors must be an integer"),
])
def test_planned_visitors_is_validated(client, admin, body, message):
    response = client.post("/api/v1/experiments", json={"key": "bad", "variants": ["control", "b"], **body},
                           headers=admin)
    assert response.status_code == 400 and message in response.get_json()["error"]["message"]


def test_a_bandit_decides_on_every_visitor(client, admin, make_experiment):
    make_experiment("adaptive", mode="bandit", holdout=0.1)
    _drive(client, "adaptive", 300, {"control": 0.05, "b": 0.3})
    stats = client.get("/api/v1/experiments/adaptive/stats", headers=admin).get_json()
    uplift = stats["variants"][1]["uplift"]
    assert stats["decision_rule"] == "adaptive_anytime_valid"
    adaptive = uplift["adaptive"]
    assert adaptive["decisions"] == 300 and adaptive["method"] == "aipw_stabilised"  # not the holdout's ~30
    assert sum(v["visitors"] for v in stats["variants"]) < 100
    assert adaptive["ci_always_valid"][0] <= adaptive["absolute"] <= adaptive["ci_always_valid"][1]


def test_sample_size_calculator_matches_the_engine(client, admin):
    response = client.get("/api/v1/sample-size?mde=0.1&baseline_rate=0.1", headers=admin)
    assert response.status_code == 200
    body = response.get_json()
    fixed = power.required_visitors(0.1, baseline_rate=0.1)
    anytime = power.required_visitors(0.1, baseline_rate=0.1, rule="anytime_valid")
    assert body["fixed_horizon"]["per_variant"] == fixed.per_variant == 14749
    assert body["anytime_valid"]["per_variant"] == anytime.per_variant > fixed.per_variant
    assert body["planned_visitors"] == fixed.total
    numeric = client.get("/api/v1/sample-size?mde=2&relative=false&baseline_mean=50&sd=20", headers=admin)
    assert numeric.status_code == 200 and numeric.get_json()["fixed_horizon"]["per_variant"] > 0


@pytest.mark.parametrize("query", ["", "mde=0", "mde=abc", "mde=0.1", "mde=0.1&baseline_rate=1.5",
                                   "mde=0.1&baseline_mean=5", "mde=nan&baseline_rate=0.1", "mde=0.1&baseline_rate=0.1&variants=1"])
def test_sample_size_calculator_refuses_bad_input(client, admin, query):
    response = client.get(f"/api/v1/sample-size?{query}", headers=admin)
    assert response.status_code == 400 and response.get_json()["error"]["code"]


def test_sample_size_needs_the_admin_token(client):
    assert client.get("/api/v1/sample-size?mde=0.1&baseline_rate=0.1").status_code == 401
