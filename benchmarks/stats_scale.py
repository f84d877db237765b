"""Stats at scale: an experiment with N logged assignments (default 10 million) in SQLite.

Builds the database with bulk SQL (a recursive CTE generating visitors with a planted
3-variant bandit log: varying propensities, a 10% holdout, conversions, device and
returning segments), fills the counters with ``rebuild_arm_stats`` (the same code that
recovers them from the log), then times ``GET /api/v1/experiments/<key>/stats`` through
the Flask app: median of ``--repeats`` calls.

    .venv/bin/python benchmarks/stats_scale.py                       # 10,000,000 assignments
    .venv/bin/python benchmarks/stats_scale.py --assignments 200000  # quick look
    .venv/bin/python benchmarks/stats_scale.py --database-url postgresql://postgres@127.0.0.1:5432/test
"""
from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app import create_app  # noqa: E402
from tests.dbutil import fresh_schema  # noqa: E402

TOKEN = "bench-admin-token-0123456789abcdef0123456789"


# One row per i: variant by a hashed uniform u (20% / 25% / 55%), holdout by z (10%),
# conversion by (w + u) % 100 below 3 / 4 / 5 %, device and returning by w's parity.
_COLUMNS = ("experiment_id, variant_id, visitor, sticky_key, context, probabilities, propensity, holdout, "
            "model_version, created_at, reward_total, reward_count, segments")


def _select(experiment_id: int, ids: list[int], i: str, u: str, w: str, z: str) -> str:
    converted = f"CASE WHEN ({w} + {u}) % 100 < CASE WHEN {u} < 200 THEN 3 WHEN {u} < 450 THEN 4 ELSE 5 END THEN 1 ELSE 0 END"
    return f"""
        SELECT {experiment_id},
               CASE WHEN {u} < 200 THEN {ids[0]} WHEN {u} < 450 THEN {ids[1]} ELSE {ids[2]} END,
               'v' || {i}, 'v' || {i},
               CASE WHEN {w} % 2 = 0 THEN '{{"device":"mobile"}}' ELSE '{{"device":"desktop"}}' END,
               '{{"{ids[0]}":0.2,"{ids[1]}":0.25,"{ids[2]}":0.55}}',
               CASE WHEN {u} < 200 THEN 0.2 WHEN {u} < 450 THEN 0.25 ELSE 0.55 END,
               CASE WHEN {z} < 100 THEN 1 ELSE 0 END, {i}, 1790000000 + {i} * 0.01,
               {converted}, {converted},
               CASE WHEN {w} % 2 = 0 THEN '{{"device":"mobile","returning":"false"}}'
                    ELSE '{{"device":"desktop","returning":"true"}}' END"""


def _bulk_sqlite(url: str, experiment_id: int, ids: list[int], assignments: int) -> None:
    with sqlite3.connect(url[len("sqlite:///"):]) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute(f"""
            WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {assignments}),
            r AS (SELECT i, (i * 2654435761) % 1000 AS u, (i * 40503) % 997 AS w, (i * 69069) % 1009 AS z FROM n)
            INSERT INTO assignments ({_COLUMNS}) {_select(experiment_id, ids, 'i', 'u', 'w', 'z')} FROM r""")


def _bulk_postgres(url: str, experiment_id: int, ids: list[int], assignments: int) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")
        conn.execute(f"""
            INSERT INTO assignments ({_COLUMNS})
            {_select(experiment_id, ids, 'i', 'u', 'w', 'z')}
            FROM (SELECT i, (i * 2654435761) % 1000 AS u, (i * 40503) % 997 AS w, (i * 69069) % 1009 AS z
                  FROM generate_series(1::bigint, {assignments}::bigint) AS i) AS r""")
        conn.execute("ANALYZE assignments")


def build(url: str, assignments: int) -> None:
    app = create_app({"DATABASE_URL": url, "LEVER_ADMIN_TOKEN": TOKEN})
    client = app.test_client()
    client.post("/api/v1/experiments", headers={"Authorization": f"Bearer {TOKEN}"},
                json={"key": "big", "variants": ["control", "b", "c"], "holdout": 0.1})
    storage = app.extensions["lever.storage"]
    experiment = storage.get_experiment("big")
    ids = [v.id for v in experiment.variants]
    storage.close()
    start = time.perf_counter()
    (_bulk_postgres if url.startswith("postgres") else _bulk_sqlite)(url, experiment.id, ids, assignments)
    print(f"inserted {assignments:,} assignments in {time.perf_counter() - start:.0f} s", flush=True)
    start = time.perf_counter()
    app = create_app({"DATABASE_URL": url, "LEVER_ADMIN_TOKEN": TOKEN})
    storage = app.extensions["lever.storage"]
    storage.rebuild_arm_stats(storage.get_experiment("big"))
    storage.close()
    print(f"rebuilt counters from the log in {time.perf_counter() - start:.0f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--assignments", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--keep", help="SQLite: build (or reuse) the database at this path")
    parser.add_argument("--database-url", help="PostgreSQL: run on a fresh schema of this database, dropped afterwards")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        if args.database_url:
            url = stack.enter_context(fresh_schema(args.database_url, durable=True))
            build(url, args.assignments)
        else:
            path = args.keep or os.path.join(tmp, "big.db")
            url = f"sqlite:///{path}"
            if not (args.keep and os.path.exists(path)):
                build(url, args.assignments)
        app = create_app({"DATABASE_URL": url, "LEVER_ADMIN_TOKEN": TOKEN})
        client = app.test_client()
        headers = {"Authorization": f"Bearer {TOKEN}"}
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            response = client.get("/api/v1/experiments/big/stats", headers=headers)
            times.append(time.perf_counter() - start)
            assert response.status_code == 200, response.get_data(as_text=True)
        body = response.get_json()
        app.extensions["lever.storage"].close()
        total = sum(v["visitors_total"] for v in body["variants"])
        print(f"\n| assignments | stats request, median of {args.repeats} | min | max |")
        print("|---:|---:|---:|---:|")
        print(f"| {total:,} | {statistics.median(times) * 1000:.0f} ms | {min(times) * 1000:.0f} ms "
              f"| {max(times) * 1000:.0f} ms |")


if __name__ == "__main__":
    main()
