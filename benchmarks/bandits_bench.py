"""Contextual bandit benchmark: Lever at the service's cadence against fully-online peers.

    .venv/bin/python benchmarks/bandits_bench.py            # full run (~10-15 min on 2 idle cores)
    .venv/bin/python benchmarks/bandits_bench.py --quick    # ~2 minutes

Synthetic environments (benchmarks/bandits_envs.py), each over several seeds with
common random numbers: every policy sees the same visitors and the same click
uniforms. Cumulative (pseudo-)regret is sum_t max_a p(x_t, a) - p(x_t, a_t) with the
true click probabilities p. Lever runs as the service does (refit once per simulated
second at RATE requests/s, decisions counted at once, clicks reported late); the peers
learn after every visitor with the click at once. Then decision latency for 10
variants x 32 encoded features, and off-policy evaluation on the Open Bandit Dataset
sample bundled with ``obp`` (benchmarks/bandits_obd.py). The markdown report is printed
and written to benchmarks/results/bandits.md.

Peers (optional: a missing one is reported and skipped): ``pip install mabwiser
vowpalwabbit`` and ``pip install --no-deps --ignore-requires-python obp==0.5.7``.
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one process per core instead of threads fighting over 2 cores

import argparse
import importlib.util
import json
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import bandits_agents as agents  # noqa: E402
from bandits_envs import ENVIRONMENTS, encoder_for, make_stream  # noqa: E402

from bandits import ContextEncoder, LinearArmState, LinearThompson, add_decision, add_reward  # noqa: E402
from bandits.base import apply_floor, decide, win_probabilities  # noqa: E402

RESULTS = HERE / "results" / "bandits.md"
RATE = 20.0  # simulated requests per second: the service refits once per second = every 20 visitors


@dataclass(frozen=True)
class PolicySpec:
    key: str
    factory: str  # attribute of bandits_agents
    params: tuple = ()
    needs: str | None = None  # module that must be importable
    group: str = "peer"  # "lever" (service cadence), "peer" (fully online), "joined" (peer behind a join window), "reference"
    cost: float = 1.0  # relative run time, to schedule the slowest first

    @property
    def hour(self) -> dict | None:
        """Extra parameters of the hour feature this policy's user declares (None: sin/cos)."""
        hour = dict(self.params).get("hour")
        return None if hour is None else {k: list(v) if isinstance(v, tuple) else v for k, v in hour}

    def build(self, n_arms: int, dim: int, rng: np.random.Generator, horizon: int, env: str) -> agents.Agent:
        params = dict(self.params)
        if params.pop("hour", None) is not None:
            params["label"] = " with hour " + ", ".join(f"{k} {v}" for k, v in self.hour.items())
        if params.get("half_life_s") == "auto":
            params["half_life_s"] = horizon / 5 / RATE  # a fifth of the run
        if params.get("main_columns") == "encoder":  # crosses after the main-effect columns
            params["main_columns"] = encoder_for(env, True, self.hour).main_width
        if params.get("column_groups") == "encoder":  # one prior precision per feature / cross block
            params["column_groups"] = encoder_for(env, params.get("crossed", True), self.hour).column_groups()
        if params.get("join_window_s") in ("measured", "measured-short"):  # 3 mean delays (95% of the clicks) or 1 (63%)
            params["join_window_s"] = (3 if params["join_window_s"] == "measured" else 1) * ENVIRONMENTS[env].mean_delay_s
        if params.get("reward_delay_s") == "measured":  # what the service measures: the mean reward delay
            params["reward_delay_s"] = ENVIRONMENTS[env].mean_delay_s
        return getattr(agents, self.factory)(n_arms, dim, rng, RATE, **params)


#: Lever as the service should run it: declared crosses, pending-reward correction with the
#: measured mean delay, one prior precision per feature/cross block, crosses tested given
#: the main effects, default exploration.
LEVER = (("reward_delay_s", "measured"), ("main_columns", "encoder"), ("column_groups", "encoder"))
#: ``"parts"`` of the hour as a user would declare day parts: night, working hours, evening.
DAY_PARTS = (("parts", (0, 9, 18)),)

