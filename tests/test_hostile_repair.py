"""The repair path for values older versions let in: ``flask repair-values KEY`` finds rewards
beyond the bound (or non-finite) and assignment totals that no bounded rewards can sum to,
clamps or excludes them in the log, rebuilds the counters and writes one audit line.

The bad rows are planted directly in the database, as the versions before the bound wrote
them (a 1e308 reward, its total, the Inf square in arm_stats; on PostgreSQL also NaN).
"""
from __future__ import annotations

import logging
import math

import pytest

from .dbutil import is_postgres, query
from .hostile import assert_error, assert_still_works, strict_json


def reward(client, token: str, value: float, event_id: str | None = None) -> None:
    response = client.post("/api/v1/reward", json={"assignment": token, "value": value, "event_id": event_id})
    assert response.status_code == 202, response.get_json()


@pytest.fixture
def poisoned(client, admin, make_experiment, database_url):
    """An experiment as an older version left it after a few hostile rewards."""
    make_experiment("num", reward="numeric", variants=["a", "b"], control="a")
    tokens = {}
    for visitor in ("v1", "v2", "v3", "v4"):
        tokens[visitor] = client.post("/api/v1/assign", json={"experiment": "num", "visitor": visitor}).get_json()[
            "assignment"]
    reward(client, tokens["v1"], 5)
    reward(client, tokens["v2"], 7, "e1")
    reward(client, tokens["v2"], 1, "e2")
    reward(client, tokens["v3"], 2)
    client.get("/api/v1/experiments/num/stats", headers=admin)  # SQLite: fold the decision counters

    def plant(visitor: str, event_id: str | None, value: float, total: float) -> None:
        (assignment_id,) = query(database_url, "SELECT id FROM assignments WHERE visitor = ?", (visitor,))[0]
        where = "event_id = ?" if event_id else "event_id IS NULL"
        query(database_url, f"UPDATE rewards SET value = ? WHERE assignment_id = ? AND {where}",
              (value, assignment_id, *([event_id] if event_id else [])))
        query(database_url, "UPDATE assignments SET reward_total = ? WHERE id = ?", (total, assignment_id))

    plant("v1", None, 1e308, 1e308)
    plant("v2", "e1", -math.inf, -math.inf)
    bad = 2
    if is_postgres(database_url):  # PostgreSQL's double precision also holds NaN
        plant("v3", None, math.nan, math.nan)
        bad = 3
    query(database_url, "UPDATE arm_stats SET reward_sumsq = ?, ips_reward_sumsq = ? WHERE reward_events > 0",
          (math.inf, math.inf))
    return bad


def reward_values(database_url: str) -> list:
    return [row for row in query(database_url, "SELECT a.visitor, r.event_id, r.value FROM rewards r "
                                                "JOIN assignments a ON a.id = r.assignment_id ORDER BY r.id")]


def totals(database_url: str) -> dict[str, tuple[float, int]]:
    return {v: (t, n) for v, t, n in query(database_url, "SELECT visitor, reward_total, reward_count FROM assignments")}


def assert_counters_match_the_log(database_url: str) -> None:
    sums = query(database_url, "SELECT SUM(reward_sum), SUM(reward_sumsq), SUM(reward_events) FROM arm_stats")[0]
    assert all(math.isfinite(v) for v in sums[:2])
    # schema v8: the counters hold sums of y - K over the rewarded assignments, K the experiment's shift
    log = query(database_url, "SELECT SUM(a.reward_total - COALESCE(e.reward_shift, 0)), "
                              "SUM((a.reward_total - COALESCE(e.reward_shift, 0)) * (a.reward_total - "
                              "COALESCE(e.reward_shift, 0))), SUM(a.reward_count) FROM assignments a "
                              "JOIN experiments e ON e.id = a.experiment_id WHERE a.reward_count > 0")[0]
    assert sums == pytest.approx(log)


def test_rebuild_stats_points_to_the_repair(runner, poisoned):
    result = runner.invoke(args=["rebuild-stats", "num"])
    assert result.exit_code != 0 and "repair-values num" in result.output
    assert runner.invoke(args=["repair-values", "num"]).exit_code == 0
    assert runner.invoke(args=["rebuild-stats", "num"]).exit_code == 0


