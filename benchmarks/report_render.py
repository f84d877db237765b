"""Report page render time for an experiment with a million assignments (SQLite).

Builds a database quickly: one bandit experiment (3 variants, 10% holdout) whose log
spans ``--days`` days with the allocation drifting towards the best variant, written by
one bulk ``INSERT`` (``executemany`` of numpy-generated rows in one transaction), then
``storage.rebuild_arm_stats(experiment)`` fills the counters from the log — the same code
that recovers them in production. Then it logs in with the test client and times
``GET /experiments/<key>``:

* ``cold``: the first render of a fresh worker (matplotlib import, stats, charts);
* ``uncached``: stats and chart caches emptied before each render (what a render costs
  whenever the experiment has changed since the last one);
* ``cached``: repeated renders of an unchanged experiment (the caches hit).

    .venv/bin/python benchmarks/report_render.py                        # 1,000,000 assignments
    .venv/bin/python benchmarks/report_render.py --assignments 100000   # quick look
"""
from __future__ import annotations

import argparse
import json
import re
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app import create_app  # noqa: E402
from app.domain.experiments import parse_experiment  # noqa: E402

TOKEN = "bench-admin-token-0123456789abcdef0123456789"
SECRET = "bench-secret-key-0123456789abcdef0123456789"
KEY = "million"
RATES = np.array([0.030, 0.034, 0.041])  # control, b, c
DEVICES = np.array(["mobile", "desktop", "tablet"])


def build(app, assignments: int, days: int, seed: int = 7) -> float:
    """Create the experiment and its log; returns the seconds it took."""
    started = time.perf_counter()
    storage = app.extensions["lever.storage"]
    spec = parse_experiment({"key": KEY, "name": "A million visitors", "mode": "bandit", "holdout": 0.1,
                             "variants": ["control", "b", "c"]})
    now = time.time()
    experiment = storage.create_experiment(spec, now - days * 86400)
    ids = [v.id for v in experiment.variants]
    rng = np.random.default_rng(seed)
    n = assignments
    created = np.sort(now - days * 86400 + rng.random(n) * days * 86400)
    progress = (created - created[0]) / max(1.0, created[-1] - created[0])
    # policy allocation drifts from uniform towards c; the holdout stays uniform
    policy = np.stack([1 / 3 - 0.28 * progress, 1 / 3 - 0.05 * progress, 1 / 3 + 0.33 * progress], axis=1)
    holdout = rng.random(n) < 0.1
    probs = np.where(holdout[:, None], 1 / 3, policy)
    arm = np.minimum((rng.random((n, 1)) > np.cumsum(probs, axis=1)).sum(axis=1), 2)
    propensity = probs[np.arange(n), arm]
    converted = rng.random(n) < RATES[arm]
    device = DEVICES[rng.integers(0, 3, n)]
    returning = rng.random(n) < 0.3
    variant_ids = np.array(ids)[arm]

    def rows():
        for i in range(n):
            dev, ret = device[i], "true" if returning[i] else "false"
            p = probs[i]
            yield (experiment.id, int(variant_ids[i]), f"v{i}", f"v{i}",
                   f'{{"device":"{dev}","returning":{ret}}}',
                   f'{{"{ids[0]}":{p[0]:.6f},"{ids[1]}":{p[1]:.6f},"{ids[2]}":{p[2]:.6f}}}',
                   float(propensity[i]), int(holdout[i]), i, float(created[i]),
                   1.0 if converted[i] else 0.0, int(converted[i]),
                   f'{{"device":"{dev}","returning":"{ret}"}}')

    database = app.config["DATABASE_URL"].removeprefix("sqlite:///")
    with sqlite3.connect(database) as conn:
        conn.executemany(
            "INSERT INTO assignments (experiment_id, variant_id, visitor, sticky_key, context, probabilities, "
            "propensity, holdout, model_version, created_at, reward_total, reward_count, segments) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows())
    storage.rebuild_arm_stats(experiment)
    return time.perf_counter() - started


def login(client) -> None:
    page = client.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    response = client.post("/login", data={"token": TOKEN, "csrf_token": csrf})
    assert response.status_code == 303, response.status_code


def timed(client, path: str) -> float:
    started = time.perf_counter()
    response = client.get(path)
    elapsed = time.perf_counter() - started
    assert response.status_code == 200, response.status_code
    assert response.get_data(as_text=True).count('<svg class="chart-svg"') == 4
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--assignments", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--renders", type=int, default=7)
    parser.add_argument("--db", help="database file (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.db or str(Path(tmp) / "report.db")
        app = create_app({"DATABASE_URL": f"sqlite:///{path}", "LEVER_ADMIN_TOKEN": TOKEN,
                          "LEVER_SECRET_KEY": SECRET, "LEVER_ENV": "test"})
        built = build(app, args.assignments, args.days)
        client = app.test_client()
        login(client)
        page = f"/experiments/{KEY}"
        cold = timed(client, page)
        uncached = []
        for _ in range(args.renders):
            app.extensions["lever.report.stats"].clear()
            app.extensions["lever.report.charts"].clear()
            uncached.append(timed(client, page))
        cached = [timed(client, page) for _ in range(args.renders)]
        size = len(client.get(page).get_data())
        stats = client.get(f"/experiments/{KEY}/stats.json").get_json()
        app.extensions["lever.storage"].close()
    result = {
        "assignments": args.assignments,
        "visitors_in_report": sum(v["visitors_total"] for v in stats["variants"]),
        "hourly_buckets": args.days * 24,
        "build_s": round(built, 1),
        "cold_first_render_s": round(cold, 3),
        "uncached_median_s": round(statistics.median(uncached), 3),
        "uncached_max_s": round(max(uncached), 3),
        "cached_median_s": round(statistics.median(cached), 3),
        "renders": args.renders,
        "page_bytes": size,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
