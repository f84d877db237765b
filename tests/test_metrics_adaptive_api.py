"""Catalogue metrics under a bandit count every visitor: the per-hour SQL aggregate (checked
against an independent per-visitor computation) and the stats JSON, on both backends."""
from __future__ import annotations

import time

import numpy as np
import pytest

from app.domain.metrics import MetricDefinition, RatioPart
from app.storage import PERIOD_SECONDS, NewAssignment, NewEvent
from app.storage.metric_adaptive import _row, metric_period_sql, slice_sums

from .conftest import experiment_body

DEFINITIONS = (
    MetricDefinition(key="buy", name="b", type="conversion", event="buy", window_s=7200, cuped_window_s=50),
    MetricDefinition(key="spend", name="s", type="sum", event="buy", window_s=7200, cap=30.0),
    MetricDefinition(key="aov", name="a", type="ratio", numerator=RatioPart("buy", "sum"),
                     denominator=RatioPart("buy", "count"), window_s=7200),
    MetricDefinition(key="clicks", name="c", type="count", event="click", window_s=7200),
)


def _plant(storage, experiment, start: float, seed: int = 3):
    """Assignments over four hours with varying propensities, and events; returns the
    per-visitor truth: visitor -> (variant id, holdout, t0, propensity, [(name, value, ts)])."""
    rng = np.random.default_rng(seed)
    ids = [v.id for v in experiment.variants]
    truth = {}
    items = []
    for i in range(90):
        holdout = bool(rng.random() < 0.3)
        p = 0.5 if holdout else float(rng.choice([0.2, 0.8]))
        arm = ids[int(rng.integers(0, 2))]
        t0 = start + float(i * 120 + rng.uniform(0, 60))  # 90 visitors over four hours
        items.append(NewAssignment(experiment_id=experiment.id, variant_id=arm, visitor=f"u{i}", sticky=True,
                                   context={}, propensity=p, probabilities={ids[0]: p, ids[1]: 1 - p},
                                   holdout=holdout, model_version=0, created_at=t0))
        truth[f"u{i}"] = (arm, holdout, t0, p, [])
    storage.record_assignments(items)
    now = time.time()
    for visitor, (_arm, _h, t0, _p, events) in truth.items():
        for j in range(int(rng.integers(0, 4))):
            name = ["buy", "click"][int(rng.integers(0, 2))]
            event = (name, round(float(rng.uniform(1, 20)), 2), min(t0 + float(rng.uniform(-30, 8000)), now - 1))
            events.append(event)
            storage.record_events(visitor, [NewEvent(event[0], event[1], f"{visitor}-{j}", event[2])], now)
    return truth


def _y(definition, t0, events):
    inside = [e for e in events if t0 + definition.delay_s <= e[2] <= t0 + definition.delay_s + definition.window_s]
    if definition.type == "conversion":
        return float(any(e[0] == definition.event for e in inside))
    if definition.type == "count":
        return float(sum(1 for e in inside if e[0] == definition.event))
    total = sum(e[1] for e in inside if e[0] == definition.event)
    return min(total, definition.cap) if definition.cap is not None else total


