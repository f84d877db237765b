"""Cyclic ``harmonics``/``parts`` through the HTTP API: validated (400 naming the field), stored as
declared, and described by ``GET /api/v1/experiments/<key>/policy``."""
from __future__ import annotations

import pytest

from .conftest import experiment_body

HOUR_PARTS = {"name": "hour", "type": "cyclic", "period": 24, "parts": [0, 9, 18], "harmonics": 2}
CONTEXT = [{"name": "device", "type": "categorical", "levels": ["mobile", "desktop"]}, HOUR_PARTS]


@pytest.mark.parametrize("hour, word", [
    ({"name": "hour", "type": "cyclic", "period": 24, "harmonics": 9}, "harmonics"),
    ({"name": "hour", "type": "cyclic", "period": 24, "harmonics": "2"}, "harmonics"),
    ({"name": "hour", "type": "cyclic", "period": 24, "parts": [18, 9]}, "parts"),
    ({"name": "hour", "type": "cyclic", "period": 24, "parts": [0, 30]}, "parts"),
    ({"name": "hour", "type": "cyclic", "period": 24, "parts": {"evening": 18}}, "parts"),
])
def test_bad_cyclic_shape_is_400_naming_the_field(client, admin, hour, word):
    body = experiment_body(mode="contextual", context=[hour])
    response = client.post("/api/v1/experiments", json=body, headers=admin)
    assert response.status_code == 400, response.get_json()
    error = response.get_json()["error"]
    assert word in error["message"] and "hour" in error["message"]
    assert client.get("/api/v1/experiments/hero", headers=admin).status_code == 404  # no partial write


def test_declared_parts_are_stored_used_and_described(client, admin, make_experiment):
    make_experiment(mode="contextual", context=CONTEXT, crosses=[["device", "hour"]])
    stored = client.get("/api/v1/experiments/hero", headers=admin).get_json()
    hour = next(f for f in stored["context"] if f["name"] == "hour")
    assert hour["parts"] == [0, 9, 18] and hour["harmonics"] == 2
    for i, h in enumerate((20, 10, 3, 21)):
        response = client.post("/api/v1/assign", json={"experiment": "hero", "visitor": f"v{i}",
                                                       "context": {"device": "mobile", "hour": h}})
        assert response.status_code == 200
    policy = client.get("/api/v1/experiments/hero/policy", headers=admin).get_json()
    features = policy["contextual"]["features"]
    described = next(f for f in features["features"] if f["name"] == "hour")
    assert described["parts"] == [0, 9, 18] and described["harmonics"] == 2
    assert "hour@18-0" in described["columns"] and "device=mobile*hour@18-0" in features["columns"]
    assert features["width"] == 1 + 3 + 7 + 3 * 7