def test_dry_run_reports_and_changes_nothing(runner, poisoned, database_url, caplog):
    before = reward_values(database_url), totals(database_url)
    caplog.set_level(logging.INFO, logger="lever.audit")
    result = runner.invoke(args=["repair-values", "num", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert f"{poisoned} rewards" in result.output and "dry run" in result.output
    assert repr((reward_values(database_url), totals(database_url))) == repr(before)  # repr: NaN == NaN
    assert [r.name for r in caplog.records] == ["lever.audit"]
    assert "dry_run=true" in caplog.records[0].getMessage()
    assert query(database_url, "SELECT COUNT(*) FROM audit_log WHERE action = 'experiment.values_repaired'") == [(0,)]


def test_clamp_repairs_the_log_and_the_counters(runner, client, admin, poisoned, database_url, caplog):
    erase = client.delete("/api/v1/visitors/v1", headers=admin)
    assert_error(erase, 409, "non_finite_counters")  # before the repair: refused, not a 500
    stats = client.get("/api/v1/experiments/num/stats", headers=admin)
    assert stats.status_code == 200 and strict_json(stats)["reason"] == "non_finite_input"
    policy = client.get("/api/v1/experiments/num/policy", headers=admin)
    assert policy.status_code in (200, 500) and strict_json(policy)  # never NaN in the body
    assigned = client.post("/api/v1/assign", json={"experiment": "num", "visitor": "new"})
    assert assigned.status_code in (200, 409), assigned.get_data(as_text=True)
    caplog.set_level(logging.INFO, logger="lever.audit")
    result = runner.invoke(args=["repair-values", "num", "--clamp"])
    assert result.exit_code == 0, result.output
    values = {(v, e): x for v, e, x in reward_values(database_url)}
    assert values[("v1", None)] == 1e9 and values[("v2", "e1")] == -1e9 and values[("v2", "e2")] == 1
    found = totals(database_url)
    assert found["v1"] == (1e9, 1) and found["v2"] == (-1e9 + 1, 2)
    if is_postgres(database_url):  # NaN has no direction to clamp to: excluded
        assert ("v3", None) not in values and found["v3"] == (0, 0)
    else:
        assert found["v3"] == (2, 1)
    assert_counters_match_the_log(database_url)
    (line,) = [r.getMessage() for r in caplog.records if r.name == "lever.audit"]
    assert "repair-values" in line and "experiment=num" in line and "action=clamp" in line
    assert f"rewards={poisoned}" in line and "dry_run=false" in line
    repaired = [e for e in client.get("/api/v1/audit?experiment=num", headers=admin).get_json()["entries"]
                if e["action"] == "experiment.values_repaired"]
    assert len(repaired) == 1  # in the audit table too, written with the repaired rows
    assert (repaired[0]["actor"], repaired[0]["target"]) == ("cli", "clamp")
    assert repaired[0]["after"]["rewards"] == poisoned and repaired[0]["after"]["max_abs_value"] == 1e9
    stats = client.get("/api/v1/experiments/num/stats", headers=admin)
    assert stats.status_code == 200 and strict_json(stats)["reason"] is None
    assert_still_works(client, admin, "num", value=4)
    assert client.delete("/api/v1/visitors/v1", headers=admin).status_code == 200
    again = runner.invoke(args=["repair-values", "num"])
    assert again.exit_code == 0 and "0 rewards" in again.output


def test_exclude_removes_the_bad_rewards(runner, client, admin, poisoned, database_url):
    result = runner.invoke(args=["repair-values", "num", "--exclude"])
    assert result.exit_code == 0, result.output
    values = {(v, e): x for v, e, x in reward_values(database_url)}
    assert ("v1", None) not in values and ("v2", "e1") not in values and values[("v2", "e2")] == 1
    found = totals(database_url)
    assert found["v1"] == (0, 0) and found["v2"] == (1, 1) and found["v4"] == (0, 0)
    assert_counters_match_the_log(database_url)
    assert_still_works(client, admin, "num")


def test_a_total_no_bounded_rewards_can_reach_is_recomputed(runner, client, make_experiment, database_url):
    """Rewards fine, the total not (as a crash between two statements of an old version could leave it)."""
    make_experiment("num", reward="numeric")
    token = client.post("/api/v1/assign", json={"experiment": "num", "visitor": "v1"}).get_json()["assignment"]
    reward(client, token, 3)
    query(database_url, "UPDATE assignments SET reward_total = ?", (math.inf,))
    result = runner.invoke(args=["repair-values", "num", "--max-abs", "10"])
    assert result.exit_code == 0 and "0 rewards" in result.output and "1 assignment" in result.output
    assert totals(database_url)["v1"] == (3, 1)
    assert_counters_match_the_log(database_url)


def test_bad_arguments(runner, make_experiment):
    make_experiment("num", reward="numeric")
    assert runner.invoke(args=["repair-values", "missing"]).exit_code != 0
    for bound in ("0", "-1", "nan", "inf", "1e16"):
        result = runner.invoke(args=["repair-values", "num", "--max-abs", bound])
        assert result.exit_code != 0, bound
