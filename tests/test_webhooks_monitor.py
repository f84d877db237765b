"""The monitor: conditions read from the stats JSON, each raised once per transition into
its bad state (not on every check), on both backends; delivered once each to a loopback
receiver. Synthetic stats dicts stand in for sections other branches add (guardrails)."""
from __future__ import annotations

import random
import threading
import time

import pytest

from app.service.monitor import CONDITIONS, evaluate, observations
from app.service.webhooks import HttpSender, deliver_due

from .test_webhooks import ALL_EVENTS, register
from .webhook_receiver import Receiver


def synthetic(srm_ok=True, decision="inconclusive", guardrail="ok", personalisation="inconclusive",
              mode="bandit") -> dict:
    """The parts of a stats JSON the monitor reads, in the shape ``GET .../stats`` has."""
    return {
        "experiment": "hero", "mode": mode, "control": "control", "analysis_slice": "holdout",
        "variants": [
            {"key": "control", "uplift": None},
            {"key": "b", "uplift": {"decision": decision, "relative": 0.125, "absolute": 0.01,
                                    "ci_relative": [0.05, 0.2], "always_valid_p_value": 0.0021}},
        ],
        "srm": {"ok": srm_ok, "p_value": 0.5 if srm_ok else 2e-6, "threshold": 0.001,
                "observed": {"control": 500, "b": 400}, "expected": {"control": 450.0, "b": 450.0},
                "method": "chi_square_vs_propensities", "reason": None if srm_ok is not None else "no_data"},
        "metrics": [{"key": "latency", "role": "guardrail", "variants": [
            {"key": "control", "guardrail": None},
            {"key": "b", "guardrail": {"status": guardrail, "action": "pause", "always_valid_p_value": 0.01}},
        ]}],
        "guardrail_actions": ([{"metric": "latency", "variant": "b", "action": "pause"}]
                              if guardrail == "failing" else []),
        "personalisation": {"vs_holdout": {"decision": personalisation, "relative": -0.081,
                                           "ci_relative": [-0.15, -0.01], "always_valid_p_value": 0.004}},
    }


@pytest.fixture
def hero(app, make_experiment):
    make_experiment("hero")
    return app.extensions["lever.storage"].get_experiment("hero")


def raise_for(app, experiment, stats, now) -> list[str]:
    storage = app.extensions["lever.storage"]
    return sorted(e.type for e in storage.observe(experiment.id, observations(experiment, stats, now), now))


def test_each_condition_is_raised_once_per_transition_into_its_bad_state(app, client, admin, hero):
    with Receiver() as receiver:
        register(client, admin, receiver.url, ALL_EVENTS)
        steps = [
            (synthetic(), []),
            (synthetic(srm_ok=False, decision="better", guardrail="failing", personalisation="worse"),
             ["experiment.significant", "guardrail.failing", "personalisation.hurting", "srm.detected"]),
            (synthetic(srm_ok=False, decision="better", guardrail="failing", personalisation="worse"), []),
            (synthetic(srm_ok=False, decision="better", guardrail="failing", personalisation="worse"), []),
            # resolved (recorded, silent); better -> worse is a new bad state
            (synthetic(srm_ok=True, decision="worse", guardrail="not_enough_data", personalisation="worse"),
             ["experiment.significant"]),
            # no SRM verdict (thin data): the stored state stands; the guardrail relapses
            (synthetic(srm_ok=None, decision="worse", guardrail="failing", personalisation="worse"),
             ["guardrail.failing"]),
            (synthetic(srm_ok=False, decision="worse", guardrail="failing", personalisation="worse"),
             ["srm.detected"]),
            # mode ab: personalisation is not monitored, its state stands
            (synthetic(srm_ok=False, decision="worse", guardrail="failing", personalisation="worse", mode="ab"), []),
        ]
        now = time.time()
        raised = []
        for i, (stats, expected) in enumerate(steps):
            got = raise_for(app, hero, stats, now + i)
            assert got == expected, (i, got)
            raised += got
            at = now + i
            deliver_due(app.extensions["lever.storage"], HttpSender(frozenset()), lambda: at, "w",  # noqa: B023
                        random.Random(0))
        received = receiver.wait_for(len(raised))
        assert sorted(r.json["type"] for r in received) == sorted(raised)
        assert len({r.json["id"] for r in received}) == len(raised)  # each sent once

    states = app.extensions["lever.storage"].monitor_states(hero.id)
    assert states == {("srm.detected", ""): "mismatch", ("experiment.significant", "b"): "worse",
                      ("guardrail.failing", "latency/b"): "failing", ("personalisation.hurting", ""): "worse"}
    by_type = {r.json["type"]: r.json for r in received}
    srm = by_type["srm.detected"]
    assert srm["experiment"] == {"key": "hero", "name": "Hero"}
    assert srm["data"]["p_value"] == 2e-6 and srm["data"]["observed"] == {"control": 500, "b": 400}
    assert "Sample-ratio mismatch on hero" in srm["summary"] and "p < 0.0001" in srm["summary"]
    guard = by_type["guardrail.failing"]["data"]
    assert guard["metric"] == "latency" and guard["variant"] == "b" and guard["guardrail"]["action"] == "pause"
    assert guard["guardrail_actions"] == [{"metric": "latency", "variant": "b", "action": "pause"}]
    assert "-8.1%" in by_type["personalisation.hurting"]["summary"]


