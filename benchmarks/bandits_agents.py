"""Policies under test, behind one interface the simulator drives.

An agent serves a *block* of consecutive visitors with the model it has at the start
of the block (``block`` = 1: it learns after every visitor), then observes what they
did. Lever's agents run at the service's cadence: a decision counts in its arm's
statistics at once (reward 0 so far), its click only when the click is reported
(``Stream.delays``), and the policy is re-fitted from the stored statistics once per
simulated second. The peers are fully online: one update per visitor, clicks at once —
or, with ``join_window_s``, as a peer deployed behind a service must learn: each decision is
learned once, ``join_window_s`` after it was made, with its click if the click was reported by
then and as a non-click otherwise (Azure Personalizer's "reward wait time", Vowpal Wabbit
Decision Service's join window).
"""
from __future__ import annotations

import heapq

import numpy as np

from bandits import ArmStatistics, BetaThompson, LinearArmState, LinearThompson, add_decision, add_reward


class Agent:
    name = "abstract"
    block = 1  # visitors served per model refresh
    crossed = False  # True: gets the encoding with the declared crosses

    def __init__(self, n_arms: int, dim: int, rng: np.random.Generator, rate: float) -> None:
        self.n_arms, self.dim, self.rng, self.rate = n_arms, dim, rng, rate

    def choose(self, start: int, x: np.ndarray) -> np.ndarray:
        """Variants for visitors start .. start + len(x) - 1."""
        raise NotImplementedError

    def observe(self, start: int, x: np.ndarray, arms: np.ndarray, rewards: np.ndarray, delays: np.ndarray) -> None:
        raise NotImplementedError


class UniformAgent(Agent):
    name = "uniform random"
    block = 256

    def choose(self, start, x):
        return self.rng.integers(0, self.n_arms, size=len(x))

    def observe(self, start, x, arms, rewards, delays):
        pass


class _DelayedClicks:
    """Clicks reported ``delay`` seconds after their decision, released in time order."""

    def __init__(self) -> None:
        self.pending: list[tuple[float, int, int, float]] = []  # (reported at, serial, arm, decided at)
        self.rows: dict[int, np.ndarray] = {}
        self.serial = 0

    def push(self, decided_at: float, delay: float, arm: int, row: np.ndarray) -> None:
        self.serial += 1
        self.rows[self.serial] = row
        heapq.heappush(self.pending, (decided_at + delay, self.serial, arm, decided_at))

    def due(self, now: float):
        while self.pending and self.pending[0][0] <= now:
            reported_at, serial, arm, decided_at = heapq.heappop(self.pending)
            yield reported_at, arm, decided_at, self.rows.pop(serial)


class _JoinWindow:
    """Decisions waiting for their join: released ``window`` seconds after the decision, with the
    reward the peer can know by then (a click reported after the window is lost, as in production)."""

    def __init__(self, window: float | None) -> None:
        self.window = window
        self.pending: list[tuple[float, int, tuple]] = []
        self.serial = 0

    def push(self, decided_at: float, delay: float, reward: float, item: tuple) -> None:
        self.serial += 1
        joined = reward if delay <= self.window else 0.0
        heapq.heappush(self.pending, (decided_at + self.window, self.serial, (joined,) + item))

    def due(self, now: float):
        while self.pending and self.pending[0][0] <= now:
            yield heapq.heappop(self.pending)[2]


def _join_label(window: float | None) -> str:
    return "" if window is None else f", clicks joined after {window:g} s"


class ServiceBetaAgent(Agent):
    """Lever's non-contextual Beta Thompson sampling at service cadence (refit 1 s, late clicks)."""

    def __init__(self, n_arms, dim, rng, rate, refresh_s: float = 1.0, min_share: float = 0.0):
        super().__init__(n_arms, dim, rng, rate)
        self.block = max(1, int(round(refresh_s * rate)))
        self.policy = BetaThompson(n_arms, draws=1000, min_share=min_share)
        self.decisions = np.zeros(n_arms)
        self.successes = np.zeros(n_arms)
        self.clicks = _DelayedClicks()
        self.name = f"Lever BetaThompson, non-contextual (service: refit every {refresh_s:g} s, late clicks)"

    def choose(self, start, x):
        for _, arm, _, _ in self.clicks.due(start / self.rate):
            self.successes[arm] += 1
        self.policy.fit([ArmStatistics(n, s, s, s) for n, s in zip(self.decisions, self.successes)])
        allocation = self.policy.allocation(self.rng)
        return np.minimum(np.searchsorted(np.cumsum(allocation), self.rng.random(len(x)), side="right"), self.n_arms - 1)

    def observe(self, start, x, arms, rewards, delays):
        for i, (arm, reward) in enumerate(zip(arms, rewards)):
            self.decisions[arm] += 1
            if reward > 0:
                self.clicks.push((start + i) / self.rate, delays[i], int(arm), x[i])


