"""Policies under test, behind one interface the simulator drives.

An agent serves a *block* of consecutive visitors with the model it has at the start
of the block (``block`` = 1: it learns after every visitor), then observes what they
did. Our service variant also gets the clicks late: it counts a decision at once and
its click only when the click is reported (``Stream.delays``), like the real service.
"""
from __future__ import annotations

import heapq
import warnings

import numpy as np

from bandits import BetaThompson, LinearArmState, LinearThompson, add_decision, add_reward


class Agent:
    name = "abstract"
    block = 1  # visitors served per model refresh

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


class BetaAgent(Agent):
    """Lever's non-contextual Beta-Bernoulli Thompson sampling, learning every visitor."""

    name = "Lever BetaThompson (non-contextual)"

    def __init__(self, n_arms, dim, rng, rate):
        super().__init__(n_arms, dim, rng, rate)
        self.policy = BetaThompson(n_arms, draws=100)  # regret does not need precise propensities

    def choose(self, start, x):
        return np.array([self.policy.select(self.rng).arm])

    def observe(self, start, x, arms, rewards, delays):
        self.policy.update(int(arms[0]), float(rewards[0]))


class LinearAgent(Agent):
    """Lever's LinearThompson learning in-process after every visitor (immediate clicks)."""

    name = "Lever LinearThompson (per event)"

    def __init__(self, n_arms, dim, rng, rate, **params):
        super().__init__(n_arms, dim, rng, rate)
        self.policy = LinearThompson(n_arms, dim, **params)

    def choose(self, start, x):
        return np.array([self.policy.select(self.rng, x[0]).arm])

    def observe(self, start, x, arms, rewards, delays):
        self.policy.update(int(arms[0]), x[0], float(rewards[0]), t=start / self.rate)


class ServiceLinearAgent(Agent):
    """LinearThompson at the service's cadence.

    Every decision enters its arm's :class:`LinearArmState` when it is made (y = 0);
    a click enters only when it is reported, ``delay`` seconds later; the policy is
    re-fitted from the states once per second of simulated traffic.
    """

    def __init__(self, n_arms, dim, rng, rate, refresh_s: float = 1.0, half_life_s: float | None = None, **params):
        super().__init__(n_arms, dim, rng, rate)
        self.block = max(1, int(round(refresh_s * rate)))
        self.half_life_s = half_life_s
        self.policy = LinearThompson(n_arms, dim, half_life_s=half_life_s, **params)
        self.states = [LinearArmState.empty(dim) for _ in range(n_arms)]
        self.pending: list[tuple[float, int, int, float]] = []  # (reported at, serial, arm, decided at)
        self.pending_x: dict[int, np.ndarray] = {}
        self.serial = 0
        decay = "" if half_life_s is None else f", half-life {half_life_s:.0f} s"
        self.name = f"Lever LinearThompson (service: refit every {refresh_s:g} s, delayed clicks{decay})"

    def choose(self, start, x):
        now = start / self.rate
        while self.pending and self.pending[0][0] <= now:
            reported_at, serial, arm, decided_at = heapq.heappop(self.pending)
            self.states[arm] = add_reward(
                self.states[arm], self.pending_x.pop(serial), 1.0, decided_at, reported_at, self.half_life_s
            )
        self.policy.fit(self.states, now)
        return np.array([self.policy.select(self.rng, row).arm for row in x])

    def observe(self, start, x, arms, rewards, delays):
        for i, (row, arm, reward) in enumerate(zip(x, arms, rewards)):
            decided_at = (start + i) / self.rate
            self.states[arm] = add_decision(self.states[arm], row, decided_at, self.half_life_s)
            if reward > 0:
                self.serial += 1
                self.pending_x[self.serial] = row
                heapq.heappush(self.pending, (decided_at + delays[i], self.serial, int(arm), decided_at))


class MabwiserAgent(Agent):
    """MABWiser LinTS / LinUCB, re-fitted with ``partial_fit`` once per block.

    MABWiser must be fitted before its first prediction, so the first block is served
    uniformly at random (as every untrained policy would).
    """

    def __init__(self, n_arms, dim, rng, rate, policy: str = "LinTS", alpha: float = 1.0, refresh_s: float = 1.0):
        super().__init__(n_arms, dim, rng, rate)
        from mabwiser.mab import MAB, LearningPolicy

        learning = getattr(LearningPolicy, policy)(alpha=alpha)
        self.mab = MAB(arms=list(range(n_arms)), learning_policy=learning, seed=int(rng.integers(2**31)))
        self.fitted = False
        self.block = max(1, int(round(refresh_s * rate)))
        self.name = f"MABWiser {policy} (alpha={alpha:g}, refit every {refresh_s:g} s)"

    def choose(self, start, x):
        if not self.fitted:
            return self.rng.integers(0, self.n_arms, size=len(x))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            arms = self.mab.predict(x)
        return np.atleast_1d(np.asarray(arms, dtype=int))

    def observe(self, start, x, arms, rewards, delays):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if self.fitted:
                self.mab.partial_fit(list(arms), list(rewards), x)
            else:
                self.mab.fit(list(arms), list(rewards), x)
                self.fitted = True


def vw_lines(x: np.ndarray, n_arms: int, label: tuple[int, float, float] | None = None) -> list[str]:
    """A VW multi-line ADF example: shared context features, one line per action."""
    shared = " ".join(f"c{j}:{v:.6g}" for j, v in enumerate(x) if v != 0.0)
    lines = [f"shared |s {shared}"]
    for arm in range(n_arms):
        prefix = f"0:{label[1]:g}:{label[2]:.6g} " if label is not None and label[0] == arm else ""
        lines.append(f"{prefix}|a arm{arm}")
    return lines


class VowpalAgent(Agent):
    """Vowpal Wabbit ``--cb_explore_adf`` with shared x action interactions, learning every visitor.

    The arm is drawn from VW's pmf with our generator; the cost is -click.
    """

    def __init__(self, n_arms, dim, rng, rate, exploration: str = "--epsilon 0.05"):
        super().__init__(n_arms, dim, rng, rate)
        import vowpalwabbit

        seed = int(rng.integers(2**31))
        self.args = f"--cb_explore_adf -q sa {exploration} --quiet --random_seed {seed}"
        self.vw = vowpalwabbit.Workspace(self.args)
        self.pmf = np.full(n_arms, 1.0 / n_arms)
        self.name = f"Vowpal Wabbit cb_explore_adf ({exploration.strip('-')})"

    def choose(self, start, x):
        pmf = np.asarray(self.vw.predict(vw_lines(x[0], self.n_arms)), dtype=float)
        self.pmf = pmf / pmf.sum()
        arm = int(min(np.searchsorted(np.cumsum(self.pmf), self.rng.random(), side="right"), self.n_arms - 1))
        return np.array([arm])

    def observe(self, start, x, arms, rewards, delays):
        arm = int(arms[0])
        self.vw.learn(vw_lines(x[0], self.n_arms, (arm, -float(rewards[0]), float(self.pmf[arm]))))

    def close(self) -> None:
        self.vw.finish()