def test_period_sums_equal_a_per_visitor_computation(app, make_experiment):
    storage = app.extensions["lever.services"].storage
    make_experiment(mode="bandit", holdout=0.3)
    experiment = storage.get_experiment("hero")
    start = (time.time() // PERIOD_SECONDS - 5) * PERIOD_SECONDS + 600.0  # five hours ago, mid-hour
    truth = _plant(storage, experiment, start)
    rows = storage.metric_period_sums(experiment, DEFINITIONS)
    assert len({r.period for r in rows}) == 4 and all(r.period % PERIOD_SECONDS == 0 for r in rows)
    got = {(r.period, r.variant_id, r.holdout): r for r in rows}
    reference: dict = {}
    for _visitor, (arm, holdout, t0, p, events) in truth.items():
        cell = reference.setdefault((int(t0 // PERIOD_SECONDS) * PERIOD_SECONDS, arm, holdout), {})
        for name, value in (("n", 1.0), ("w", 1 / p), ("u", 1 / p**2)):
            cell[name] = cell.get(name, 0.0) + value
        for index, definition in enumerate(DEFINITIONS):
            if definition.type == "ratio":
                continue
            y = _y(definition, t0, events)
            for name, value in (("y", y), ("yy", y * y), ("s", y / p), ("q", y * y / p**2), ("x", y / p**2)):
                cell[f"{name}{index}"] = cell.get(f"{name}{index}", 0.0) + value
    assert set(got) == set(reference)
    for key, cell in reference.items():
        row = got[key]
        assert row.visitors == cell["n"]
        assert (row.inv_propensity_sum, row.inv_propensity_sumsq) == pytest.approx((cell["w"], cell["u"]))
        for index, definition in enumerate(DEFINITIONS):
            if definition.type == "ratio":
                assert row.ips[index] is None
                continue
            sums = row.metrics[index].unshifted()
            assert (sums.value_sum, sums.value_sumsq) == pytest.approx((cell[f"y{index}"], cell[f"yy{index}"]))
            assert row.ips[index] == pytest.approx((cell[f"s{index}"], cell[f"q{index}"], cell[f"x{index}"]))
    # the live statement (the reference) gives the same rows, ratio sums included
    live = [_row(r, DEFINITIONS) for r in storage._read(*metric_period_sql(
        experiment, DEFINITIONS, storage._SCALAR_MIN, storage._PERIOD_OF.format(t0="t0")))]
    assert [(r.period, r.variant_id, r.holdout, r.visitors) for r in live] == [
        (r.period, r.variant_id, r.holdout, r.visitors) for r in rows]
    for a, b in zip(live, rows):
        assert (a.inv_propensity_sum, a.inv_propensity_sumsq) == pytest.approx((b.inv_propensity_sum,
                                                                                 b.inv_propensity_sumsq))
        for live_ips, read_ips in zip(a.ips, b.ips):  # None for the ratio
            assert (live_ips is None) == (read_ips is None)
            assert live_ips is None or live_ips == pytest.approx(read_ips)
        for x, y in zip(a.metrics, b.metrics):  # the folded rows are shifted: compare plain sums
            assert tuple(vars(x).values()) == pytest.approx(tuple(vars(y.unshifted()).values()))
    # the period rows add up to metric_sums' per-slice sums (which are shifted: compare plain sums)
    by_slice = slice_sums(rows, DEFINITIONS)
    direct = storage.metric_sums(experiment, DEFINITIONS)
    for definition in DEFINITIONS:
        a = sorted((s.unshifted() for s in direct[definition.key]), key=lambda s: (s.variant_id, s.holdout))
        b = [s.unshifted() for s in by_slice[definition.key]]
        assert [(s.variant_id, s.holdout, s.visitors) for s in a] == [(s.variant_id, s.holdout, s.visitors) for s in b]
        for x, y in zip(a, b):
            assert tuple(vars(x).values()) == pytest.approx(tuple(vars(y).values()))


def _metric(client, admin, **body):
    response = client.post("/api/v1/metrics", json=body, headers=admin)
    assert response.status_code == 201, response.get_json()


def test_bandit_stats_decide_on_every_visitor_for_each_metric(client, admin):
    _metric(client, admin, key="purchase_rate", type="conversion", event="purchase")
    _metric(client, admin, key="revenue", type="sum", event="purchase", cap=100)
    _metric(client, admin, key="aov", type="ratio", numerator={"event": "purchase", "aggregate": "sum"},
            denominator={"event": "purchase", "aggregate": "count"})
    _metric(client, admin, key="clicks", type="count", event="click")
    body = experiment_body(mode="bandit", holdout=0.1, metrics={
        "primary": "purchase_rate", "secondary": ["revenue", "aov"],
        "guardrails": [{"metric": "clicks", "max_regression": 0.1, "action": "alert"}]})
    assert client.post("/api/v1/experiments", json=body, headers=admin).status_code == 201
    rng = np.random.default_rng(5)
    rates = {"control": 0.05, "b": 0.4}
    visitors = 260
    for i in range(visitors):
        assigned = client.post("/api/v1/assign", json={"experiment": "hero", "visitor": f"v{i}"}).get_json()
        events = [{"name": "click"}] * int(rng.integers(0, 3))
        if rng.random() < rates[assigned["variant"]]:
            events.append({"name": "purchase", "value": round(float(rng.uniform(5, 60)), 2)})
        if events:
            response = client.post("/api/v1/events", json={"visitor": f"v{i}", "visitor_token": assigned["visitor_token"],
                                                           "events": events})
            assert response.status_code == 202, response.get_json()
    stats = client.get("/api/v1/experiments/hero/stats", headers=admin).get_json()
    by_key = {m["key"]: m for m in stats["metrics"]}
    assert list(by_key) == ["purchase_rate", "revenue", "aov", "clicks"]
    for key in ("purchase_rate", "revenue", "clicks"):
        control, treatment = by_key[key]["variants"]
        holdout_visitors = control["visitors"] + treatment["visitors"]
        uplift = treatment["uplift"]
        adaptive = uplift["adaptive"]
        assert adaptive["method"] == "aipw_stabilised" and adaptive["reason"] is None, (key, adaptive)
        assert adaptive["decisions"] == visitors > holdout_visitors  # every visitor, not the holdout's ~26
        assert uplift["decision_rule"] == "adaptive_anytime_valid"
        assert uplift["ci_always_valid"] == adaptive["ci_always_valid"]
        assert uplift["always_valid_p_value"] == adaptive["always_valid_p_value"]
        assert uplift["decision"] == adaptive["decision"]
        low, high = adaptive["ci_always_valid"]
        assert low <= adaptive["absolute"] <= high and adaptive["ci"][0] > low
        assert adaptive["absolute"] == pytest.approx(adaptive["treatment_value"] - adaptive["control_value"])
    # the primary's all-visitor estimate is the reward's own adaptive estimate (same visitors, same sums)
    primary = by_key["purchase_rate"]["variants"][1]["uplift"]
    assert primary["adaptive"]["absolute"] == pytest.approx(stats["variants"][1]["uplift"]["adaptive"]["absolute"])
    assert primary["decision"] != "worse"
    ratio = by_key["aov"]["variants"][1]["uplift"]
    assert ratio["adaptive"]["reason"] == "ratio_adaptive_not_supported" and ratio["decision_rule"] == "anytime_valid"
    guard = by_key["clicks"]["variants"][1]["guardrail"]
    assert guard["method"] == "aipw_stabilised" and guard["status"] in ("ok", "failing", "not_enough_data")
    (personal,) = [g for g in stats["personalisation_guardrails"] if g["metric"] == "purchase_rate"]
    assert personal["method"] == "ips_deployed_policy"
    lifts = {entry["metric"]: entry for entry in stats["personalisation_lift"]}
    assert set(lifts) == {"purchase_rate", "revenue", "clicks"}  # not the ratio
    lift = lifts["purchase_rate"]["vs_holdout"]
    assert lift["method"] == "ips_deployed_policy" and lift["decisions"] == visitors
    assert lift["control_value"] == pytest.approx(
        sum(v["value"] * v["visitors"] for v in by_key["purchase_rate"]["variants"]) / holdout_visitors)
