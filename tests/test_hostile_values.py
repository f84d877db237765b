"""Issue: no single request can poison an experiment (values).

A reward of 1e308 passed the "finite number" check, its square overflowed, and the
counters became Inf/NaN: assign, further rewards and erasure answered 500 and /policy
emitted NaN. Every value is now bounded at the edge (LEVER_MAX_ABS_VALUE, an experiment's
``max_abs_value``), every derived counter increment is checked finite before anything is
written, and JSON output is strict. Both backends, real databases.
"""
from __future__ import annotations

import json
import math

import pytest

from app import create_app
from app.domain.requests import MAX_ABS_VALUE_CEILING

from .conftest import ADMIN_TOKEN, SECRET_KEY
from .dbutil import query
from .hostile import assert_error, assert_still_works, strict_json


def rows(app) -> tuple:
    """What a refused request must not change (the SQLite fold of decision counts may run on any read)."""
    url = app.config["DATABASE_URL"]
    return (query(url, "SELECT COUNT(*) FROM assignments")[0][0], query(url, "SELECT COUNT(*) FROM rewards")[0][0],
            *query(url, "SELECT SUM(reward_events), SUM(reward_sum), SUM(reward_sumsq) FROM arm_stats")[0])


def counters_finite(app) -> bool:
    url = app.config["DATABASE_URL"]
    values = query(url, "SELECT reward_sum, reward_sumsq, ips_reward_sum, ips_reward_sumsq, ips_cross_sum "
                        "FROM arm_stats") + query(url, "SELECT reward_total FROM assignments")
    return all(v is not None and math.isfinite(v) for row in values for v in row)


@pytest.fixture
def numeric(make_experiment):
    make_experiment("num", reward="numeric", variants=["a", "b"], control="a")
    return "num"


def assign(client, key: str, visitor: str) -> str:
    response = client.post("/api/v1/assign", json={"experiment": key, "visitor": visitor})
    assert response.status_code == 200, response.get_json()
    return response.get_json()["assignment"]


def post_raw(client, path: str, text: str):
    return client.post(path, data=text.encode(), content_type="application/json")


# -- the reported defect -------------------------------------------------------------------

@pytest.mark.parametrize("value", ["1e308", "-1e308", "1e200", "1.7976931348623157e308", "1000000001",
                                   "1" + "0" * 30])
def test_a_huge_reward_is_refused_and_the_experiment_keeps_working(client, admin, app, numeric, value):
    token = assign(client, numeric, "v1")
    before = rows(app)
    for _ in range(2):  # PostgreSQL accepted two 1e200 rewards
        response = post_raw(client, "/api/v1/reward", f'{{"assignment": "{token}", "value": {value}}}')
        assert_error(response, 400, "value_out_of_range")
    assert rows(app) == before
    assert counters_finite(app)
    assert_still_works(client, admin, numeric, value=12.5)


def test_the_bound_itself_is_accepted(client, admin, app, numeric):
    token = assign(client, numeric, "v1")
    for value in (1e9, -1e9, 5e-324, -0.0, 0.0):
        response = client.post("/api/v1/reward", json={"assignment": token, "value": value, "event_id": repr(value)})
        assert response.status_code == 202, response.get_json()
    total = query(app.config["DATABASE_URL"], "SELECT reward_total FROM assignments")[0][0]
    assert total == pytest.approx(5e-324, abs=1e-300)
    assert counters_finite(app)
    assert_still_works(client, admin, numeric)


def test_reward_by_visitor_is_bounded_too(client, app, numeric):
    assign(client, numeric, "v1")
    response = client.post("/api/v1/reward", json={"experiment": numeric, "visitor": "v1", "value": -2e9})
    assert_error(response, 400, "value_out_of_range")


def test_context_numbers_are_bounded(client, numeric, app):
    before = rows(app)
    for number in ("1e308", "-1e10", str(10 ** 20)):
        response = post_raw(client, "/api/v1/assign",
                            f'{{"experiment": "{numeric}", "visitor": "v", "context": {{"n": {number}}}}}')
        assert_error(response, 400, "value_out_of_range")
    assert rows(app) == before


# -- the configurable bounds ------------------------------------------------------------

def make_app(database_url: str, **settings):
    return create_app({"TESTING": True, "DATABASE_URL": database_url, "LEVER_ADMIN_TOKEN": ADMIN_TOKEN,
                       "LEVER_SECRET_KEY": SECRET_KEY, "LEVER_ENV": "test", "LEVER_RATE_LIMIT": "", **settings})


def test_the_global_bound_is_a_setting(database_url, admin):
    app = make_app(database_url, LEVER_MAX_ABS_VALUE=100.0)
    try:
        client = app.test_client()
        created = client.post("/api/v1/experiments", json={"key": "num", "reward": "numeric", "variants": ["a", "b"]},
                              headers=admin)
        assert created.status_code == 201
        token = assign(client, "num", "v1")
        assert_error(client.post("/api/v1/reward", json={"assignment": token, "value": 100.5}), 400,
                     "value_out_of_range")
        assert client.post("/api/v1/reward", json={"assignment": token, "value": 100}).status_code == 202
        # an experiment cannot loosen the global bound
        loose = client.post("/api/v1/experiments", headers=admin,
                            json={"key": "loose", "reward": "numeric", "variants": ["a", "b"], "max_abs_value": 1000})
        assert loose.status_code == 201
        token = assign(client, "loose", "v1")
        assert_error(client.post("/api/v1/reward", json={"assignment": token, "value": 500}), 400,
                     "value_out_of_range")
        spec = app.extensions["lever.openapi"]
        assert "100" in json.dumps(spec["components"]["schemas"]["RewardRequest"])
    finally:
        app.extensions["lever.storage"].close()


