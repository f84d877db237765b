"""Off-policy evaluation on the Open Bandit Dataset sample shipped inside ``obp``.

The ``obp`` package bundles 10,000 logged impressions per ZOZOTOWN campaign ("all",
"men", "women") collected by a *uniform random* logging policy (propensity 1/K).
We read its CSV files straight from the installed package (importing ``obp`` would
pull in torch) and, for each policy, cross-fit: train on 4 time-ordered folds, then
estimate the policy's click rate on the held-out fold with inverse propensity
scoring,

    V_IPS = mean_i  pi(a_i | x_i) / p_i * r_i,     V_SNIPS = sum_i w_i r_i / sum_i w_i,

pooled over the 5 folds, with a percentile bootstrap interval. pi is the policy's
allocation for the context (Thompson samplers: P(arm is best); MABWiser and VW: what
they would serve). The sample is small (38-46 clicks per campaign), so intervals
are wide: this checks that a policy learns something real, not which peer wins.
"""
from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import numpy as np

from bandits import ArmStatistics, BetaThompson, ContextEncoder, LinearArmState, LinearThompson

from bandits_agents import vw_lines


def obd_csv(campaign: str) -> Path | None:
    """Path of the bundled random-policy log, without importing obp."""
    spec = importlib.util.find_spec("obp")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "dataset" / "obd" / "random" / campaign / f"{campaign}.csv"
    return path if path.exists() else None


def load(campaign: str):
    import csv

    path = obd_csv(campaign)
    if path is None:
        return None
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    rows.sort(key=lambda r: r["timestamp"])
    items = np.array([int(r["item_id"]) for r in rows])
    clicks = np.array([float(r["click"]) for r in rows])
    propensity = np.array([float(r["propensity_score"]) for r in rows])
    contexts = [
        {"position": r["position"], **{f"u{i}": r[f"user_feature_{i}"] for i in range(4)}} for r in rows
    ]
    schema = [{"name": "position", "type": "categorical", "levels": sorted({c["position"] for c in contexts})}]
    for i in range(4):
        schema.append({"name": f"u{i}", "type": "categorical", "levels": sorted({c[f"u{i}"] for c in contexts})})
    encoder = ContextEncoder.from_schema(schema)
    x = np.stack([encoder.encode(c).vector for c in contexts])
    return x, items, clicks, propensity, int(items.max()) + 1


def _linear_allocations(x_train, a_train, r_train, x_test, k, rng):
    d = x_train.shape[1]
    states = []
    for arm in range(k):
        rows = a_train == arm
        xa = x_train[rows]
        states.append(LinearArmState(xa.T @ xa, xa.T @ r_train[rows], float(rows.sum()), 0.0))
    policy = LinearThompson(k, d, draws=1000).fit(states, now=0.0)
    return np.stack([policy.allocation(rng, row)[0] for row in x_test])


def _beta_allocations(x_train, a_train, r_train, x_test, k, rng):
    n = np.bincount(a_train, minlength=k).astype(float)
    s = np.bincount(a_train, weights=r_train, minlength=k)
    policy = BetaThompson(k, draws=20000).fit([ArmStatistics(n[i], s[i], s[i], s[i]) for i in range(k)])
    return np.broadcast_to(policy.allocation(rng), (len(x_test), k))


def _mabwiser_allocations(policy_name, alpha):
    def allocate(x_train, a_train, r_train, x_test, k, rng):
        from mabwiser.mab import MAB, LearningPolicy

        mab = MAB(arms=list(range(k)), learning_policy=getattr(LearningPolicy, policy_name)(alpha=alpha), seed=int(rng.integers(2**31)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mab.fit(list(a_train), list(r_train), x_train)
            arms = np.asarray(mab.predict(x_test), dtype=int)
        return np.eye(k)[arms]

    return allocate


def _vw_allocations(x_train, a_train, r_train, x_test, k, rng, propensity_train=None):
    import vowpalwabbit

    vw = vowpalwabbit.Workspace(f"--cb_explore_adf -q sa --epsilon 0.05 --quiet --random_seed {int(rng.integers(2**31))}")
    for row, arm, reward, p in zip(x_train, a_train, r_train, propensity_train):
        vw.learn(vw_lines(row, k, (int(arm), -float(reward), float(p))))
    pmfs = np.array([vw.predict(vw_lines(row, k)) for row in x_test], dtype=float)
    vw.finish()
    return pmfs / pmfs.sum(axis=1, keepdims=True)


POLICIES = {
    "uniform random (the logging policy)": None,
    "Lever BetaThompson (non-contextual)": _beta_allocations,
    "Lever LinearThompson": _linear_allocations,
    "MABWiser LinTS (alpha=0.25)": _mabwiser_allocations("LinTS", 0.25),
    "MABWiser LinUCB (alpha=0.25)": _mabwiser_allocations("LinUCB", 0.25),
    "Vowpal Wabbit cb_explore_adf (epsilon 0.05)": _vw_allocations,
}


def evaluate(campaign: str, seed: int = 0, folds: int = 5, bootstrap: int = 2000) -> list[dict] | None:
    data = load(campaign)
    if data is None:
        return None
    x, items, clicks, propensity, k = data
    n = len(items)
    bounds = np.linspace(0, n, folds + 1).astype(int)
    results = []
    boot_rng = np.random.default_rng(seed + 1)
    idx = boot_rng.integers(0, n, size=(bootstrap, n))  # the same resamples for every policy: paired
    logged_boot = clicks[idx].mean(axis=1)
    for name, allocate in POLICIES.items():
        rng = np.random.default_rng([seed, len(name)])
        weights = np.empty(n)
        for f in range(folds):
            test = np.arange(bounds[f], bounds[f + 1])
            train = np.setdiff1d(np.arange(n), test)
            if allocate is None:
                pi = np.full((len(test), k), 1.0 / k)
            elif allocate is _vw_allocations:
                pi = allocate(x[train], items[train], clicks[train], x[test], k, rng, propensity_train=propensity[train])
            else:
                pi = allocate(x[train], items[train], clicks[train], x[test], k, rng)
            weights[test] = pi[np.arange(len(test)), items[test]] / propensity[test]
        ips = weights * clicks
        snips_boot = ips[idx].sum(axis=1) / weights[idx].sum(axis=1)
        lift_boot = snips_boot / np.maximum(logged_boot, 1e-12)
        results.append(
            {
                "campaign": campaign,
                "policy": name,
                "ips": float(ips.mean()),
                "snips": float(ips.sum() / weights.sum()),
                "low": float(np.percentile(snips_boot, 2.5)),
                "high": float(np.percentile(snips_boot, 97.5)),
                "lift": float(ips.sum() / weights.sum() / clicks.mean()),
                "lift_low": float(np.percentile(lift_boot, 2.5)),
                "lift_high": float(np.percentile(lift_boot, 97.5)),
                "clicks": int(clicks.sum()),
                "n": n,
                "k": k,
            }
        )
    return results
