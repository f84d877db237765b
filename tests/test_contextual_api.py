"""Contextual mode through the HTTP API: enrichment, explanation, a planted per-device winner."""
from __future__ import annotations

import numpy as np
import pytest

from bandits import LinearArmState

CONTEXT = [
    {"name": "device", "type": "categorical", "levels": ["mobile", "desktop", "tablet"]},
    {"name": "hour", "type": "cyclic", "period": 24},
    {"name": "returning", "type": "boolean"},
]
IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"


def test_server_side_enrichment_fills_only_what_the_client_did_not_send(client, make_experiment, app):
    make_experiment(mode="contextual", context=CONTEXT)
    body = client.post("/api/v1/assign", json={"experiment": "hero", "visitor": "e1", "context": {"hour": 3, "x": 1}},
                       headers={"User-Agent": IPHONE}).get_json()
    assert body["explanation"]["ignored_context_keys"] == ["x"]
    assert set(body["explanation"]["predicted"]) == {"control", "b"}
    storage = app.extensions["lever.storage"]
    stored = storage.get_assignment(1)
    assert stored.context == {"hour": 3, "x": 1, "device": "mobile", "returning": False}
    client.post("/api/v1/assign", json={"experiment": "hero", "visitor": "e1"})  # sticky: no new visit counted
    make_experiment("second", mode="contextual", context=CONTEXT)
    again = client.post("/api/v1/assign", json={"experiment": "second", "visitor": "e1"})
    assert again.status_code == 200
    assert storage.get_assignment(2).context["returning"] is True


@pytest.mark.parametrize("bad_context, word", [
    ([{"name": "device", "type": "categorical"}], "levels"),
    ([{"name": "hour", "type": "cyclic", "period": -1}], "period"),
    ([{"name": "x", "type": "nope"}], "unknown type"),
    ([], "at least one"),
])
def test_invalid_context_schema_is_400(client, admin, bad_context, word):
    from .conftest import experiment_body

    response = client.post("/api/v1/experiments", json=experiment_body(mode="contextual", context=bad_context),
                           headers=admin)
    assert response.status_code == 400 and word in response.get_json()["error"]["message"]


@pytest.mark.slow
def test_recovers_a_planted_per_device_winner_through_the_api(client, make_experiment, app, runner):
    """mobile converts best on b, desktop on control: the policy must serve each its winner."""
    make_experiment(mode="contextual", context=CONTEXT, holdout=0.0, sticky=False)
    truth = {("mobile", "control"): 0.05, ("mobile", "b"): 0.25, ("desktop", "control"): 0.25, ("desktop", "b"): 0.05}
    rng = np.random.default_rng(11)
    served: list[tuple[str, str]] = []
    for i in range(3000):
        device = ("mobile", "desktop")[int(rng.integers(2))]
        body = client.post("/api/v1/assign", json={"experiment": "hero", "visitor": f"p{i}",
                                                   "context": {"device": device, "hour": int(rng.integers(24))}}).get_json()
        served.append((device, body["variant"]))
        if rng.random() < truth[(device, body["variant"])]:
            client.post("/api/v1/reward", json={"assignment": body["assignment"]})
    last = served[-800:]
    for device, best in (("mobile", "b"), ("desktop", "control")):
        picks = [variant for d, variant in last if d == device]
        assert picks.count(best) / len(picks) >= 0.8, (device, picks.count(best) / len(picks))

    # the stored model states equal a rebuild from the event log
    storage = app.extensions["lever.storage"]
    experiment = storage.get_experiment("hero")
    before = storage.learning_snapshot(experiment.id).model_states
    assert runner.invoke(args=["rebuild-stats", "hero"]).exit_code == 0
    after = storage.learning_snapshot(experiment.id).model_states
    assert before.keys() == after.keys()
    for variant_id in before:
        a, b = LinearArmState.from_bytes(before[variant_id]), LinearArmState.from_bytes(after[variant_id])
        np.testing.assert_allclose(a.precision_increment, b.precision_increment, rtol=1e-9)
        np.testing.assert_allclose(a.target, b.target, rtol=1e-9, atol=1e-12)