class ServiceLinearAgent(Agent):
    """Lever's LinearThompson at the service's cadence, on the encoding with crosses.

    Every decision enters its arm's :class:`LinearArmState` when it is made (y = 0);
    a click enters only when it is reported, ``delay`` seconds later; the policy is
    re-fitted from the states once per second of simulated traffic.
    """

    crossed = True

    def __init__(self, n_arms, dim, rng, rate, refresh_s: float = 1.0, half_life_s: float | None = None,
                 crossed: bool = True, label: str = "", immediate: bool = False,
                 reward_delay_s: float | None = None, main_columns: int | None = None, **params):
        super().__init__(n_arms, dim, rng, rate)
        self.crossed = crossed
        self.immediate = immediate  # diagnostics only: clicks at once instead of late
        self.block = max(1, int(round(refresh_s * rate)))
        self.half_life_s = half_life_s
        self.policy = LinearThompson(n_arms, dim, half_life_s=half_life_s, main_columns=main_columns, **params)
        self.states = [LinearArmState.empty(dim, reward_delay_s=reward_delay_s) for _ in range(n_arms)]
        self.clicks = _DelayedClicks()
        extras = [f"refit every {refresh_s:g} s", "clicks at once" if immediate else "late clicks"]
        extras.append("no crosses" if not crossed else "crosses")
        extras.append("no pending correction" if reward_delay_s is None else f"pending correction tau={reward_delay_s:g} s")
        if half_life_s is not None:
            extras.append(f"half-life {half_life_s:.0f} s")
        if "column_groups" not in params:
            extras.append("per-column priors")
        extras += [f"{k}={v}" for k, v in params.items() if k in ("exploration", "evidence_z", "min_share", "adaptive_prior")]
        self.name = f"Lever LinearThompson{label} (service: {', '.join(extras)})"

    def choose(self, start, x):
        now = start / self.rate
        for reported_at, arm, decided_at, row in self.clicks.due(now):
            self.states[arm] = add_reward(self.states[arm], row, 1.0, decided_at, reported_at, self.half_life_s)
        self.policy.fit(self.states, now)
        return np.array([self.policy.select(self.rng, row).arm for row in x])

    def observe(self, start, x, arms, rewards, delays):
        for i, (row, arm, reward) in enumerate(zip(x, arms, rewards)):
            decided_at = (start + i) / self.rate
            self.states[arm] = add_decision(self.states[arm], row, decided_at, self.half_life_s)
            if reward > 0:
                self.clicks.push(decided_at, 0.0 if self.immediate else delays[i], int(arm), row)


