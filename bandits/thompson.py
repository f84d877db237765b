"""Non-contextual Thompson sampling, implemented as probability matching.

Thompson sampling picks arm k with probability P(k is best | data). We estimate that
vector once per posterior with vectorised Monte-Carlo draws and then sample an arm
from it. The two procedures choose arms with the same law (up to Monte-Carlo error in
the win probabilities), but ours knows the exact probability of the arm it served,
which is what gets logged as the propensity. The service recomputes the vector only
when the posterior changes (once per refresh), so a decision costs one uniform draw.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import stats as st

from .base import ArmStatistics, Decision, PolicyConfigError, apply_floor, decide, win_probabilities


class _PosteriorThompson:
    """Shared mechanics: statistics per arm, cached allocation, floor, select/update."""

    def __init__(self, n_arms: int, min_share: float = 0.0, draws: int = 4000) -> None:
        if n_arms < 1:
            raise PolicyConfigError("a policy needs at least one arm")
        if not 0.0 <= min_share <= 1.0 / n_arms:
            raise PolicyConfigError(f"min_share must be in [0, 1/{n_arms}], got {min_share}")
        if draws < 100:
            raise PolicyConfigError("draws must be at least 100 for a usable propensity estimate")
        self.n_arms = n_arms
        self.min_share = float(min_share)
        self.draws = int(draws)
        self._decisions = np.zeros(n_arms)
        self._successes = np.zeros(n_arms)
        self._sum = np.zeros(n_arms)
        self._sumsq = np.zeros(n_arms)
        self._allocation: np.ndarray | None = None

    # -- state -------------------------------------------------------------------
    def fit(self, arms: Sequence[ArmStatistics]) -> "_PosteriorThompson":
        """Replace the state by these per-arm statistics (what the service does on refresh)."""
        if len(arms) != self.n_arms:
            raise PolicyConfigError(f"expected statistics for {self.n_arms} arms, got {len(arms)}")
        self._decisions = np.array([a.decisions for a in arms], dtype=float)
        self._successes = np.array([a.successes for a in arms], dtype=float)
        self._sum = np.array([a.reward_sum for a in arms], dtype=float)
        self._sumsq = np.array([a.reward_sumsq for a in arms], dtype=float)
        self._allocation = None
        return self

    def update(self, arm: int, reward: float) -> None:
        """Add one decision of ``arm`` with its outcome (in-process learning, benchmarks)."""
        self._decisions[arm] += 1
        self._successes[arm] += reward > 0
        self._sum[arm] += reward
        self._sumsq[arm] += reward * reward
        self._allocation = None

    def arm_statistics(self) -> list[ArmStatistics]:
        return [
            ArmStatistics(float(n), float(s), float(t), float(q))
            for n, s, t, q in zip(self._decisions, self._successes, self._sum, self._sumsq)
        ]

    def state(self) -> dict:
        return {
            "policy": self.name,
            "params": self.params(),
            "arms": [a.__dict__ for a in self.arm_statistics()],
        }

    @classmethod
    def from_state(cls, state: dict) -> "_PosteriorThompson":
        policy = cls(n_arms=len(state["arms"]), **state["params"])
        return policy.fit([ArmStatistics(**arm) for arm in state["arms"]])

    # -- decisions ---------------------------------------------------------------
    def allocation(self, rng: np.random.Generator) -> np.ndarray:
        """P(choose arm) for the next decision: win probabilities with the floor applied."""
        if self._allocation is None:
            samples = self.posterior_samples(rng, self.draws)
            self._allocation = apply_floor(win_probabilities(samples), self.min_share)
        return self._allocation

    def select(self, rng: np.random.Generator, context: np.ndarray | None = None) -> Decision:
        return decide(self.allocation(rng), rng, scores=self.posterior_mean())

    # -- subclass hooks ----------------------------------------------------------
    name = "abstract"

    def params(self) -> dict:
        return {"min_share": self.min_share, "draws": self.draws}

    def posterior_samples(self, rng: np.random.Generator, size: int) -> np.ndarray:
        raise NotImplementedError

    def posterior_mean(self) -> np.ndarray:
        raise NotImplementedError

    def posterior_interval(self, level: float = 0.95) -> np.ndarray:
        raise NotImplementedError


class BetaThompson(_PosteriorThompson):
    """Beta-Bernoulli Thompson sampling for conversion (0/1) rewards.

    Posterior of arm k: Beta(alpha0 + successes, beta0 + decisions - successes).
    """

    name = "beta"

    def __init__(
        self, n_arms: int, prior_alpha: float = 1.0, prior_beta: float = 1.0, min_share: float = 0.0, draws: int = 4000
    ) -> None:
        super().__init__(n_arms, min_share, draws)
        if prior_alpha <= 0 or prior_beta <= 0:
            raise PolicyConfigError("Beta prior parameters must be positive")
        self.prior_alpha = float(prior_alpha)
        self.prior_beta = float(prior_beta)

    def params(self) -> dict:
        return {**super().params(), "prior_alpha": self.prior_alpha, "prior_beta": self.prior_beta}

    def _ab(self) -> tuple[np.ndarray, np.ndarray]:
        alpha = self.prior_alpha + self._successes
        beta = self.prior_beta + np.maximum(self._decisions - self._successes, 0.0)
        return alpha, beta

    def posterior_samples(self, rng: np.random.Generator, size: int) -> np.ndarray:
        alpha, beta = self._ab()
        return rng.beta(alpha, beta, size=(size, self.n_arms))

    def posterior_mean(self) -> np.ndarray:
        alpha, beta = self._ab()
        return alpha / (alpha + beta)

    def posterior_interval(self, level: float = 0.95) -> np.ndarray:
        alpha, beta = self._ab()
        tail = (1 - level) / 2
        return np.column_stack([st.beta.ppf(tail, alpha, beta), st.beta.ppf(1 - tail, alpha, beta)])


class NormalThompson(_PosteriorThompson):
    """Thompson sampling for numeric rewards (revenue, time on page) with a
    Normal-Inverse-Gamma model per arm.

    Outcomes y ~ N(mu, sigma^2) with (mu, sigma^2) ~ NIG(m0, kappa0, a0, b0). The prior is
    empirical-Bayes and weak: m0 is the pooled mean of all arms, b0 = a0 * pooled
    variance, kappa0 = ``prior_weight`` pseudo-observations, so the prior has the scale
    of the data (revenue in cents or euros alike) but the weight of one visitor.
    The marginal posterior of mu is Student-t with 2*a_n degrees of freedom,
    location m_n and scale sqrt(b_n / (a_n * kappa_n)).
    """

    name = "normal"

    def __init__(self, n_arms: int, prior_weight: float = 1.0, min_share: float = 0.0, draws: int = 4000) -> None:
        super().__init__(n_arms, min_share, draws)
        if prior_weight <= 0:
            raise PolicyConfigError("prior_weight must be positive")
        self.prior_weight = float(prior_weight)

    def params(self) -> dict:
        return {**super().params(), "prior_weight": self.prior_weight}

    def _t_parameters(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n_total = self._decisions.sum()
        pooled_mean = self._sum.sum() / n_total if n_total > 0 else 0.0
        pooled_var = (self._sumsq.sum() / n_total - pooled_mean**2) if n_total > 1 else 0.0
        pooled_var = pooled_var if pooled_var > 1e-12 else 1.0
        a0, kappa0, m0, b0 = 1.0, self.prior_weight, pooled_mean, pooled_var
        n = self._decisions
        mean = np.divide(self._sum, n, out=np.zeros_like(n), where=n > 0)
        ss = np.maximum(self._sumsq - n * mean**2, 0.0)  # sum of squared deviations
        kappa_n = kappa0 + n
        m_n = (kappa0 * m0 + n * mean) / kappa_n
        a_n = a0 + n / 2
        b_n = b0 + 0.5 * ss + kappa0 * n * (mean - m0) ** 2 / (2 * kappa_n)
        scale = np.sqrt(b_n / (a_n * kappa_n))
        return m_n, scale, 2 * a_n

    def posterior_samples(self, rng: np.random.Generator, size: int) -> np.ndarray:
        loc, scale, dof = self._t_parameters()
        return loc + scale * rng.standard_t(dof, size=(size, self.n_arms))

    def posterior_mean(self) -> np.ndarray:
        return self._t_parameters()[0]

    def posterior_interval(self, level: float = 0.95) -> np.ndarray:
        loc, scale, dof = self._t_parameters()
        tail = (1 - level) / 2
        half = st.t.ppf(1 - tail, dof) * scale
        return np.column_stack([loc - half, loc + half])
