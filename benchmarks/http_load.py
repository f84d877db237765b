"""HTTP load benchmark: /api/v1/assign beside /healthz, same gunicorn, same run.

Starts gunicorn (2 workers, default settings) on a loopback port with a fresh SQLite
file, creates a bandit experiment, and runs wrk (Debian package) against each endpoint
in alternation, ``--rounds`` times, reporting the median of the rounds. Afterwards the
number of assignment rows is compared with the number of 200 answers: every
acknowledged assign must be in the database (0 lost rows).

Beside Lever, a second gunicorn with the same settings serves ``reference_app.py``: a
Flask /healthz without a database, /echo (parses the assign body, answers an
assign-sized body, does nothing else) and /echo-insert (the same plus one committed
SQLite row). They split assign's cost into what any JSON endpoint pays in this stack,
what one durable row per request costs, and Lever's own work.

    make bench                    # full: 3 rounds x 10 s per endpoint and connection count
    .venv/bin/python benchmarks/http_load.py --duration 3 --rounds 1   # quick look
"""
from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import uuid
from contextlib import ExitStack
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tests.dbutil import fresh_schema, query  # noqa: E402
from tests.servers import gunicorn  # noqa: E402  (the same launcher the tests use)

ADMIN = "bench-admin-token-0123456789abcdef0123456789"
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _ms(text: str) -> float:
    number, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
    return float(number) * _UNITS[unit]


REWARD_VISITORS = 500


def run_wrk(url: str, script: Path, connections: int, duration: int) -> dict:
    output = subprocess.run(
        ["wrk", "-t", "2", "-c", str(connections), "-d", f"{duration}s", "--latency", "-s", str(script), url,
         "--", uuid.uuid4().hex[:12], str(REWARD_VISITORS)],  # a run tag: ids never repeat across runs
        capture_output=True, text=True, check=True, cwd=HERE,  # the scripts dofile() wrk_status.lua
    ).stdout
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", output, re.M))
    ok, bad = map(int, re.search(r"LEVER_STATUS ok=(\d+) bad=(\d+)", output).groups())
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    socket_errors = sum(map(int, errors.groups())) if errors else 0
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "p50_ms": _ms(latency["50"]), "p99_ms": _ms(latency["99"]),
        "ok": ok, "errors": bad + socket_errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2, help="seconds of unrecorded load per endpoint first")
    parser.add_argument("--connections", type=int, nargs="+", default=[16])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--database-url", default=None,
                        help="a PostgreSQL URL: run on a fresh schema of that database, dropped afterwards "
                             "(default: a temporary SQLite file)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")

    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        url = (stack.enter_context(fresh_schema(args.database_url, durable=True)) if args.database_url
               else f"sqlite:///{tmp}/bench.db")
        env = {"LEVER_ADMIN_TOKEN": ADMIN, "LEVER_SECRET_KEY": "bench-secret-" + "k" * 40,
               "LEVER_RATE_LIMIT": ""}  # measure the endpoint, not the limiter
        reference = stack.enter_context(gunicorn("", workers=args.workers, app="benchmarks.reference_app:app",
                                                 env={"REFERENCE_DB": f"{tmp}/reference.db"}))
        with gunicorn(url, workers=args.workers, env=env) as base:
            created = requests.post(f"{base}/api/v1/experiments", headers={"Authorization": f"Bearer {ADMIN}"},
                                    json={"key": "bench", "variants": ["control", "b", "c"], "mode": "bandit"})
            created.raise_for_status()
            requests.post(f"{base}/api/v1/experiments", headers={"Authorization": f"Bearer {ADMIN}"},
                          json={"key": "bench-reward", "variants": ["control", "b"], "reward": "numeric"}
                          ).raise_for_status()
            with requests.Session() as session:  # the visitors the reward load converts
                for i in range(REWARD_VISITORS):
                    session.post(f"{base}/api/v1/assign", json={"experiment": "bench-reward", "visitor": f"r{i}"}
                                 ).raise_for_status()
            targets = {  # name: (URL, wrk script), run in this order in every round
                "reference healthz": (f"{reference}/healthz", "counting.lua"),
                "reference echo": (f"{reference}/echo", "assign.lua"),
                "reference echo-insert": (f"{reference}/echo-insert", "assign.lua"),
                "healthz": (f"{base}/healthz", "counting.lua"),
                "assign": (f"{base}/api/v1/assign", "assign.lua"),
                "reward": (f"{base}/api/v1/reward", "reward.lua"),
            }
            # Warm-up, not recorded: each worker's first requests load its policy cache and
            # the lazily imported modules, and would otherwise sit in the first round's p99.
            warm = {name: run_wrk(target, HERE / script, args.connections[0], args.warmup)
                    for name, (target, script) in targets.items()} if args.warmup else {}
            assign_ok = warm["assign"]["ok"] if warm else 0
            reward_ok = warm["reward"]["ok"] if warm else 0
            rows = []
            for connections in args.connections:
                results: dict[str, list[dict]] = {name: [] for name in targets}
                for _ in range(args.rounds):
                    for name, (target, script) in targets.items():
                        results[name].append(run_wrk(target, HERE / script, connections, args.duration))
                assign_ok += sum(r["ok"] for r in results["assign"])
                reward_ok += sum(r["ok"] for r in results["reward"])
                for name, runs in results.items():
                    rows.append((name, connections, *(statistics.median(r[k] for r in runs)
                                                      for k in ("rps", "p50_ms", "p99_ms")),
                                 sum(r["errors"] for r in runs)))
            memory_mb = [_rss_mb(pid) for pid in base.worker_pids()]
        stored = query(url, "SELECT COUNT(*) FROM assignments a JOIN experiments e ON e.id = a.experiment_id "
                            "WHERE e.key = 'bench'")[0][0]
        stored_rewards = query(url, "SELECT COUNT(*) FROM rewards")[0][0]

    backend = "PostgreSQL" if args.database_url else "SQLite (WAL)"
    print(f"gunicorn {args.workers} sync workers, {backend}, {args.warmup} s warm-up, then {args.rounds} rounds x "
          f"{args.duration} s, medians of rounds\n")
    print("| endpoint | connections | requests/s | p50 ms | p99 ms | errors |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, connections, rps, p50, p99, errors in rows:
        print(f"| {name} | {connections} | {rps:,.0f} | {p50:.2f} | {p99:.2f} | {errors} |")
    by_key = {(r[0], r[1]): r for r in rows}
    for connections in args.connections:
        healthz = by_key[("healthz", connections)][2]
        shares = ", ".join(f"{name} {by_key[(name, connections)][2] / healthz:.2f}"
                           for name in ("reference echo", "reference echo-insert", "assign", "reward"))
        print(f"\nat {connections} connections, throughput / healthz: {shares}")
    # wrk stops with requests in flight: those may be committed without their answer being counted,
    # so rows >= acknowledged; a lost row would show as acknowledged > rows.
    print(f"acknowledged assigns: {assign_ok:,}; rows in database: {stored:,}; "
          f"lost: {max(0, assign_ok - stored):,}; committed but unanswered when wrk stopped: {max(0, stored - assign_ok):,}")
    print(f"acknowledged rewards: {reward_ok:,}; rows in database: {stored_rewards:,}; "
          f"lost: {max(0, reward_ok - stored_rewards):,}; committed but unanswered when wrk stopped: "
          f"{max(0, stored_rewards - reward_ok):,}")
    print("memory per worker after the load (RSS): " + ", ".join(f"{mb:.0f} MB" for mb in memory_mb))


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


if __name__ == "__main__":
    main()