class MabwiserAgent(Agent):
    """MABWiser LinTS / LinUCB, fully online: one ridge update per visitor, clicks at once.

    The statistics are MABWiser's own ``_RidgeRegression`` (its ``fit`` adds the
    visitor to A = X'X + l2 I and recomputes A^-1 and beta), and LinUCB scores with its
    own ``predict``. Driving the arm models directly skips MABWiser's per-call
    validation and deep copies (2.8 ms per visitor through ``partial_fit``), which would
    make 20,000 visitors x 7 environments x 4 seeds impractical. LinTS samples beta ~
    N(beta, alpha^2 A^-1) exactly like MABWiser's ``multivariate_normal`` call, through a
    Cholesky factor cached until the arm's next update instead of an SVD per call.
    ``crossed``: give it the encoding with Lever's declared crosses as well.
    """

    def __init__(self, n_arms, dim, rng, rate, policy: str = "LinTS", alpha: float = 1.0, crossed: bool = False,
                 join_window_s: float | None = None):
        super().__init__(n_arms, dim, rng, rate)
        self.joins = _JoinWindow(join_window_s)
        from mabwiser.linear import _LinTS, _LinUCB
        from mabwiser.utils import create_rng

        self.crossed = crossed
        self.policy, self.alpha = policy, alpha
        model_cls = _LinTS if policy == "LinTS" else _LinUCB
        mab_rng = create_rng(int(rng.integers(2**31)))
        self.models = [model_cls(mab_rng, alpha, 1.0, False) for _ in range(n_arms)]
        for model in self.models:
            model.init(dim)
        self.factors = [None] * n_arms
        self.name = (f"MABWiser {policy} (alpha={alpha:g}, online per visitor{', crossed columns' if crossed else ''}"
                     f"{_join_label(join_window_s)})")

    def _scores(self, row: np.ndarray) -> np.ndarray:
        if self.policy == "LinUCB":
            return np.array([m.predict(row[None])[0] for m in self.models])
        scores = np.empty(self.n_arms)
        for arm, model in enumerate(self.models):
            if self.factors[arm] is None:
                self.factors[arm] = np.linalg.cholesky(self.alpha**2 * model.A_inv + 1e-12 * np.eye(self.dim))
            beta = model.beta + self.factors[arm] @ self.rng.standard_normal(self.dim)
            scores[arm] = row @ beta
        return scores

    def choose(self, start, x):
        for reward, row, arm in self.joins.due(start / self.rate):
            self._learn(row, arm, reward)
        scores = self._scores(x[0])
        best = np.flatnonzero(scores == scores.max())
        return np.array([best[0] if best.size == 1 else self.rng.choice(best)])

    def observe(self, start, x, arms, rewards, delays):
        if self.joins.window is not None:
            self.joins.push(start / self.rate, float(delays[0]), float(rewards[0]), (x[0], int(arms[0])))
            return
        self._learn(x[0], int(arms[0]), float(rewards[0]))

    def _learn(self, row: np.ndarray, arm: int, reward: float) -> None:
        self.models[arm].fit(row[None], np.array([reward]))
        self.factors[arm] = None


def vw_lines(x: np.ndarray, n_arms: int, label: tuple[int, float, float] | None = None) -> list[str]:
    """A VW multi-line ADF example: shared context features, one line per action."""
    shared = " ".join(f"c{j}:{v:.6g}" for j, v in enumerate(x) if v != 0.0)
    lines = [f"shared |s {shared}"]
    for arm in range(n_arms):
        prefix = f"0:{label[1]:g}:{label[2]:.6g} " if label is not None and label[0] == arm else ""
        lines.append(f"{prefix}|a arm{arm}")
    return lines


class VowpalAgent(Agent):
    """Vowpal Wabbit ``--cb_explore_adf`` learning every visitor; cost = -click.

    ``interactions`` are VW's own: ``-q sa`` (context x action) learns main effects per
    variant, ``--cubic ssa`` adds context x context x action, VW's way of learning
    which *combinations* prefer which variant. The arm is drawn from VW's pmf with our
    generator.
    """

    def __init__(self, n_arms, dim, rng, rate, exploration: str = "--squarecb", interactions: str = "-q sa",
                 join_window_s: float | None = None):
        super().__init__(n_arms, dim, rng, rate)
        self.joins = _JoinWindow(join_window_s)
        import vowpalwabbit

        seed = int(rng.integers(2**31))
        self.args = f"--cb_explore_adf {interactions} {exploration} --quiet --random_seed {seed}"
        self.vw = vowpalwabbit.Workspace(self.args)
        self.pmf = np.full(n_arms, 1.0 / n_arms)
        self.name = f"Vowpal Wabbit cb_explore_adf ({exploration.strip('-')}, {interactions}{_join_label(join_window_s)})"

    def choose(self, start, x):
        for reward, row, arm, probability in self.joins.due(start / self.rate):
            self._learn(row, arm, reward, probability)
        pmf = np.asarray(self.vw.predict(vw_lines(x[0], self.n_arms)), dtype=float)
        self.pmf = pmf / pmf.sum()
        arm = int(min(np.searchsorted(np.cumsum(self.pmf), self.rng.random(), side="right"), self.n_arms - 1))
        return np.array([arm])

    def observe(self, start, x, arms, rewards, delays):
        arm = int(arms[0])
        if self.joins.window is not None:
            self.joins.push(start / self.rate, float(delays[0]), float(rewards[0]), (x[0], arm, float(self.pmf[arm])))
            return
        self._learn(x[0], arm, float(rewards[0]), float(self.pmf[arm]))

    def _learn(self, row: np.ndarray, arm: int, reward: float, probability: float) -> None:
        self.vw.learn(vw_lines(row, self.n_arms, (arm, -reward, probability)))

    def close(self) -> None:
        self.vw.finish()