POLICIES = [
    PolicySpec("uniform", "UniformAgent", group="reference", cost=0.1),
    PolicySpec("beta", "ServiceBetaAgent", group="reference", cost=0.3),
    # Lever as the service runs it: with the service's default min_share (0.01: every variant keeps 1% of the
    # traffic, so an early wrong lead cannot lock in); "lever-ms0" and the ablations below leave it at 0
    PolicySpec("lever", "ServiceLinearAgent", LEVER + (("min_share", 0.01),), group="lever", cost=3),
    PolicySpec("lever-ms0", "ServiceLinearAgent", LEVER, group="variant", cost=3),
    # the user declares the hour's day parts (night 0-9 h, working hours 9-18 h, evening 18-24 h) or 2 harmonics
    PolicySpec("lever-parts", "ServiceLinearAgent", LEVER + (("min_share", 0.01), ("hour", DAY_PARTS)),
               group="variant", cost=3),
    PolicySpec("lever-harmonics", "ServiceLinearAgent", LEVER + (("min_share", 0.01), ("hour", (("harmonics", 2),))),
               group="variant", cost=3),
    PolicySpec("lever-plain", "ServiceLinearAgent", (("reward_delay_s", "measured"), ("crossed", False),
                                                     ("column_groups", "encoder")), group="variant", cost=2),
    PolicySpec("lever-uncorrected", "ServiceLinearAgent", LEVER[1:], group="variant", cost=3),
    PolicySpec("lever-e1", "ServiceLinearAgent", LEVER + (("exploration", 1.0),), group="variant", cost=3),
    PolicySpec("lever-decay", "ServiceLinearAgent", LEVER + (("half_life_s", "auto"),), group="variant", cost=3),
    # diagnostics: the empirical-Bayes block priors off; clicks at once (what the delay costs)
    PolicySpec("lever-noadapt", "ServiceLinearAgent", LEVER + (("min_share", 0.01), ("adaptive_prior", False)),
               group="variant", cost=3),
    PolicySpec("lever-immediate", "ServiceLinearAgent", LEVER[1:] + (("immediate", True),), group="variant", cost=3),
    PolicySpec("mab-lints-1", "MabwiserAgent", (("policy", "LinTS"), ("alpha", 1.0)), "mabwiser", cost=2),
    PolicySpec("mab-lints-.25", "MabwiserAgent", (("policy", "LinTS"), ("alpha", 0.25)), "mabwiser", cost=2),
    PolicySpec("mab-linucb-1", "MabwiserAgent", (("policy", "LinUCB"), ("alpha", 1.0)), "mabwiser", cost=2),
    PolicySpec("mab-linucb-.25", "MabwiserAgent", (("policy", "LinUCB"), ("alpha", 0.25)), "mabwiser", cost=2),
    PolicySpec("mab-lints-.25-x", "MabwiserAgent", (("policy", "LinTS"), ("alpha", 0.25), ("crossed", True)),
               "mabwiser", cost=3),
    PolicySpec("mab-linucb-.25-x", "MabwiserAgent", (("policy", "LinUCB"), ("alpha", 0.25), ("crossed", True)),
               "mabwiser", cost=3),
    PolicySpec("vw-squarecb", "VowpalAgent", (("exploration", "--squarecb"),), "vowpalwabbit", cost=2),
    PolicySpec("vw-squarecb-cubic", "VowpalAgent", (("exploration", "--squarecb"), ("interactions", "-q sa --cubic ssa")),
               "vowpalwabbit", cost=3),
]
#: the best peers as they would run behind a service: clicks joined to decisions after a window
#: of 3 mean delays ("-joined") or 1 ("-joined1": faster, but 37% of the clicks come too late)
POLICIES += [
    PolicySpec(spec.key + suffix, spec.factory, spec.params + (("join_window_s", window),), spec.needs,
               group="joined", cost=spec.cost)
    for spec in list(POLICIES) if spec.key in ("mab-linucb-1", "mab-linucb-.25", "vw-squarecb-cubic")
    for suffix, window in (("-joined", "measured"), ("-joined1", "measured-short"))
]
BY_KEY = {p.key: p for p in POLICIES}
QUICK_POLICIES = ("uniform", "beta", "lever", "mab-lints-.25", "mab-linucb-.25", "vw-squarecb-cubic")
#: The default run: Lever, its ablations, and the peers that were best somewhere in earlier runs
#: (MABWiser LinTS alpha=1 and VW with -q sa only were never best: ``--policies all`` adds them).
DEFAULT_POLICIES = ("uniform", "beta", "lever", "lever-ms0", "lever-plain", "lever-uncorrected", "mab-lints-.25",
                    "mab-linucb-.25", "mab-linucb-1", "mab-linucb-.25-x", "vw-squarecb-cubic",
                    "mab-linucb-.25-joined", "mab-linucb-1-joined", "vw-squarecb-cubic-joined",
                    "mab-linucb-.25-joined1", "mab-linucb-1-joined1", "vw-squarecb-cubic-joined1")