def test_missing_or_malformed_sections_report_no_state():
    for stats in ({}, {"srm": None, "variants": None, "metrics": None, "personalisation": None, "mode": "bandit"},
                  {"srm": {"ok": "yes"}, "variants": [{"key": "b", "uplift": {"decision": None}}],
                   "metrics": [{"key": "m", "variants": [{"key": "b", "guardrail": {"status": 3}}]}],
                   "personalisation": {"vs_holdout": None}, "mode": "contextual", "control": "control"}):
        assert {name: find(stats) for name, find in CONDITIONS.items()} == {name: [] for name in CONDITIONS}


def test_each_metric_and_variant_is_its_own_subject(app, hero):
    stats = synthetic()
    stats["metrics"] = [{"key": m, "variants": [{"key": v, "guardrail": {"status": "failing", "action": "alert"}}
                                                for v in ("b", "c")]} for m in ("latency", "errors")]
    assert raise_for(app, hero, stats, time.time()) == ["guardrail.failing"] * 4
    assert raise_for(app, hero, stats, time.time()) == []


def test_evaluate_on_a_real_experiment_raises_significance_once(app, client, admin, runner, make_experiment):
    make_experiment("split", mode="ab", variants=["control", "b", "c"])
    result = runner.invoke(args=["simulate", "split", "--visitors", "300", "--rates", "control=0.02,b=0.5,c=0.02"])
    assert result.exit_code == 0, result.output
    decisions = {v["key"]: (v["uplift"] or {}).get("decision")
                 for v in client.get("/api/v1/experiments/split/stats", headers=admin).get_json()["variants"]}
    assert decisions == {"control": None, "b": "better", "c": "inconclusive"}
    services = app.extensions["lever.services"]
    with Receiver() as receiver:
        hook = register(client, admin, receiver.url, ALL_EVENTS)
        for _ in range(3):  # the worker's schedule: evaluate, deliver, again and again
            report = evaluate(services, time.time())
            assert report.experiments == 1
            deliver_due(services.storage, HttpSender(frozenset()), time.time, "w", random.Random(0))
        (got,) = receiver.wait_for(1)
        assert got.json["type"] == "experiment.significant"
        assert got.json["data"]["variant"] == "b" and got.json["data"]["decision"] == "better"
        assert "variant b is better than the control" in got.json["summary"]
        assert client.patch("/api/v1/experiments/split", json={"status": "paused"}, headers=admin).status_code == 200
        assert evaluate(services, time.time()).experiments == 0  # only running experiments are watched
        log = client.get(f"/api/v1/webhooks/{hook['id']}/deliveries", headers=admin).get_json()["deliveries"]
        assert [d["event_type"] for d in log] == ["experiment.significant"]


def test_two_monitors_at_once_raise_a_transition_once(app, hero):
    stats = synthetic(srm_ok=False)
    barrier = threading.Barrier(4)
    raised: list[list[str]] = []

    def monitor() -> None:
        barrier.wait()
        raised.append(raise_for(app, hero, stats, time.time()))

    threads = [threading.Thread(target=monitor) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(t for r in raised for t in r) == ["srm.detected"] and len(raised) == 4
