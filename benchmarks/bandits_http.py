"""Contextual regret through the real service: the HTTP API, its storage and its refresh cadence.

    .venv/bin/python benchmarks/bandits_http.py                 # 3 environments x 2 seeds x 5,000 visitors
    .venv/bin/python benchmarks/bandits_http.py --quick         # 1 environment x 1 seed x 2,000 visitors
    .venv/bin/python benchmarks/bandits_http.py --database-url postgresql://postgres@127.0.0.1:5432/test

``benchmarks/bandits_bench.py`` simulates Lever's policy in-process at the service's cadence. This
benchmark sends the same visitor streams (``benchmarks/bandits_envs.py``: same contexts, same click
uniforms, same delays) through ``POST /api/v1/assign`` and ``POST /api/v1/reward`` of a real app on a
real database (Flask's WSGI test client: the whole request path without sockets), so the regret is
what a user of the service gets: the stored model states, the policy cache refreshed every
``LEVER_REFRESH_MS``, the holdout and ``min_share`` the experiment declares, clicks arriving late.

Time runs faster than life, by the same factor everywhere: visitors are paced at ``RATE × speedup``
requests per wall-clock second, the refresh interval is ``1000 / speedup`` ms, every click is
reported ``delay / speedup`` seconds after its assignment and the experiment's ``reward_delay_s``
is the environment's mean delay ``/ speedup``. So the service refreshes once per 20 visitors and a
click arrives 600 visitors later on average, as in the in-process table. When the service cannot
keep up with the pace, the achieved pace is reported (the policy is then fresher than the cadence).

Beside each HTTP run the in-process simulation of the same policy and the best peers run on the
same stream and seed (``bandits_bench.simulate``). Rate limiting is off (``LEVER_RATE_LIMIT=""``):
one address sends everything.
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import heapq
import platform
import sys
import tempfile
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import bandits_bench  # noqa: E402
from bandits_envs import CROSSES, ENVIRONMENTS, _features, make_stream  # noqa: E402

from app import create_app  # noqa: E402
from tests.dbutil import fresh_schema  # noqa: E402

RESULTS = HERE / "results" / "bandits_http.md"
ADMIN_TOKEN = "bench-admin-token-0123456789abcdef0123"
SECRET_KEY = "bench-secret-key-0123456789abcdef01234567"
#: in-process rows beside the HTTP run: Lever's own simulation and the peers best in earlier runs
IN_PROCESS = ("lever", "mab-linucb-1", "mab-linucb-.25", "mab-lints-.25", "vw-squarecb-cubic", "beta")


@dataclass(frozen=True)
class HttpRun:
    env: str
    seed: int
    horizon: int
    holdout: float
    regret: float
    cr_tail: float
    oracle_tail: float
    achieved_rate: float  # visitors per wall-clock second
    refreshes: int  # distinct model versions seen in assign responses
    rewards_sent: int
    errors: int


def _app(database_url: str, speedup: float):
    return create_app({
        "DATABASE_URL": database_url,
        "LEVER_ADMIN_TOKEN": ADMIN_TOKEN,
        "LEVER_SECRET_KEY": SECRET_KEY,
        "LEVER_REFRESH_MS": max(1, int(round(1000.0 / speedup))),
        "LEVER_ENV": "production",
        "LEVER_RATE_LIMIT": "",
    })


def _fresh_database(args, tmp: Path, label: str):
    """A SQLite file per run, or a fresh PostgreSQL schema (dropped afterwards)."""
    if args.database_url:
        return fresh_schema(args.database_url)
    return nullcontext(f"sqlite:///{tmp / (label + '.db')}")


def run_http(env: str, seed: int, horizon: int, holdout: float, speedup: float, database_url: str) -> HttpRun:
    spec = ENVIRONMENTS[env]
    stream = make_stream(env, seed, horizon, rate=bandits_bench.RATE)
    app = _app(database_url, speedup)
    client = app.test_client()
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    keys = [f"v{i}" for i in range(stream.n_arms)]
    body = {
        "key": "bench", "name": f"bench {env}", "mode": "contextual",
        "variants": [{"key": k, "payload": {"n": i}} for i, k in enumerate(keys)],
        "control": keys[0], "holdout": holdout, "context": _features(spec.schema), "crosses": CROSSES,
        "reward_delay_s": spec.mean_delay_s / speedup,
    }
    created = client.post("/api/v1/experiments", json=body, headers=admin)
    if created.status_code != 201:
        raise SystemExit(f"creating the experiment failed: {created.status_code} {created.get_json()}")
    index = {k: i for i, k in enumerate(keys)}
    pace = bandits_bench.RATE * speedup  # visitors per wall-clock second
    pending: list[tuple[float, int, str]] = []  # (report at, serial, assignment token)
    served = np.empty(horizon, dtype=int)
    versions: set = set()
    errors = rewards = 0
    started = time.perf_counter()
    for t in range(horizon):
        target = started + t / pace
        while True:  # report every click that is due, then wait for the visitor's arrival time
            now = time.perf_counter()
            while pending and pending[0][0] <= now:
                _, _, token = heapq.heappop(pending)
                answer = client.post("/api/v1/reward", json={"assignment": token, "value": 1})
                rewards += 1
                errors += answer.status_code != 202
            if now >= target:
                break
            time.sleep(min(target - now, pending[0][0] - now if pending else target - now))
        answer = client.post("/api/v1/assign", json={"experiment": "bench", "visitor": f"s{seed}-{t}",
                                                      "context": stream.contexts[t]})
        if answer.status_code != 200:
            errors += 1
            served[t] = 0
            continue
        data = answer.get_json()
        arm = index[data["variant"]]
        served[t] = arm
        versions.add(data["model_version"])
        if stream.uniforms[t] < stream.probabilities[t, arm]:
            heapq.heappush(pending, (time.perf_counter() + stream.delays[t] / speedup, t, data["assignment"]))
    elapsed = time.perf_counter() - started
    app.extensions["lever.storage"].close()
    p_served = stream.probabilities[np.arange(horizon), served]
    best = stream.probabilities.max(axis=1)
    tail = slice(int(0.9 * horizon), horizon)
    return HttpRun(env, seed, horizon, holdout, float((best - p_served).sum()), float(p_served[tail].mean()),
                   float(best[tail].mean()), horizon / elapsed, len(versions), rewards, errors)


def _mean_se(values: list[float]) -> str:
    a = np.asarray(values, dtype=float)
    se = a.std(ddof=1) / np.sqrt(len(a)) if len(a) > 1 else float("nan")
    return f"{a.mean():.1f} ± {se:.1f}" if len(a) > 1 else f"{a.mean():.1f}"


def render(http_runs: list[HttpRun], in_process: list[dict], args, wall: float) -> str:
    lines = [
        "# Contextual regret through the HTTP service",
        "",
        f"`{' '.join(['.venv/bin/python', 'benchmarks/bandits_http.py'] + sys.argv[1:])}` — "
        f"{args.horizon:,} visitors per run, seeds {', '.join(map(str, args.seeds))}, time × {args.speedup:g} "
        f"(paced at {bandits_bench.RATE * args.speedup:g} visitors/s, LEVER_REFRESH_MS="
        f"{max(1, int(round(1000 / args.speedup)))}), {'PostgreSQL' if args.database_url else 'SQLite'}; "
        f"Python {platform.python_version()}, wall time {wall:.0f} s, load average at the end "
        f"{os.getloadavg()[0]:.1f}.",
        "",
        "Regret = Σ (best variant's click probability − served variant's), mean ± standard error over "
        "seeds; the same visitors, click draws and delays for every row. *HTTP* rows drive the real "
        "service; *in-process* rows are `bandits_bench.simulate` on the same stream (Lever at service "
        "cadence with the service's min_share 0.01 and no holdout; peers fully online or behind a join window).",
        "",
        "| environment | policy | regret | CR last 10% (oracle) | achieved visitors/s | refreshes seen | errors |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for env in args.envs:
        for holdout in args.holdouts:
            runs = [r for r in http_runs if r.env == env and r.holdout == holdout]
            if not runs:
                continue
            lines.append(
                f"| {env} | **Lever via HTTP** (holdout {holdout:g}, min_share 0.01) | "
                f"{_mean_se([r.regret for r in runs])} | {np.mean([r.cr_tail for r in runs]):.2%} "
                f"({np.mean([r.oracle_tail for r in runs]):.2%}) | {np.median([r.achieved_rate for r in runs]):.0f} | "
                f"{int(np.median([r.refreshes for r in runs]))} | {sum(r.errors for r in runs)} |")
        rows = [r for r in in_process if r["env"] == env]
        for key in IN_PROCESS:
            mine = [r for r in rows if r["key"] == key]
            if mine:
                lines.append(
                    f"| {env} | {mine[0]['name']} (in-process) | {_mean_se([r['regret'] for r in mine])} | "
                    f"{np.mean([r['cr_tail'] for r in mine]):.2%} ({np.mean([r['oracle_tail'] for r in mine]):.2%}) "
                    f"| | | |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--envs", nargs="+", default=["main effects", "interactions", "context irrelevant"],
                        choices=sorted(ENVIRONMENTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--horizon", type=int, default=5000)
    parser.add_argument("--speedup", type=float, default=5.0, help="wall-clock time runs this much faster")
    parser.add_argument("--holdouts", nargs="+", type=float, default=[0.0, 0.1],
                        help="experiment holdout shares to run (0.1 is the default a new user gets)")
    parser.add_argument("--database-url", default=None, help="PostgreSQL URL (fresh schema per run)")
    parser.add_argument("--quick", action="store_true", help="1 environment, 1 seed, 2,000 visitors")
    parser.add_argument("--no-peers", action="store_true", help="skip the in-process rows")
    args = parser.parse_args()
    if args.quick:
        args.envs, args.seeds, args.horizon, args.holdouts = ["main effects"], [0], 2000, [0.0]
    started = time.perf_counter()
    http_runs: list[HttpRun] = []
    with tempfile.TemporaryDirectory() as tmp:
        for env in args.envs:
            for seed in args.seeds:
                for holdout in args.holdouts:
                    with _fresh_database(args, Path(tmp), f"{env.replace(' ', '_')}-{seed}-{holdout}") as url:
                        run = run_http(env, seed, args.horizon, holdout, args.speedup, url)
                    print(f"{env} seed {seed} holdout {holdout:g}: regret {run.regret:.1f}, "
                          f"{run.achieved_rate:.0f} visitors/s, {run.refreshes} model versions, "
                          f"{run.errors} errors", flush=True)
                    http_runs.append(run)
    in_process = []
    if not args.no_peers:
        for env in args.envs:
            for seed in args.seeds:
                for key in IN_PROCESS:
                    if bandits_bench.available(bandits_bench.BY_KEY[key]):
                        in_process.append(bandits_bench.simulate((env, key, seed, args.horizon)))
    report = render(http_runs, in_process, args, time.perf_counter() - started)
    print(report)
    if not args.quick:
        RESULTS.write_text(report)


if __name__ == "__main__":
    main()