def available(spec: PolicySpec) -> bool:
    return spec.needs is None or importlib.util.find_spec(spec.needs) is not None


def simulate(job: tuple[str, str, int, int]) -> dict:
    """Run one policy on one environment with one seed; returns its metrics."""
    env, key, seed, horizon = job
    spec = BY_KEY[key]
    stream = make_stream(env, seed, horizon, rate=RATE)
    rng = np.random.default_rng([seed, 4242])  # the same policy draws for every policy (common random numbers)
    crossed = dict(spec.params).get("crossed", spec.factory == "ServiceLinearAgent")
    x = stream.x_crossed if crossed else stream.x
    if spec.hour is not None:  # the user declared a richer hour (day parts, harmonics): encode for it
        encoder = encoder_for(env, crossed, spec.hour)
        x = np.stack([encoder.encode(c).vector for c in stream.contexts])
    agent = spec.build(stream.n_arms, x.shape[1], rng, horizon, env)
    served = np.empty(horizon, dtype=int)
    started = time.perf_counter()
    for start in range(0, horizon, agent.block):
        stop = min(start + agent.block, horizon)
        arms = np.asarray(agent.choose(start, x[start:stop]), dtype=int)
        rewards = (stream.uniforms[start:stop] < stream.probabilities[np.arange(start, stop), arms]).astype(float)
        agent.observe(start, x[start:stop], arms, rewards, stream.delays[start:stop])
        served[start:stop] = arms
    elapsed = time.perf_counter() - started
    if hasattr(agent, "close"):
        agent.close()
    p_served = stream.probabilities[np.arange(horizon), served]
    best = stream.probabilities.max(axis=1)
    tail = slice(int(0.9 * horizon), horizon)
    return {
        "env": env,
        "key": key,
        "name": agent.name,
        "seed": seed,
        "regret": float((best - p_served).sum()),
        "cr_tail": float(p_served[tail].mean()),
        "oracle_tail": float(best[tail].mean()),
        "per_second": horizon / elapsed,
        "width": x.shape[1],
        "horizon": horizon,
    }


# -- latency -------------------------------------------------------------------------------
def _legacy_select(policy: LinearThompson, rng: np.random.Generator, x: np.ndarray):
    """The previous decision path, for comparison on the same machine in the same run:
    fresh normals per decision, win probabilities with tie splitting, floor, draw."""
    mean, sd = policy.predict(x)
    samples = mean + sd * rng.standard_normal((256, policy.n_arms))
    return decide(apply_floor(win_probabilities(samples), policy.min_share), rng, scores=mean)


def _timed(fn, repeats: int) -> np.ndarray:
    timings = np.empty(repeats)
    for i in range(repeats):
        t0 = time.perf_counter_ns()
        fn(i)
        timings[i] = time.perf_counter_ns() - t0
    return timings / 1e3


