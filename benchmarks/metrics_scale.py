"""Metric stats at scale: 1 million exposed visitors, 5 metrics, 5 million events.

Builds an A/B experiment (3 variants, 10% holdout, sticky) that uses five catalogue
metrics — conversion, capped sum, ratio (AOV), count, and a delayed conversion
(retention) — with bulk SQL: one assignment per visitor, then events spread over the
visitors with times from before their exposure (CUPED's pre-period) to after their
window. The counters are rebuilt from the log. Then the materialised metric values
(``app.storage.metric_fold``) are built the way a deployment builds them, outside any
request: ``flask fold-metrics big`` (what the guardrail schedule runs too), timed as the
build. ``GET /api/v1/experiments/big/stats`` is timed through the Flask app: the first
request after the build (what a user sees), then, ``--repeats`` times, ``--new-events``
more events of exposed visitors arrive (bulk SQL, created now) and a stats request folds
them (SQLite; PostgreSQL leaves rows younger than the fold lag to the exact read-time tail)
and reads the slices: the steady state, median of the repeats. ``--build-in-request``
skips the CLI build, so the first stats request builds (the case the schedule avoids).
The background schedule is off (``LEVER_GUARDRAIL_INTERVAL_S`` 0) so nothing else folds.

    .venv/bin/python benchmarks/metrics_scale.py                 # SQLite, 1M / 5M
    .venv/bin/python benchmarks/metrics_scale.py --quick         # 100k / 500k
    .venv/bin/python benchmarks/metrics_scale.py --database-url postgresql://postgres@127.0.0.1:5432/test
"""
from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack, closing
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app import create_app  # noqa: E402
from tests.dbutil import fresh_schema  # noqa: E402

TOKEN = "bench-admin-token-0123456789abcdef0123456789"
#: no background schedule: the benchmark decides who builds
CONFIG = {"LEVER_ADMIN_TOKEN": TOKEN, "LEVER_GUARDRAIL_INTERVAL_S": 0}
T0 = 1_790_000_000
METRICS = (
    {"key": "purchase_rate", "type": "conversion", "event": "purchase"},
    {"key": "revenue", "type": "sum", "event": "purchase", "cap": 200},
    {"key": "aov", "type": "ratio", "numerator": {"event": "purchase", "aggregate": "sum"},
     "denominator": {"event": "purchase", "aggregate": "count"}},
    {"key": "clicks", "type": "count", "event": "click", "cap": 20},
    {"key": "retention", "type": "conversion", "event": "visit", "delay_s": 86400, "window_s": 6 * 86400},
)
_ASSIGNMENT_COLUMNS = ("experiment_id, variant_id, visitor, sticky_key, context, probabilities, propensity, holdout, "
                       "model_version, created_at, reward_total, reward_count")
_EVENT_COLUMNS = "visitor, name, value, event_id, ts, created_at"


def _assignments_select(experiment_id: int, ids: list[int], i: str) -> str:
    """Visitor i: variant by a hashed uniform, holdout 10%, exposed at T0 + i / 10 s."""
    u, z = f"(({i} * 2654435761) % 999)", f"(({i} * 69069) % 1009)"
    return f"""SELECT {experiment_id}, CASE WHEN {u} < 333 THEN {ids[0]} WHEN {u} < 666 THEN {ids[1]} ELSE {ids[2]} END,
               'v' || {i}, 'v' || {i}, '{{}}', '{{"{ids[0]}":0.3333,"{ids[1]}":0.3333,"{ids[2]}":0.3334}}', 0.3333,
               CASE WHEN {z} < 100 THEN 1 ELSE 0 END, 0, {T0} + {i} * 0.1, 0, 0"""


def _events_select(visitors: int, j: str) -> str:
    """Event j: of visitor j % N + 1, a purchase, click or visit, at -3 to +9 days around the exposure."""
    visitor = f"({j} % {visitors} + 1)"
    name = f"CASE ({j} * 7) % 5 WHEN 0 THEN 'purchase' WHEN 1 THEN 'visit' ELSE 'click' END"
    offset = f"((({j} * 7919) % 1036800) - 259200)"
    return (f"SELECT 'v' || {visitor}, {name}, ({j} * 31) % 97 + 0.5, NULL, "
            f"{T0} + {visitor} * 0.1 + {offset}, {T0}")


def _bulk_sqlite(url: str, experiment_id: int, ids: list[int], visitors: int, events: int) -> None:
    with closing(sqlite3.connect(url[len("sqlite:///"):])) as conn, conn:
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute(f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {visitors}) "
                     f"INSERT INTO assignments ({_ASSIGNMENT_COLUMNS}) {_assignments_select(experiment_id, ids, 'i')} "
                     "FROM n")
        conn.execute(f"WITH RECURSIVE n(j) AS (SELECT 1 UNION ALL SELECT j + 1 FROM n WHERE j < {events}) "
                     f"INSERT INTO events ({_EVENT_COLUMNS}) {_events_select(visitors, 'j')} FROM n")
        conn.execute("ANALYZE")
    with closing(sqlite3.connect(url[len("sqlite:///"):])) as conn:  # the app's first writer finds no huge WAL
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def _bulk_postgres(url: str, experiment_id: int, ids: list[int], visitors: int, events: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")
        conn.execute(f"INSERT INTO assignments ({_ASSIGNMENT_COLUMNS}) {_assignments_select(experiment_id, ids, 'i')} "
                     f"FROM generate_series(1::bigint, {visitors}::bigint) AS i")
        conn.execute(f"INSERT INTO events ({_EVENT_COLUMNS}) {_events_select(visitors, 'j')} "
                     f"FROM generate_series(1::bigint, {events}::bigint) AS j")
        conn.execute("ANALYZE assignments")
        conn.execute("ANALYZE events")


def add_events(url: str, visitors: int, first: int, count: int) -> None:
    """``count`` more events (numbered from ``first``) of the same shape, created now."""
    now = time.time()
    select = _events_select(visitors, "j").replace(f", {T0}", f", {now}")
    if url.startswith("postgres"):
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"INSERT INTO events ({_EVENT_COLUMNS}) {select} "
                         f"FROM generate_series({first}::bigint, {first + count - 1}::bigint) AS j")
        return
    with closing(sqlite3.connect(url[len("sqlite:///"):])) as conn, conn:
        conn.execute(f"WITH RECURSIVE n(j) AS (SELECT {first} UNION ALL SELECT j + 1 FROM n WHERE j < "
                     f"{first + count - 1}) INSERT INTO events ({_EVENT_COLUMNS}) {select} FROM n")