@pytest.mark.parametrize("text", ["0", "-1", "nan", "inf", "1e16", "abc"])
def test_the_setting_refuses_unusable_bounds(text, monkeypatch, database_url):
    from app.settings import SettingsError, load_settings

    with pytest.raises(SettingsError, match="LEVER_MAX_ABS_VALUE"):
        load_settings({"LEVER_MAX_ABS_VALUE": text})
    assert load_settings({"LEVER_MAX_ABS_VALUE": "2.5e6"})["LEVER_MAX_ABS_VALUE"] == 2.5e6


def test_an_experiment_can_tighten_the_bound(client, admin, app):
    created = client.post("/api/v1/experiments", headers=admin,
                          json={"key": "tight", "reward": "numeric", "variants": ["a", "b"], "max_abs_value": 50})
    assert created.status_code == 201 and created.get_json()["max_abs_value"] == 50
    assert client.get("/api/v1/experiments/tight", headers=admin).get_json()["max_abs_value"] == 50
    token = assign(client, "tight", "v1")
    before = rows(app)
    assert_error(client.post("/api/v1/reward", json={"assignment": token, "value": 50.01}), 400, "value_out_of_range")
    assert rows(app) == before
    assert client.post("/api/v1/reward", json={"assignment": token, "value": -50}).status_code == 202
    default = client.post("/api/v1/experiments", headers=admin, json={"key": "plain", "variants": ["a", "b"]})
    assert default.get_json()["max_abs_value"] is None


@pytest.mark.parametrize("bound", [0, -5, "10", True, None, MAX_ABS_VALUE_CEILING * 10])
def test_max_abs_value_must_be_a_positive_finite_number(client, admin, bound):
    body = {"key": "bad", "reward": "numeric", "variants": ["a", "b"], "max_abs_value": bound}
    if bound is None:
        assert client.post("/api/v1/experiments", json=body, headers=admin).status_code == 201
        return
    assert_error(client.post("/api/v1/experiments", json=body, headers=admin), 400, "invalid_request")


def test_max_abs_value_nan_or_infinity_is_refused(client, admin):
    for literal in ("NaN", "Infinity", "1e999"):
        text = f'{{"key": "bad", "reward": "numeric", "variants": ["a", "b"], "max_abs_value": {literal}}}'
        assert_error(client.post("/api/v1/experiments", data=text, content_type="application/json", headers=admin),
                     400, "invalid_request")


# -- derived sums: checked finite before anything is written ------------------------------

def test_a_reward_whose_sums_would_overflow_writes_nothing(client, app, numeric):
    """A total planted as an older version wrote it (1e300): any further reward would square past
    the float range; it is refused with a 409 and nothing is half-written."""
    token = assign(client, numeric, "v1")
    assert client.post("/api/v1/reward", json={"assignment": token, "value": 3, "event_id": "e1"}).status_code == 202
    url = app.config["DATABASE_URL"]
    query(url, "UPDATE assignments SET reward_total = 1e300")
    before = rows(app), query(url, "SELECT reward_sum, reward_sumsq FROM arm_stats ORDER BY 1, 2")
    response = client.post("/api/v1/reward", json={"assignment": token, "value": 1e9, "event_id": "e2"})
    assert_error(response, 409, "non_finite_counters")
    assert "repair-values" in response.get_json()["error"]["message"]
    assert (rows(app), query(url, "SELECT reward_sum, reward_sumsq FROM arm_stats ORDER BY 1, 2")) == before
    assert query(url, "SELECT reward_total FROM assignments")[0][0] == 1e300


def test_erasing_a_visitor_with_a_non_finite_total_answers_409_not_500(client, admin, app, numeric):
    token = assign(client, numeric, "v1")
    client.post("/api/v1/reward", json={"assignment": token, "value": 3})
    url = app.config["DATABASE_URL"]
    query(url, "UPDATE assignments SET reward_total = ?", (float("inf"),))
    before = rows(app)
    response = client.delete("/api/v1/visitors/v1", headers=admin)
    assert_error(response, 409, "non_finite_counters")
    assert rows(app) == before


# -- strict JSON output ------------------------------------------------------------------

def test_json_output_never_contains_nan(app):
    for value in (math.nan, math.inf, -math.inf, {"a": [1.0, math.nan]}):
        with pytest.raises(ValueError):
            app.json.dumps(value)
    assert app.json.dumps({"a": 1.5, "b": None}) == '{"a": 1.5, "b": null}'


def test_a_non_finite_number_in_a_response_is_a_500_json_error_not_invalid_json(app):
    @app.get("/api/v1/test-nan")
    def nan_route():
        from flask import jsonify

        return jsonify({"value": math.nan})

    response = app.test_client().get("/api/v1/test-nan")
    assert response.status_code == 500
    assert strict_json(response)["error"]["code"] == "internal_error"