def latency(repeats: int) -> dict:
    """One decision with its propensity for 10 variants x 32 encoded features (+ intercept)."""
    rng = np.random.default_rng(0)
    k, d = 10, 33
    states = [LinearArmState.empty(d) for _ in range(k)]
    xs = np.column_stack([np.ones(repeats), (rng.random((repeats, d - 1)) < 0.3).astype(float)])
    for i in range(3000):
        arm = int(rng.integers(k))
        states[arm] = add_reward(add_decision(states[arm], xs[i], float(i)), xs[i], float(rng.random() < 0.05), i, i)
    policy = LinearThompson(k, d, min_share=0.01).fit(states, now=3000.0)

    def miss(i):  # a context never seen since the refit: the full computation
        policy._cache.clear()
        policy.select(rng, xs[i])

    measured = {
        "miss": _timed(miss, repeats),
        "hit": _timed(lambda i: policy.select(rng, xs[i % 64]), repeats),
        "legacy": _timed(lambda i: _legacy_select(policy, rng, xs[i]), repeats),
    }
    schema = [
        {"name": "device", "type": "categorical", "levels": ["mobile", "desktop", "tablet"]},
        {"name": "hour", "type": "cyclic", "period": 24},
        {"name": "weekday", "type": "cyclic", "period": 7},
        {"name": "visits", "type": "numeric", "max": 100},
        {"name": "referrer", "type": "hashed", "buckets": 17},
        {"name": "returning", "type": "boolean"},
        {"name": "plan", "type": "categorical", "levels": ["free", "pro"]},
    ]
    encoder = ContextEncoder.from_schema(schema)
    assert encoder.width == d, encoder.width
    context = {"device": "mobile", "hour": 21, "weekday": 4, "visits": 7, "referrer": "news", "returning": True, "plan": "x"}
    measured["encode"] = _timed(lambda i: encoder.encode(context), repeats // 4)
    t0 = time.perf_counter()
    policy.fit(states, now=3001.0)
    refit = time.perf_counter() - t0
    out = {f"{name}_median_us": float(np.median(t)) for name, t in measured.items()}
    out.update({f"{name}_p99_us": float(np.percentile(t, 99)) for name, t in measured.items()})
    out.update(refit_ms=refit * 1e3, blob_bytes=len(states[0].to_bytes()))
    return out


# -- report --------------------------------------------------------------------------------
def aggregate(rows: list[dict]) -> dict[str, dict[str, dict]]:
    table: dict[str, dict[str, dict]] = {}
    for env in ENVIRONMENTS:
        table[env] = {}
        for spec in POLICIES:
            runs = [r for r in rows if r["env"] == env and r["key"] == spec.key]
            if not runs:
                continue
            regrets = np.array([r["regret"] for r in runs])
            table[env][spec.key] = {
                "name": runs[0]["name"],
                "group": spec.group,
                "regret": float(regrets.mean()),
                "regret_se": float(regrets.std(ddof=1) / np.sqrt(len(runs))) if len(runs) > 1 else 0.0,
                "cr_tail": float(np.mean([r["cr_tail"] for r in runs])),
                "oracle_tail": float(np.mean([r["oracle_tail"] for r in runs])),
                "per_second": float(np.median([r["per_second"] for r in runs])),
                "width": runs[0]["width"],
                "seeds": len(runs),
            }
    return table


def best_peer(rows: dict[str, dict], group: str = "peer") -> str | None:
    peers = {k: v["regret"] for k, v in rows.items() if v["group"] == group}
    return min(peers, key=peers.get) if peers else None


def goal_lines(table: dict[str, dict[str, dict]]) -> list[str]:
    """The issue's goal per environment: Lever <= 0.9x the best peer; context irrelevant: <= 1.05x Beta TS."""
    lines = ["| environment | Lever (service cadence) | best peer (fully online) | ratio | goal | met? |"
             " best peer, clicks joined after a window | ratio |",
             "|---|---:|---|---:|---:|---|---|---:|"]
    for env, rows in table.items():
        if "lever" not in rows:
            continue
        lever = rows["lever"]
        peer_key = best_peer(rows)
        joined_key = best_peer(rows, "joined")
        joined = ""
        if joined_key is not None:
            j = rows[joined_key]
            joined = f" {j['name']}: {j['regret']:.1f} ± {j['regret_se']:.1f} | {lever['regret'] / j['regret']:.2f}× |"
        if peer_key is not None:
            peer = rows[peer_key]
            ratio = lever["regret"] / peer["regret"]
            lines.append(
                f"| {env} | {lever['regret']:.1f} ± {lever['regret_se']:.1f} | {peer['name']}:"
                f" {peer['regret']:.1f} ± {peer['regret_se']:.1f} | {ratio:.2f}× | ≤ 0.90× | {'yes' if ratio <= 0.9 else 'NO'} |"
                + (joined or " | |")
            )
        if env == "context irrelevant" and "beta" in rows:
            ratio = lever["regret"] / rows["beta"]["regret"]
            lines.append(
                f"| {env} (vs non-contextual) | {lever['regret']:.1f} ± {lever['regret_se']:.1f} |"
                f" {rows['beta']['name']}: {rows['beta']['regret']:.1f} ± {rows['beta']['regret_se']:.1f} |"
                f" {ratio:.2f}× | ≤ 1.05× | {'yes' if ratio <= 1.05 else 'NO'} | | |"
            )
    return lines


def render(table, lat, obd, args, wall) -> str:
    lines = [
        "# Contextual bandit benchmark",
        "",
        f"`{' '.join(['.venv/bin/python', 'benchmarks/bandits_bench.py'] + sys.argv[1:])}` — horizon {args.horizon} visitors,"
        f" {args.seeds} seeds, {RATE:g} simulated requests/s; Python {platform.python_version()}, numpy {np.__version__},"
        f" {os.cpu_count()} cores, wall time {wall:.0f} s, load average at the end {os.getloadavg()[0]:.1f}"
        " (decisions/s and latency are only comparable between runs on an otherwise idle machine).",
        "",
        "Regret = sum over visitors of (best variant's click probability − served variant's), mean ± standard"
        " error over seeds, with the same visitors and click uniforms for every policy. **Lever runs at the"
        f" service's cadence**: its policy is re-fitted from the stored arm statistics once per simulated second"
        f" ({RATE:g} visitors), a decision counts at once (reward 0 so far) and its click only when reported"
        " (exponential delay, mean 30 s = 600 visitors; 10 min in *delayed rewards*). **Peers are fully online**:"
        " one update per visitor, the click at once; the *joined* peers learn as a peer deployed behind a service"
        " must (Azure Personalizer's reward wait time, VW Decision Service's join window): each decision once,"
        " a window after it (3 mean delays = 90 s, 95% of the clicks, or 1 mean delay = 30 s, 63%; 20× longer in"
        " *delayed rewards*), with its click if reported by then. Lever gets the declared crosses"
        " `[[\"device\", \"hour\"], [\"returning\", \"source\"]]` in every environment (a user declares them once,"
        " not knowing the answer); peers get the plain encoding (*crossed columns*: the same columns as Lever),"
        " Vowpal Wabbit its own interactions (`-q sa`: context × variant; `--cubic ssa`: pairs of context"
        " features × variant). *CR last 10%* = mean click probability of the served variants over the last 10% of"
        " visitors (oracle = always the best variant). *decisions/s* includes learning.",
        "",
        "## Goal",
        "",
    ]
    lines += goal_lines(table)
    lines += [
        "",
        "Reading it: the *fully online* comparison is deliberately asymmetric — Lever decides from a policy up to"
        " 1 s old and sees each click 30 s (10 min) late, those peers see every click before the next visitor, which"
        " no deployed service can. The *joined* peers are the same algorithms as they would run behind a service:"
        " they must wait for a click before they learn, so they learn each decision once its join window closes."
        " *min_share 0.01* is the service's default; *lever-ms0* (min_share 0) and the *no pending correction* /"
        " *no crosses* rows are Lever's ablations. Where Lever misses the goal the gap is the information the delay"
        " withholds (pending decisions carry no outcome yet, however they are weighted) and, in *interactions*, the"
        " shape of the hour effect (a step 18–23 h, fitted by one daily sinusoid per device); the next steps are a"
        " richer hour encoding in crosses (day parts or 2 harmonics) and a delay model fitted to the observed delays"
        " instead of one exponential time constant.",
        "",
    ]
    for env, rows in table.items():
        if not rows:
            continue
        doc = ENVIRONMENTS[env].doc
        ref = rows.get("lever", {}).get("regret")
        lines += [f"## {env}: {doc}", "", "| policy | columns | regret | vs Lever | CR last 10% (oracle) | decisions/s |",
                  "|---|---:|---:|---:|---:|---:|"]
        for key, r in sorted(rows.items(), key=lambda kv: kv[1]["regret"]):
            rel = f"{r['regret'] / ref:.2f}×" if ref else "—"
            lines.append(
                f"| {r['name']} | {r['width']} | {r['regret']:.1f} ± {r['regret_se']:.1f} | {rel} |"
                f" {100 * r['cr_tail']:.2f}% ({100 * r['oracle_tail']:.2f}%) | {r['per_second']:,.0f} |"
            )
        lines.append("")
    lines += [
        "## Decision latency (10 variants × 33 columns = 32 encoded features + intercept, in-process)",
        "",
        "| measure | median | p99 |",
        "|---|---:|---:|",
        f"| `select()` incl. exact propensity, context not seen since the refit (draws = 256) | {lat['miss_median_us']:.0f} µs | {lat['miss_p99_us']:.0f} µs |",
        f"| `select()` for a context already seen since the refit (memoised allocation) | {lat['hit_median_us']:.0f} µs | {lat['hit_p99_us']:.0f} µs |",
        f"| previous decision path (fresh normals per decision), same run | {lat['legacy_median_us']:.0f} µs | {lat['legacy_p99_us']:.0f} µs |",
        f"| encode a raw context (7 features → 33 columns) | {lat['encode_median_us']:.0f} µs | {lat['encode_p99_us']:.0f} µs |",
        f"| `fit()` refresh of 10 arms (Cholesky, inverse factors, covariances, draws) | {lat['refit_ms']:.2f} ms | |",
        f"| stored state per arm (`to_bytes`) | {lat['blob_bytes']} bytes | |",
        "",
    ]
    lines += ["## Open Bandit Dataset (ZOZOTOWN sample bundled with obp, uniform-random logs)", ""]
    if not obd:
        lines += ["obp is not installed or `--no-obd`: skipped (`pip install --no-deps --ignore-requires-python obp==0.5.7`).", ""]
    else:
        lines += [
            "5-fold time-ordered cross-fitting: train on 4 folds of logged data, estimate the policy's click rate on the"
            " 5th by self-normalised IPS; 95% paired bootstrap intervals. Context: position + 4 user features"
            " (one-hot). *lift* = policy's estimated CTR / logged CTR. Only ~40 clicks per campaign: wide intervals.",
            "",
            "| campaign (items, clicks) | policy | CTR (SNIPS) | 95% CI | lift vs logged (95% CI) |",
            "|---|---|---:|---:|---:|",
        ]
        for r in obd:
            lines.append(
                f"| {r['campaign']} ({r['k']}, {r['clicks']}) | {r['policy']} | {100 * r['snips']:.3f}% |"
                f" {100 * r['low']:.3f}–{100 * r['high']:.3f}% | {r['lift']:.2f} ({r['lift_low']:.2f}–{r['lift_high']:.2f}) |"
            )
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="5,000 visitors, 2 seeds, fewer peers, one OBD campaign")
    parser.add_argument("--horizon", type=int, default=None)
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--policies", default="", help="comma-separated policy keys (default: all available)")
    parser.add_argument("--envs", default="", help="comma-separated environment names (default: all)")
    parser.add_argument("--no-obd", action="store_true")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--rows", type=Path, default=None, help="also write every run's metrics to this JSON file")
    parser.add_argument("--reuse", type=Path, default=None,
                        help="JSON from --rows of an earlier run: its runs of policies not selected now are kept")
    args = parser.parse_args()
    args.horizon = args.horizon or (5000 if args.quick else 10000)
    args.seeds = args.seeds or (2 if args.quick else 4)
    campaigns = ("men",) if args.quick else ("all", "men", "women")

    if args.policies == "all":
        wanted = [p.key for p in POLICIES]
    else:
        wanted = args.policies.split(",") if args.policies else (QUICK_POLICIES if args.quick else DEFAULT_POLICIES)
    chosen = [p for p in POLICIES if p.key in wanted]
    for spec in chosen:
        if not available(spec):
            print(f"skipping {spec.key}: {spec.needs} is not installed", file=sys.stderr)
    chosen = [p for p in chosen if available(p)]
    envs = [e for e in ENVIRONMENTS if not args.envs or e in args.envs.split(",")]
    jobs = [(env, spec.key, seed, args.horizon) for env in envs for seed in range(args.seeds) for spec in chosen]
    # slowest first so that the workers finish together
    jobs.sort(key=lambda j: -BY_KEY[j[1]].cost * (3 if "variants" in j[0] else 1))

    started = time.perf_counter()
    rows = []
    if args.reuse is not None:
        selected = {p.key for p in chosen}
        rows = [r for r in json.loads(args.reuse.read_text()) if r["key"] not in selected and r["env"] in envs
                and r["seed"] < args.seeds and r.get("horizon", args.horizon) == args.horizon]
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        obd_future = None
        if not args.no_obd:
            import bandits_obd

            obd_future = [pool.submit(bandits_obd.evaluate, c) for c in campaigns]
        for i, row in enumerate(pool.map(simulate, jobs, chunksize=1)):
            rows.append(row)
            print(f"[{i + 1}/{len(jobs)}] {row['env']:<20} seed {row['seed']} {row['name']:<90} regret {row['regret']:8.1f}", file=sys.stderr)
        obd = []
        for future in obd_future or []:
            result = future.result()
            if result:
                obd.extend(result)
    if args.rows is not None:
        args.rows.write_text(json.dumps(rows))
    lat = latency(4000 if args.quick else 20000)
    wall = time.perf_counter() - started
    report = render(aggregate(rows), lat, obd, args, wall)
    print(report)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report + "\n")
    print(f"\nwritten to {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