def build(url: str, visitors: int, events: int, mode: str = "ab") -> None:
    app = create_app({"DATABASE_URL": url, **CONFIG})
    client = app.test_client()
    headers = {"Authorization": f"Bearer {TOKEN}"}
    for metric in METRICS:
        assert client.post("/api/v1/metrics", headers=headers, json=metric).status_code == 201
    response = client.post("/api/v1/experiments", headers=headers, json={
        "key": "big", "mode": mode, "variants": ["control", "b", "c"], "holdout": 0.1,
        "metrics": {"primary": "purchase_rate", "secondary": ["revenue", "aov", "clicks"],
                    "guardrails": [{"metric": "retention", "max_regression": 0.01, "action": "alert"}]}})
    assert response.status_code == 201, response.get_json()
    storage = app.extensions["lever.storage"]
    experiment = storage.get_experiment("big")
    ids = [v.id for v in experiment.variants]
    storage.close()
    start = time.perf_counter()
    (_bulk_postgres if url.startswith("postgres") else _bulk_sqlite)(url, experiment.id, ids, visitors, events)
    print(f"inserted {visitors:,} assignments and {events:,} events in {time.perf_counter() - start:.0f} s",
          flush=True)
    app = create_app({"DATABASE_URL": url, **CONFIG})
    storage = app.extensions["lever.storage"]
    storage.rebuild_arm_stats(storage.get_experiment("big"))
    storage.close()


def _stats(client, headers) -> tuple[float, dict]:
    start = time.perf_counter()
    response = client.get("/api/v1/experiments/big/stats", headers=headers)
    seconds = time.perf_counter() - start
    assert response.status_code == 200, response.get_data(as_text=True)
    return seconds, response.get_json()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--visitors", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--quick", action="store_true", help="100,000 visitors and 500,000 events")
    parser.add_argument("--mode", choices=("ab", "bandit"), default="ab",
                        help="bandit: the stats also compute every metric's all-visitor (AIPW) estimates per hour")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--new-events", type=int, default=1000, help="events arriving before each steady-state call")
    parser.add_argument("--build-in-request", action="store_true",
                        help="no `flask fold-metrics`: the first stats request builds the values")
    parser.add_argument("--database-url", help="PostgreSQL: run on a fresh schema of this database, dropped afterwards")
    args = parser.parse_args()
    if args.quick:
        args.visitors, args.events = 100_000, 500_000
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        if args.database_url:
            url = stack.enter_context(fresh_schema(args.database_url, durable=True))
        else:
            url = f"sqlite:///{os.path.join(tmp, 'metrics.db')}"
        build(url, args.visitors, args.events, args.mode)
        app = create_app({"DATABASE_URL": url, **CONFIG})
        client = app.test_client()
        headers = {"Authorization": f"Bearer {TOKEN}"}
        build_s = None
        if not args.build_in_request:
            start = time.perf_counter()
            result = app.test_cli_runner().invoke(args=["fold-metrics", "big"])
            build_s = time.perf_counter() - start
            assert result.exit_code == 0, result.output
            print(f"flask fold-metrics big: {build_s:.1f} s\n{result.output}", flush=True)
        first_s, body = _stats(client, headers)
        print(f"first stats request{' (builds the values)' if build_s is None else ' after the build'}: "
              f"{first_s:.2f} s", flush=True)
        times = []
        for repeat in range(args.repeats):
            add_events(url, args.visitors, args.events + 1 + repeat * args.new_events, args.new_events)
            seconds, body = _stats(client, headers)
            times.append(seconds)
        app.extensions["lever.storage"].close()
        exposed = sum(v["visitors"] for v in body["metrics"][0]["variants"])
        assert exposed > 0
        backend = "PostgreSQL" if args.database_url else "SQLite"
        built = "in the first request" if build_s is None else f"{build_s:.1f} s"
        print(f"\nload average {os.getloadavg()[0]:.1f} {os.getloadavg()[1]:.1f} {os.getloadavg()[2]:.1f}")
        print(f"\n| backend | exposed visitors | events | metrics | build (`flask fold-metrics`) | first stats request "
              f"| stats after {args.new_events:,} new events, median of {args.repeats} | min | max |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        print(f"| {backend} | {args.visitors:,} | {args.events:,} | {len(body['metrics'])} | {built} | "
              f"{_ms(first_s)} | {_ms(statistics.median(times))} | {_ms(min(times))} | {_ms(max(times))} |")


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


if __name__ == "__main__":
    main()
