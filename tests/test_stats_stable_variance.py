"""Issue #16: the reward counters' variances stay exact for large near-constant values.

Rewards of 1e9 + N(0, 1) through the real API (SQLite and PostgreSQL). Before the counters
were shifted (schema v7), the stats of the 400-visitor case below read: variances 0, every
variant's t interval [mean, mean], ``uplift.reason: zero_variance`` and no p-value, where
scipy's Welch test on the same rewards gives p = 0.0011646 and interval half-widths of 0.14
and 0.13. Now variance, intervals and Welch p equal scipy's two-pass results on the raw
values to better than 1e-6 relative (>= 6 significant digits); the reference runs on
y - 1e9, which is exact in floating point for these values, and is what two-pass means.

Also here: an upgrade from v7 (raw counters, no shift column) keeps the same stats, and
``rebuild-stats`` of such an experiment chooses a shift and gives the same stats again.
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as st

from app import create_app
from app.storage import open_storage
from stats import means

from .conftest import ADMIN_TOKEN, SECRET_KEY
from .dbutil import query

BIG = 1e9
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def _make_app(database_url: str):
    return create_app({"TESTING": True, "DATABASE_URL": database_url, "LEVER_ADMIN_TOKEN": ADMIN_TOKEN,
                       "LEVER_SECRET_KEY": SECRET_KEY, "LEVER_REFRESH_MS": 50, "LEVER_ENV": "test",
                       "LEVER_RATE_LIMIT": "", "LEVER_MAX_ABS_VALUE": 1e12})


@pytest.fixture
def big_app(database_url):
    app = _make_app(database_url)
    yield app
    app.extensions["lever.storage"].close()


def _run(client, key: str, visitors: int, share_rewarded: float, seed: int, mode: str = "ab",
         second_reward: bool = False) -> dict[str, np.ndarray]:
    """Assign ``visitors``, reward a share with 1e9 + N(0, 1) (+0.3 for b); returns each variant's
    per-assignment outcomes (0 when unrewarded) exactly as the counters should see them."""
    body = {"key": key, "name": key, "mode": mode, "reward": "numeric", "control": "control",
            "variants": [{"key": "control"}, {"key": "b"}]}
    if mode == "bandit":
        body["holdout"] = 0.5
    assert client.post("/api/v1/experiments", json=body, headers=ADMIN).status_code == 201
    rng = np.random.default_rng(seed)
    outcomes: dict[str, list[float]] = {"control": [], "b": []}
    for i in range(visitors):
        a = client.post("/api/v1/assign", json={"experiment": key, "visitor": f"{key}-{i}"}).get_json()
        y = 0.0
        if rng.random() < share_rewarded:
            y = BIG + (0.3 if a["variant"] == "b" else 0.0) + float(rng.normal())
            response = client.post("/api/v1/reward", json={"assignment": a["assignment"], "value": y, "event_id": "1"})
            assert response.status_code == 202
            if second_reward and i % 3 == 0:  # a second reward of the same assignment adds to its outcome
                extra = float(rng.normal())
                assert client.post("/api/v1/reward", json={"assignment": a["assignment"], "value": extra,
                                                            "event_id": "2"}).status_code == 202
                y += extra
        outcomes[a["variant"]].append(y)
    return {k: np.array(v) for k, v in outcomes.items()}


def _check_against_scipy(stats: dict, outcomes: dict[str, np.ndarray], rel: float = 1e-6) -> None:
    control, treated = outcomes["control"], outcomes["b"]
    # the exact two-pass reference: every outcome shifted by 1e9 (exact for these floats), or raw
    # when some are 0 (then the variance is ~1e17 and one pass would do as well)
    offset = BIG if np.all(control != 0) and np.all(treated != 0) else 0.0
    reference = {"control": control - offset, "b": treated - offset}
    variants = {v["key"]: v for v in stats["variants"]}
    for key, y in reference.items():
        v = variants[key]
        assert v["visitors"] == y.size
        assert v["mean"] == pytest.approx(y.mean() + offset, rel=1e-14)
        half = st.t.ppf(0.975, y.size - 1) * st.sem(y)
        assert (v["ci"][1] - v["ci"][0]) / 2 == pytest.approx(half, rel=rel)
    welch = st.ttest_ind(reference["b"], reference["control"], equal_var=False)
    diff = reference["b"].mean() - reference["control"].mean()
    se = np.sqrt(reference["b"].var(ddof=1) / reference["b"].size
                 + reference["control"].var(ddof=1) / reference["control"].size)
    uplift = variants["b"]["uplift"]
    assert uplift["reason"] is None
    assert uplift["absolute"] == pytest.approx(diff, rel=rel)
    assert uplift["p_value"] == pytest.approx(welch.pvalue, rel=rel)
    dof = welch.df
    assert uplift["ci_absolute"][1] - uplift["ci_absolute"][0] == pytest.approx(2 * st.t.ppf(0.975, dof) * se, rel=rel)
    # the implicit ``reward`` metric reads the same shifted sums (value_shift)
    metric = {v["key"]: v for v in stats["metrics"][0]["variants"]}
    assert metric["b"]["uplift"]["p_value"] == pytest.approx(welch.pvalue, rel=rel)
    for key, y in reference.items():
        half = st.t.ppf(0.975, y.size - 1) * st.sem(y)
        assert (metric[key]["ci"][1] - metric[key]["ci"][0]) / 2 == pytest.approx(half, rel=rel)


def test_huge_near_constant_rewards_give_scipys_variance_ci_and_welch_p(big_app):
    client = big_app.test_client()
    outcomes = _run(client, "big", 400, 1.0, seed=11, second_reward=True)
    stats = client.get("/api/v1/experiments/big/stats", headers=ADMIN).get_json()
    _check_against_scipy(stats, outcomes)
    # what the raw one-pass sums (the v7 counters) made of the same outcomes
    raw = [float(means.moments(y.size, y.sum(), (y * y).sum())[1]) for y in outcomes.values()]
    assert all(abs(v - y.var(ddof=1)) > 0.5 * y.var(ddof=1) for v, y in zip(raw, outcomes.values()))


def test_some_assignments_unrewarded_merge_their_zeros_exactly(big_app):
    client = big_app.test_client()
    outcomes = _run(client, "some", 300, 0.9, seed=12)
    stats = client.get("/api/v1/experiments/some/stats", headers=ADMIN).get_json()
    _check_against_scipy(stats, outcomes, rel=1e-9)


def test_bandit_posterior_sees_the_spread(big_app):
    """NormalThompson's posterior reads the shifted sums too: its interval has the width of the data.
    (The per-hour AIPW is shift-invariant, ``test_stats_welford``; within its first hour it predicts
    mu = 0, so on 1e9-sized outcomes that hour's scores are y/p themselves, a genuine variance.)"""
    client = big_app.test_client()
    outcomes = _run(client, "arms", 300, 1.0, seed=13, mode="bandit")
    # the policy route shows the worker's cached fit; the stats request refreshes it with every
    # reward in (a fit between an assign and its reward rightly counts that visitor as a 0)
    assert client.get("/api/v1/experiments/arms/stats", headers=ADMIN).status_code == 200
    policy = client.get("/api/v1/experiments/arms/policy", headers=ADMIN)
    assert policy.status_code == 200
    posterior = policy.get_json()["posterior"]
    for key, y in outcomes.items():
        low, high = posterior[key]["interval"]
        assert posterior[key]["mean"] == pytest.approx(y.mean(), abs=0.2)  # shrunk a little to the pooled mean
        assert low < y.mean() < high and 0.01 < high - low < 2


def _downgrade_to_v7(database_url: str) -> None:
    """Turn a v8 database into what v7 left: raw counters (K = 0, as a rebuild then made them), no
    v8 columns, version 7."""
    query(database_url, "UPDATE experiments SET reward_shift = 0")
    storage = open_storage(database_url)
    for experiment in storage.list_experiments():
        storage.rebuild_arm_stats(experiment)  # K = 0 is kept: raw sums
    storage.close()
    for table, column in (("arm_stats", "rewarded_inv_sum"), ("arm_stats", "rewarded_inv_sumsq"),
                          ("experiments", "reward_shift")):
        query(database_url, f"ALTER TABLE {table} DROP COLUMN {column}")
    query(database_url, "UPDATE meta SET value = '7' WHERE key = 'schema_version'")


def _numbers(stats: dict) -> list[float]:
    """The headline numbers of a numeric stats JSON."""
    out = []
    for v in stats["variants"]:
        out += [v["visitors"], v["mean"], *v["ci"]]
        if v["uplift"] is not None:
            out += [v["uplift"]["absolute"], v["uplift"]["p_value"], *v["uplift"]["ci_absolute"]]
    return out


def test_a_v7_database_upgrades_to_the_same_stats_and_a_rebuild_shifts_it(database_url):
    app = _make_app(database_url)
    client = app.test_client()
    rng = np.random.default_rng(14)
    body = {"key": "old", "name": "Old", "mode": "ab", "reward": "numeric", "control": "control",
            "variants": [{"key": "control"}, {"key": "b"}]}
    assert client.post("/api/v1/experiments", json=body, headers=ADMIN).status_code == 201
    for i in range(200):  # ordinary revenue: one pass is fine on it, so v7's raw sums are exact enough
        a = client.post("/api/v1/assign", json={"experiment": "old", "visitor": f"v{i}"}).get_json()
        if rng.random() < 0.5:
            value = float(rng.normal(50, 10))
            assert client.post("/api/v1/reward", json={"assignment": a["assignment"], "value": value}).status_code == 202
    before = client.get("/api/v1/experiments/old/stats", headers=ADMIN).get_json()
    app.extensions["lever.storage"].close()

    _downgrade_to_v7(database_url)
    assert query(database_url, "SELECT value FROM meta WHERE key = 'schema_version'") == [("7",)]
    upgraded = _make_app(database_url)  # migrates to v8
    client = upgraded.test_client()
    assert query(database_url, "SELECT reward_shift FROM experiments") == [(None,)]  # raw sums: K = 0
    after = client.get("/api/v1/experiments/old/stats", headers=ADMIN).get_json()
    assert _numbers(after) == pytest.approx(_numbers(before), rel=1e-9)

    # a new reward on the upgraded experiment still counts about K = 0 (its counters are raw)
    a = client.post("/api/v1/assign", json={"experiment": "old", "visitor": "late"}).get_json()
    assert client.post("/api/v1/reward", json={"assignment": a["assignment"], "value": 70.0}).status_code == 202
    assert query(database_url, "SELECT reward_shift FROM experiments") == [(None,)]
    incremental = client.get("/api/v1/experiments/old/stats", headers=ADMIN).get_json()

    # rebuild-stats chooses K = the mean rewarded outcome and recounts about it: the same stats
    result = upgraded.test_cli_runner().invoke(args=["rebuild-stats", "old"])
    assert result.exit_code == 0, result.output
    (shift,), = query(database_url, "SELECT reward_shift FROM experiments")
    totals = query(database_url, "SELECT AVG(reward_total) FROM assignments WHERE reward_count > 0")
    assert shift == pytest.approx(totals[0][0], rel=1e-12)
    rebuilt = client.get("/api/v1/experiments/old/stats", headers=ADMIN).get_json()
    assert _numbers(rebuilt) == pytest.approx(_numbers(incremental), rel=1e-9)
    upgraded.extensions["lever.storage"].close()


def test_rebuild_of_shifted_counters_equals_the_incremental_ones(big_app):
    client = big_app.test_client()
    _run(client, "again", 200, 0.8, seed=15, second_reward=True)
    storage = big_app.extensions["lever.storage"]
    experiment = storage.get_experiment("again")
    incremental = storage.learning_snapshot(experiment.id)
    segments = storage.segment_totals(experiment.id)
    stats = client.get("/api/v1/experiments/again/stats", headers=ADMIN).get_json()
    result = big_app.test_cli_runner().invoke(args=["rebuild-stats", "again"])
    assert result.exit_code == 0, result.output
    rebuilt = storage.learning_snapshot(experiment.id)
    assert incremental.totals[0].reward_shift == rebuilt.totals[0].reward_shift != 0  # the first reward's K is kept
    for a, b in zip(incremental.totals, rebuilt.totals):
        for field in a.__dataclass_fields__:
            # shifted sums are of the size of the spread: compare them at that scale
            assert getattr(a, field) == pytest.approx(getattr(b, field), rel=1e-9, abs=1e-6), field
    assert [(s.feature, s.level, s.assignments, s.conversions) for s in segments] == [
        (s.feature, s.level, s.assignments, s.conversions) for s in storage.segment_totals(experiment.id)]
    after = client.get("/api/v1/experiments/again/stats", headers=ADMIN).get_json()
    assert _numbers(after) == pytest.approx(_numbers(stats), rel=1e-9)
