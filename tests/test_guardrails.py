"""Guardrails that act: a failing stop_variant guardrail takes the variant out of allocation
with exact re-normalised propensities, returning visitors see the control, alerts are
recorded once, personalisation that hurts is flagged, and the schedule's lease lets one
process evaluate per interval — on both backends."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from app import create_app
from app.domain.experiments import Experiment, Variant
from app.service import guardrails
from app.service.modes import FixedPolicy
from app.service.modes.bandit import ThompsonPolicy
from app.service.modes.stopped import WithoutStopped, served_mask
from app.storage import NewAssignment, NewEvent
from bandits import FixedWeights

from .conftest import ADMIN_TOKEN, SECRET_KEY, experiment_body


def _experiment(stopped=("b",), sticky=False) -> Experiment:
    return Experiment(key="g", name="g", mode="bandit", reward="binary", control="control", sticky=sticky,
                      variants=(Variant("control", id=1), Variant("b", id=2), Variant("c", id=3)),
                      stopped_variants=stopped)


@pytest.mark.parametrize("inner", [
    ThompsonPolicy(np.array([0.2, 0.5, 0.3]), np.zeros(3), np.zeros((3, 2))),
    FixedPolicy(FixedWeights([0.2, 0.5, 0.3]), "bucket", always_hashed=True),
])
def test_stopped_variant_is_never_served_and_propensities_are_exact(inner):
    experiment = _experiment()
    policy = WithoutStopped(inner, served_mask(experiment))
    rng = np.random.default_rng(3)
    n = 20_000
    decisions = [policy.select(experiment, f"visitor-{i}", None, rng) for i in range(n)]
    arms = np.array([d.arm for d in decisions])
    logged = np.array([d.propensity for d in decisions])
    assert np.allclose(logged, np.array([0.4, 0.0, 0.6])[arms], rtol=0, atol=1e-12)
    assert np.allclose(np.array([d.probabilities for d in decisions]), [0.4, 0.0, 0.6], rtol=0, atol=1e-12)
    frequencies = np.bincount(arms, minlength=3) / n
    assert frequencies[1] == 0.0
    se = np.sqrt(0.4 * 0.6 / n)
    assert abs(frequencies[0] - 0.4) < 4 * se and abs(frequencies[2] - 0.6) < 4 * se
    assert policy.allocation.tolist() == pytest.approx([0.4, 0.0, 0.6])


def test_hashed_visitors_outside_the_stopped_bucket_keep_their_variant():
    experiment = _experiment()
    inner = FixedPolicy(FixedWeights([1, 1, 1]), "bucket", always_hashed=True)
    policy = WithoutStopped(inner, served_mask(experiment))
    rng = np.random.default_rng(0)
    for i in range(500):
        before = inner.select(experiment, f"v{i}", None, rng).arm
        after = policy.select(experiment, f"v{i}", None, rng).arm
        assert after == before if before != 1 else after in (0, 2)


def _metric(client, admin, **body):
    assert client.post("/api/v1/metrics", json=body, headers=admin).status_code == 201


@pytest.mark.slow
def test_stop_variant_guardrail_end_to_end(app, client, admin):
    _metric(client, admin, key="purchase_rate", type="conversion", event="purchase")
    _metric(client, admin, key="bounce", type="conversion", event="bounce", higher_is_better=False)
    body = experiment_body(mode="ab", holdout=0.0, variants=[{"key": "control"}, {"key": "b"}, {"key": "c"}],
                           metrics={"primary": "purchase_rate", "guardrails": [
                               {"metric": "bounce", "max_regression": 0.0, "action": "stop_variant"}]})
    assert client.post("/api/v1/experiments", json=body, headers=admin).status_code == 201
    rng = np.random.default_rng(11)
    bounce_rate = {"control": 0.1, "b": 0.7, "c": 0.1}
    served_b = None
    for i in range(360):
        assigned = client.post("/api/v1/assign", json={"experiment": "hero", "visitor": f"v{i}"}).get_json()
        if assigned["variant"] == "b" and served_b is None:
            served_b = f"v{i}"
        if rng.random() < bounce_rate[assigned["variant"]]:
            client.post("/api/v1/events", json={"visitor": f"v{i}", "visitor_token": assigned["visitor_token"],
                                                "events": [{"name": "bounce"}]})
    stats = client.get("/api/v1/experiments/hero/stats", headers=admin).get_json()
    guard = {v["key"]: v["guardrail"] for v in stats["metrics"][1]["variants"]}
    assert stats["metrics"][1]["key"] == "bounce" and stats["metrics"][1]["role"] == "guardrail"
    assert guard["b"]["status"] == "failing" and guard["c"]["status"] != "failing"
    assert guard["b"]["always_valid_p_value"] < 0.05
    (action,) = stats["guardrail_actions"]
    assert (action["metric"], action["variant"], action["action"]) == ("bounce", "b", "stop_variant")
    assert action["evidence"]["guardrail"]["status"] == "failing"
    assert stats["stopped_variants"] == ["b"]
    again = client.get("/api/v1/experiments/hero/stats", headers=admin).get_json()
    assert len(again["guardrail_actions"]) == 1  # recorded once
    audited = client.get("/api/v1/audit", query_string={"experiment": "hero"}, headers=admin).get_json()["entries"]
    (acted,) = [e for e in audited if e["action"] == "guardrail.action"]  # once, with the action
    assert (acted["actor"], acted["target"], acted["after"]["action"]) == ("guardrail", "bounce/b", "stop_variant")
    assert client.get("/api/v1/experiments/hero", headers=admin).get_json()["stopped_variants"] == ["b"]

    time.sleep(0.06)  # past LEVER_REFRESH_MS: every worker sees the stop
    seen = {}
    for i in range(150):
        assigned = client.post("/api/v1/assign", json={"experiment": "hero", "visitor": f"new{i}"}).get_json()
        seen.setdefault(assigned["variant"], set()).add(assigned["propensity"])
    assert set(seen) == {"control", "c"}
    assert seen == {"control": {0.5}, "c": {0.5}}
    returning = client.post("/api/v1/assign", json={"experiment": "hero", "visitor": served_b}).get_json()
    assert returning["variant"] == "control" and returning["sticky"] is True
    reward = client.post("/api/v1/reward", json={"assignment": returning["assignment"]})
    assert reward.status_code == 202  # its token still names the assignment as made


def test_alert_guardrail_records_without_stopping(app, client, admin):
    _metric(client, admin, key="purchase_rate", type="conversion", event="purchase")
    body = experiment_body(mode="ab", holdout=0.0, metrics={"primary": "bounce_free", "guardrails": []})
    _metric(client, admin, key="bounce_free", type="conversion", event="stay")
    body["metrics"] = {"primary": "bounce_free", "guardrails": [{"metric": "purchase_rate", "action": "alert"}]}
    assert client.post("/api/v1/experiments", json=body, headers=admin).status_code == 201
    storage = app.extensions["lever.services"].storage
    experiment = storage.get_experiment("hero")
    now = time.time()
    _plant(storage, experiment, now, {("control", False): (150, 0.5), ("b", False): (150, 0.05)}, "purchase")
    stats = client.get("/api/v1/experiments/hero/stats", headers=admin).get_json()
    assert [(a["variant"], a["action"]) for a in stats["guardrail_actions"]] == [("b", "alert")]
    assert stats["stopped_variants"] == []


def _plant(storage, experiment, now, cells, event):
    """Assignments per (variant, holdout) cell with a planted event rate, written through storage."""
    ids = {v.key: v.id for v in experiment.variants}
    count = 0
    for (variant, holdout), (n, rate) in cells.items():
        items = [NewAssignment(experiment_id=experiment.id, variant_id=ids[variant], visitor=f"{variant}-{holdout}-{i}",
                               sticky=True, context={}, propensity=0.5, probabilities={ids[variant]: 1.0},
                               holdout=holdout, model_version=0, created_at=now - 100) for i in range(n)]
        storage.record_assignments(items)
        for i in range(int(round(n * rate))):
            storage.record_events(f"{variant}-{holdout}-{i}", [NewEvent(event, 1.0, None, now - 50)], now)
            count += 1
    return count


def test_personalisation_that_hurts_is_an_alert(app, client, admin):
    _metric(client, admin, key="buy", type="conversion", event="buy")
    body = experiment_body(holdout=0.2, metrics={"primary": "buy"})
    assert client.post("/api/v1/experiments", json=body, headers=admin).status_code == 201
    storage = app.extensions["lever.services"].storage
    experiment = storage.get_experiment("hero")
    _plant(storage, experiment, time.time(), {("control", True): (150, 0.5), ("b", True): (150, 0.5),
                                             ("control", False): (150, 0.1), ("b", False): (150, 0.1)}, "buy")
    stats = client.get("/api/v1/experiments/hero/stats", headers=admin).get_json()
    assert "personalisation_hurting" in [w["code"] for w in stats["warnings"]]
    (check,) = stats["personalisation_guardrails"]
    assert check["metric"] == "buy" and check["status"] == "failing"
    assert [(a["variant"], a["action"]) for a in stats["guardrail_actions"]] == [("policy", "alert")]


def test_schedule_lease_lets_one_process_evaluate_per_interval(app):
    services = app.extensions["lever.services"]
    now = 1_000_000.0
    assert guardrails.run_due(services.storage, services.cache, now, 60, "worker-1") == []
    assert guardrails.run_due(services.storage, services.cache, now + 1, 60, "worker-2") is None
    assert guardrails.run_due(services.storage, services.cache, now + 30, 60, "worker-1") is None
    assert guardrails.run_due(services.storage, services.cache, now + 61, 60, "worker-2") == []


def test_the_schedule_stops_when_its_storage_is_closed(database_url):
    """A background schedule must not outlive its storage (it would read a closed or dropped database)."""
    app = create_app({"DATABASE_URL": database_url, "LEVER_ADMIN_TOKEN": ADMIN_TOKEN, "LEVER_SECRET_KEY": SECRET_KEY,
                      "LEVER_RATE_LIMIT": "", "LEVER_GUARDRAIL_INTERVAL_S": 0.05})
    before = {t.ident for t in threading.enumerate() if t.name == "lever-guardrails"}
    assert app.test_client().get("/healthz").status_code == 200  # the first request starts the schedule
    (schedule,) = [t for t in threading.enumerate() if t.name == "lever-guardrails" and t.ident not in before]
    assert schedule.is_alive()
    app.extensions["lever.storage"].close()
    schedule.join(timeout=5)
    assert not schedule.is_alive()
