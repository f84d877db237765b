"""The metric catalogue, experiments that use metrics, and the per-metric SQL aggregates
(checked against an independent per-visitor computation in Python) on both backends."""
from __future__ import annotations

import time

import pytest

from app.domain.metrics import MetricDefinition, RatioPart

from .conftest import experiment_body

REVENUE = {"key": "revenue", "name": "Revenue per visitor", "type": "sum", "event": "purchase",
           "window_s": 604800, "delay_s": 0, "cap": 1000, "higher_is_better": True}


def _metric(client, admin, **body):
    response = client.post("/api/v1/metrics", json=body, headers=admin)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_catalogue_create_list_get_patch(client, admin):
    created = _metric(client, admin, **REVENUE)
    assert created["key"] == "revenue" and created["cap"] == 1000 and created["cuped_window_s"] == 14 * 86400
    _metric(client, admin, key="aov", type="ratio", numerator={"event": "purchase", "aggregate": "sum"},
            denominator={"event": "purchase", "aggregate": "count"})
    listed = client.get("/api/v1/metrics", headers=admin).get_json()["metrics"]
    assert [m["key"] for m in listed] == ["aov", "revenue"]
    assert client.get("/api/v1/metrics/aov", headers=admin).get_json()["numerator"] == {
        "event": "purchase", "aggregate": "sum"}
    patched = client.patch("/api/v1/metrics/revenue", json={"name": "Revenue", "cap": 500}, headers=admin)
    assert patched.status_code == 200 and patched.get_json()["cap"] == 500
    assert client.get("/api/v1/metrics/revenue", headers=admin).get_json()["name"] == "Revenue"
    assert client.get("/api/v1/metrics/nope", headers=admin).status_code == 404
    assert client.get("/api/v1/metrics").status_code == 401


@pytest.mark.parametrize("body, word", [
    ({**REVENUE, "type": "mean"}, "type"),
    ({**REVENUE, "key": "reward"}, "reward"),
    ({**REVENUE, "window_s": 0}, "window_s"),
    ({**REVENUE, "cap": -1}, "cap"),
    ({**REVENUE, "colour": "red"}, "colour"),
    ({**REVENUE, "event": "bad name!"}, "event"),
    ({"key": "ctr", "type": "ratio", "event": "click"}, "numerator"),
    ({"key": "ctr", "type": "ratio", "numerator": {"event": "click", "aggregate": "mean"},
      "denominator": {"event": "impression"}}, "numerator.aggregate"),
    ({"key": "conv", "type": "conversion", "event": "purchase", "cap": 3}, "cap"),
])
def test_bad_metrics_are_400_naming_the_field(client, admin, body, word):
    response = client.post("/api/v1/metrics", json=body, headers=admin)
    assert response.status_code == 400
    assert word in response.get_json()["error"]["message"]
    assert client.get("/api/v1/metrics", headers=admin).get_json()["metrics"] == []


def test_duplicate_and_immutable_fields(client, admin):
    _metric(client, admin, **REVENUE)
    assert client.post("/api/v1/metrics", json=REVENUE, headers=admin).status_code == 409
    response = client.patch("/api/v1/metrics/revenue", json={"type": "count"}, headers=admin)
    assert response.status_code == 400 and "type" in response.get_json()["error"]["message"]


def test_experiments_use_catalogue_metrics(client, admin):
    _metric(client, admin, **REVENUE)
    _metric(client, admin, key="purchase_rate", type="conversion", event="purchase")
    _metric(client, admin, key="aov", type="ratio", numerator={"event": "purchase"},
            denominator={"event": "purchase", "aggregate": "count"})
    bad = client.post("/api/v1/experiments", headers=admin, json=experiment_body(
        metrics={"primary": "purchase_rate", "secondary": ["nope"]}))
    assert bad.status_code == 400 and "metrics.secondary[0]" in bad.get_json()["error"]["message"]
    ratio = client.post("/api/v1/experiments", headers=admin, json=experiment_body(metrics={"primary": "aov"}))
    assert ratio.status_code == 400 and "metrics.primary" in ratio.get_json()["error"]["message"]
    assert client.get("/api/v1/experiments", headers=admin).get_json()["experiments"] == []  # nothing half-written
    ab = client.post("/api/v1/experiments", headers=admin, json=experiment_body("ab-aov", mode="ab",
                                                                                  metrics={"primary": "aov"}))
    assert ab.status_code == 201
    created = client.post("/api/v1/experiments", headers=admin, json=experiment_body(metrics={
        "primary": "revenue", "secondary": ["aov"],
        "guardrails": [{"metric": "purchase_rate", "max_regression": 0.05, "action": "stop_variant"}]}))
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    assert body["reward"] == "numeric"  # from the primary metric (sum)
    assert body["metrics"]["guardrails"][0] == {"metric": "purchase_rate", "max_regression": 0.05,
                                                "action": "stop_variant"}
    patched = client.patch("/api/v1/experiments/hero", headers=admin, json={"metrics": {
        "primary": "revenue", "secondary": [], "guardrails": [{"metric": "aov"}]}})
    assert patched.status_code == 200 and patched.get_json()["metrics"]["secondary"] == []
    moved = client.patch("/api/v1/experiments/hero", headers=admin, json={"metrics": {"primary": "aov"}})
    assert moved.status_code == 400 and "primary" in moved.get_json()["error"]["message"]


