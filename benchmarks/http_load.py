"""HTTP load benchmark: Lever's assign and reward beside the framework's own limit, same run.

The yardstick is a bare Flask JSON endpoint (``reference_app.py`` /healthz: no database)
under 2 *sync* gunicorn workers: what this stack serves before any application work.
Lever's own /healthz (it reads one row) is shown beside it, not used as the yardstick.

Every server runs at once on loopback, each on its own fresh database (a temporary SQLite
file, or with ``--database-url`` a fresh PostgreSQL schema with durable commits, dropped
afterwards); wrk then loads one endpoint at a time, all endpoints in turn, ``--rounds``
times, and the table gives the median of the rounds and each endpoint's throughput as a
share of the reference measured in the same rounds. On a shared machine the absolute
numbers move with the load; the shares are what to compare. Rate limiting is off
(``LEVER_RATE_LIMIT=""``): the endpoint is measured, not the limiter.

Lever variants: by default one, Lever's production configuration (``gunicorn.conf.py``:
threaded workers, group commit). ``--variant NAME:VAR=VALUE,...`` adds more, each its own
server with those environment variables (e.g. ``--variant sync:GUNICORN_WORKER_CLASS=sync,
LEVER_GROUP_COMMIT=false`` for the old model). ``--instances 2`` (PostgreSQL) adds a second
gunicorn of the first variant on the same schema and loads both at once (two wrk, half the
connections each): throughput with one and with two instances.

Afterwards, per server, the rows in the database are compared with the acknowledged
answers: every acknowledged assign and reward must be stored (0 lost).

    make bench                    # 3 rounds x 5 s per endpoint, 16 and 64 connections
    .venv/bin/python benchmarks/http_load.py --duration 3 --rounds 1   # quick look
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tests.dbutil import fresh_schema, query  # noqa: E402
from tests.servers import gunicorn  # noqa: E402  (the same launcher the tests use)

ADMIN = "bench-admin-token-0123456789abcdef0123456789"
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}
REWARD_VISITORS = 500
#: the events scenario (``--events``): POST /api/v1/events, 10 events per request, admin token as
#: Bearer, body {"visitor", "events": [...]} (benchmarks/events.lua). Off until the endpoint exists.
EVENTS_SCENARIO = ("events", "/api/v1/events", "events.lua")


def _ms(text: str) -> float:
    number, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
    return float(number) * _UNITS[unit]


def run_wrk(url: str, script: str, connections: int, duration: int) -> dict:
    output = subprocess.run(
        ["wrk", "-t", "2" if connections > 1 else "1", "-c", str(connections), "-d", f"{duration}s", "--latency",
         "-s", str(HERE / script), url, "--", uuid.uuid4().hex[:12], str(REWARD_VISITORS), ADMIN],
        capture_output=True, text=True, check=True, cwd=HERE,  # the scripts dofile() wrk_status.lua
    ).stdout
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", output, re.M))
    ok, bad = map(int, re.search(r"LEVER_STATUS ok=(\d+) bad=(\d+)", output).groups())
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    socket_errors = sum(map(int, errors.groups())) if errors else 0
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
            "p50_ms": _ms(latency["50"]), "p99_ms": _ms(latency["99"]), "ok": ok, "errors": bad + socket_errors}


_TICK_S = 1 / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time used so far by these processes (gone ones count 0)."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) * _TICK_S  # utime, stime
    return total


def run_together(bases: list, path: str, script: str, connections: int, duration: int) -> dict:
    """One wrk per URL at once (connections split between them): summed throughput, worst p99,
    and the servers' CPU time per request (steadier than requests/s on a shared machine)."""
    share = max(1, connections // len(bases))
    pids = [pid for base in bases for pid in base.worker_pids()]
    cpu_before = cpu_seconds(pids)
    with ThreadPoolExecutor(max_workers=len(bases)) as pool:
        runs = list(pool.map(lambda base: run_wrk(base + path, script, share, duration), bases))
    requests_done = sum(r["rps"] for r in runs) * duration
    return {"rps": sum(r["rps"] for r in runs), "p50_ms": max(r["p50_ms"] for r in runs),
            "p99_ms": max(r["p99_ms"] for r in runs), "ok": sum(r["ok"] for r in runs),
            "errors": sum(r["errors"] for r in runs),
            "cpu_us": (cpu_seconds(pids) - cpu_before) / max(requests_done, 1) * 1e6}


@dataclass
class Server:
    """One Lever variant: its base URL(s), database, and what it acknowledged."""

    name: str
    urls: list[str]
    database_url: str
    acknowledged: dict[str, int] = field(default_factory=lambda: {"assign": 0, "reward": 0})


def _variant(text: str) -> tuple[str, dict[str, str]]:
    name, _, assignments = text.partition(":")
    return name, dict(pair.split("=", 1) for pair in assignments.split(",") if pair)


def _prepare(base: str) -> None:
    headers = {"Authorization": f"Bearer {ADMIN}"}
    requests.post(f"{base}/api/v1/experiments", headers=headers,
                  json={"key": "bench", "variants": ["control", "b", "c"], "mode": "bandit"}).raise_for_status()
    requests.post(f"{base}/api/v1/experiments", headers=headers,
                  json={"key": "bench-reward", "variants": ["control", "b"], "reward": "numeric"}).raise_for_status()
    with requests.Session() as session:  # the visitors the reward load converts
        for i in range(REWARD_VISITORS):
            session.post(f"{base}/api/v1/assign", json={"experiment": "bench-reward", "visitor": f"r{i}"}
                         ).raise_for_status()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1, help="seconds of unrecorded load per endpoint first")
    parser.add_argument("--connections", type=int, nargs="+", default=[16])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--database-url", default=None,
                        help="a PostgreSQL URL: each server on a fresh schema of it (durable commits), "
                             "dropped afterwards (default: temporary SQLite files)")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME:VAR=VALUE,...",
                        help="another Lever server with these environment variables (repeatable)")
    parser.add_argument("--instances", type=int, default=1,
                        help="2: also load two gunicorn instances of the first variant on one database at once")
    parser.add_argument("--endpoints", nargs="+", default=["healthz", "assign", "reward"],
                        help="which Lever endpoints to load")
    parser.add_argument("--events", action="store_true", help="add the events scenario (EVENTS_SCENARIO)")
    parser.add_argument("--breakdown", action="store_true",
                        help="add the reference /echo and /echo-insert rows (JSON POST; one committed row)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    if args.instances > 1 and not args.database_url:
        sys.exit("--instances > 1 needs a shared PostgreSQL (--database-url)")

    env = {"LEVER_ADMIN_TOKEN": ADMIN, "LEVER_SECRET_KEY": "bench-secret-" + "k" * 40, "LEVER_RATE_LIMIT": ""}
    variants = [("lever", {})] + [_variant(v) for v in args.variant]
    endpoints = {"healthz": ("/healthz", "counting.lua"), "assign": ("/api/v1/assign", "assign.lua"),
                 "reward": ("/api/v1/reward", "reward.lua")}
    if args.events:
        endpoints[EVENTS_SCENARIO[0]] = EVENTS_SCENARIO[1:]
    chosen = args.endpoints + ([EVENTS_SCENARIO[0]] if args.events else [])

    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        reference = stack.enter_context(gunicorn(
            "", workers=args.workers, app="benchmarks.reference_app:app",
            env={"REFERENCE_DB": f"{tmp}/reference.db", "GUNICORN_WORKER_CLASS": "sync"}))
        # name: (servers, path, wrk script), loaded in this order in every round
        targets: dict[str, tuple[list, str, str]] = {"bare Flask (2 sync workers)": ([reference], "/healthz",
                                                                                     "counting.lua")}
        if args.breakdown:
            targets["bare Flask echo"] = ([reference], "/echo", "assign.lua")
            targets["bare Flask echo + 1 SQLite row"] = ([reference], "/echo-insert", "assign.lua")
        servers: list[Server] = []
        for number, (name, variant_env) in enumerate(variants):
            database = (stack.enter_context(fresh_schema(args.database_url, durable=True)) if args.database_url
                        else f"sqlite:///{tmp}/bench-{number}.db")
            base = stack.enter_context(gunicorn(database, workers=args.workers, env={**env, **variant_env}))
            _prepare(base)
            server = Server(name, [base], database)
            servers.append(server)
            for endpoint in chosen:
                path, script = endpoints[endpoint]
                targets[f"{name} {endpoint}"] = ([base], path, script)
            if number == 0 and args.instances > 1:
                for _ in range(args.instances - 1):
                    server.urls.append(stack.enter_context(
                        gunicorn(database, workers=args.workers, env={**env, **variant_env})))
                for endpoint in ("assign", "reward"):
                    if endpoint in chosen:
                        path, script = endpoints[endpoint]
                        targets[f"{name} {endpoint} x{args.instances} instances"] = (server.urls, path, script)

        def load(name: str, connections: int, duration: int) -> dict:
            result = run_together(*targets[name], connections, duration)
            for server in servers:
                for endpoint in ("assign", "reward"):
                    if name.startswith(f"{server.name} {endpoint}"):
                        server.acknowledged[endpoint] += result["ok"]
            return result

        if args.warmup:  # each worker's first requests load its policy cache and lazy imports: not recorded
            for name in targets:
                load(name, args.connections[0], args.warmup)
        rows = []
        for connections in args.connections:
            results: dict[str, list[dict]] = {name: [] for name in targets}
            for _ in range(args.rounds):
                for name in targets:
                    results[name].append(load(name, connections, args.duration))
            reference_rps = [r["rps"] for r in results["bare Flask (2 sync workers)"]]
            for name, runs in results.items():
                shares = [r["rps"] / ref for r, ref in zip(runs, reference_rps)]
                rows.append((name, connections, *(statistics.median(r[k] for r in runs)
                                                  for k in ("rps", "p50_ms", "p99_ms", "cpu_us")),
                             statistics.median(shares), sum(r["errors"] for r in runs)))
        memory_mb = [_rss_mb(pid) for pid in servers[0].urls[0].worker_pids()]
        checks = []
        for server in servers:
            assigned = query(server.database_url, "SELECT COUNT(*) FROM assignments a JOIN experiments e "
                                                  "ON e.id = a.experiment_id WHERE e.key = 'bench'")[0][0]
            rewarded = query(server.database_url, "SELECT COUNT(*) FROM rewards")[0][0]
            checks.append((server.name, server.acknowledged["assign"], assigned, server.acknowledged["reward"],
                           rewarded))

    backend = "PostgreSQL (synchronous_commit on)" if args.database_url else "SQLite (WAL, synchronous=NORMAL)"
    print(f"{backend}; gunicorn {args.workers} workers per server; {args.warmup} s warm-up per endpoint, then "
          f"{args.rounds} rounds x {args.duration} s, all endpoints in turn in every round; medians of rounds; "
          "share = requests/s / bare Flask requests/s of the same round (median over rounds); LEVER_RATE_LIMIT=\"\"\n")
    for name, variant_env in variants:
        print(f"- {name}: " + (", ".join(f"{k}={v}" for k, v in variant_env.items()) or "gunicorn.conf.py defaults"))
    print("\n| endpoint | connections | requests/s | share of bare Flask | p50 ms | p99 ms | server CPU µs/request "
          "| errors |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, connections, rps, p50, p99, cpu_us, share, errors in rows:
        print(f"| {name} | {connections} | {rps:,.0f} | {share:.2f} | {p50:.2f} | {p99:.2f} | {cpu_us:,.0f} "
              f"| {errors} |")
    print()
    # wrk stops with requests in flight: those may be committed without their answer being counted,
    # so rows >= acknowledged; a lost row would show as acknowledged > rows.
    for name, assign_ok, assigned, reward_ok, rewarded in checks:
        print(f"{name}: acknowledged assigns {assign_ok:,}, rows {assigned:,}, lost {max(0, assign_ok - assigned):,}; "
              f"acknowledged rewards {reward_ok:,}, rows {rewarded:,}, lost {max(0, reward_ok - rewarded):,}")
    print("memory per worker of the first server after the load (RSS): " + ", ".join(f"{mb:.0f} MB" for mb in memory_mb))


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


if __name__ == "__main__":
    main()