def test_experiment_without_metrics_lists_the_implicit_reward_metric(client, admin, make_experiment):
    make_experiment(mode="ab")
    for i in range(40):
        token = client.post("/api/v1/assign", json={"experiment": "hero", "visitor": f"v{i}"}).get_json()["assignment"]
        if i % 4 == 0:
            client.post("/api/v1/reward", json={"assignment": token})
    stats = client.get("/api/v1/experiments/hero/stats", headers=admin).get_json()
    (metric,) = stats["metrics"]
    assert metric["key"] == "reward" and metric["role"] == "primary" and metric["type"] == "conversion"
    by_key = {v["key"]: v for v in stats["variants"]}
    for variant in metric["variants"]:
        assert variant["visitors"] == by_key[variant["key"]]["visitors"]
        assert variant["value"] == pytest.approx(by_key[variant["key"]]["rate"])
    assert stats["guardrail_actions"] == []


# -- the aggregate against an independent computation ----------------------------------------------

DEFINITIONS = (
    MetricDefinition(key="conv", name="c", type="conversion", event="buy", window_s=100, cuped_window_s=50),
    MetricDefinition(key="later", name="l", type="conversion", event="visit", delay_s=20, window_s=30),
    MetricDefinition(key="clicks", name="k", type="count", event="click", window_s=100, cap=3, cuped_window_s=60),
    MetricDefinition(key="spend", name="s", type="sum", event="buy", window_s=100, cap=50.0, cuped_window_s=50),
    MetricDefinition(key="aov", name="a", type="ratio", numerator=RatioPart("buy", "sum"),
                     denominator=RatioPart("buy", "count"), window_s=100),
)


def _reference(definition, exposures, events):
    """Per (variant_id, holdout): n and the five sums, from per-visitor values computed in Python."""
    def value(event_name, amount, t0, low, high, closed, cap, conversion):
        rows = [e for e in events.get(visitor, ()) if e[0] == event_name
                and t0 + low <= e[2] and (e[2] <= t0 + high if closed else e[2] < t0 + high)]
        if conversion:
            return float(bool(rows))
        total = sum(e[1] if amount == "sum" else 1.0 for e in rows)
        return min(total, cap) if cap is not None else total

    out = {}
    for visitor, (variant_id, holdout, t0) in exposures.items():
        d = definition
        window = (d.delay_s, d.delay_s + d.window_s)
        if d.type == "ratio":
            a = value(d.numerator.event, d.numerator.aggregate, t0, *window, True, d.cap, False)
            b = value(d.denominator.event, d.denominator.aggregate, t0, *window, True, d.cap, False)
            sums = (a, a * a, b, b * b, a * b)
        else:
            amount = "count" if d.type == "count" else "sum"
            conversion = d.type == "conversion"
            y = value(d.event, amount, t0, *window, True, d.cap, conversion)
            x = value(d.event, amount, t0, -d.cuped_window_s, 0, False, d.cap, conversion)
            sums = (y, y * y, x, x * x, x * y)
        cell = out.setdefault((variant_id, holdout), [0, 0.0, 0.0, 0.0, 0.0, 0.0])
        cell[0] += 1
        for i, s in enumerate(sums):
            cell[i + 1] += s
    return out


@pytest.mark.parametrize("sticky", [True, False])
def test_metric_sums_equal_a_per_visitor_computation(app, client, admin, make_experiment, sticky):
    import numpy as np

    storage = app.extensions["lever.services"].storage
    experiment_json = make_experiment(mode="ab", sticky=sticky, holdout=0.2)
    rng = np.random.default_rng(7)
    exposures = {}
    for i in range(60):
        visitor = f"v{i}"
        first = client.post("/api/v1/assign", json={"experiment": "hero", "visitor": visitor}).get_json()
        if not sticky and i % 5 == 0:  # a second assignment: only the first one is the exposure
            client.post("/api/v1/assign", json={"experiment": "hero", "visitor": visitor})
        exposures[visitor] = first
    experiment = storage.get_experiment("hero")
    rows = storage._read("SELECT visitor, variant_id, holdout, created_at, id FROM assignments ORDER BY id")
    t0 = {}
    for visitor, variant_id, holdout, created_at, _id in rows:
        t0.setdefault(visitor, (variant_id, holdout, created_at))
    now = time.time()
    events = {}
    for visitor, (_v, _h, start) in list(t0.items()) + [("unexposed", (0, 0, now - 10))]:
        batch = []
        for j in range(int(rng.integers(0, 6))):
            name = ["buy", "visit", "click"][int(rng.integers(0, 3))]
            ts = min(start + float(rng.uniform(-70, 110)), now - 1)
            batch.append({"name": name, "value": round(float(rng.uniform(0, 40)), 2), "ts": ts,
                          "event_id": f"{visitor}-{j}"})
        if batch:
            response = client.post("/api/v1/events", json={"visitor": visitor, "events": batch}, headers=admin)
            assert response.status_code == 202, response.get_json()
            events[visitor] = [(e["name"], e["value"], e["ts"]) for e in batch]
    t0.pop("unexposed", None)
    found = storage.metric_sums(experiment, DEFINITIONS)
    for definition in DEFINITIONS:
        reference = _reference(definition, t0, events)
        got = {(s.variant_id, s.holdout): s for s in found[definition.key]}
        assert set(got) == set(reference)
        for cell, expected in reference.items():
            s = got[cell].unshifted()  # the stored sums are about the metric's mean (issue #16)
            if definition.type == "ratio":
                values = (s.numerator_sum, s.numerator_sumsq, s.denominator_sum, s.denominator_sumsq, s.cross_sum)
            else:
                values = (s.value_sum, s.value_sumsq, s.pre_sum, s.pre_sumsq, s.pre_cross_sum)
            assert s.visitors == expected[0]
            assert values == pytest.approx(tuple(expected[1:]), abs=1e-9)
    assert experiment_json["sticky"] is sticky
