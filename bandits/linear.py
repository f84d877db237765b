"""Contextual Thompson sampling with one Bayesian linear regression per arm.

Model. Arm a's expected reward for encoded context x (column 0 = intercept) is
x . theta_a; an outcome is y = x . theta_a + noise with noise ~ N(0, s2). The prior is

    theta_a ~ N(m0, s2 * (D)^-1),   D = diag(intercept_precision, prior_precision, ...),

i.e. D counts pseudo-observations: the intercept is worth ``intercept_precision``
visitors, every feature coefficient ``prior_precision`` visitors. With the
(possibly decayed) sufficient statistics of the arm, S_a = sum w x x' and
b_a = sum w x y, the posterior is Gaussian with

    A_a = D + S_a,   mu_a = A_a^-1 (D m0 + b_a),   Cov_a = s2 * A_a^-1.

s2 cancels out of the mean, so a refresh factorises A_a = L_a L_a' once (Cholesky)
and mu_a follows by two triangular products; s2 only scales the spread. By default s2
is the Bernoulli variance ybar (1 - ybar) of the pooled conversion rate (shrunk like a
Beta(1, 1) posterior mean), the binary-reward analogue of Beta-Bernoulli Thompson
sampling's posterior width; pass ``noise_variance`` for numeric rewards.

Prior mean. m0 is empirical Bayes: a ridge fit of all arms' statistics pooled
(``pool_prior=True``). A new experiment (no data) therefore has identical arms and
allocates uniformly; with data, an arm with few observations predicts what the
experiment as a whole does for that context (its base rate, and the context's main
effects such as "tablets convert less"), and needs data only for its own deviations.
That is the shared part of a hybrid model at the price of one extra factorisation;
with ``pool_prior=False`` m0 is (prior_mean or 0, 0, ..., 0).

Prior precision. With ``adaptive_prior=True`` (default) D is empirical Bayes too, per
feature: a feature whose effect does not differ between arms gets a very strong
prior (its arms share the pooled coefficient), one that changes which arm is best a
weak one (see :meth:`LinearThompson._adapted_precision`). Without this, a per-arm model
with d columns explores as if it had to learn d numbers per arm even when the context
is irrelevant: its posterior spread at x is ~sqrt(d) times the non-contextual one.
While arms have little data nothing is detected yet, so a new experiment behaves like
non-contextual Thompson sampling, and it becomes contextual where the data says so.

Decisions. For one context the arms' sampled values x . theta_a are independent
1-D normals N(x . mu_a, s2 * |L_a^-1 x|^2), so a decision draws ``draws`` values per
arm in one vectorised call, takes the share of draws each arm wins
(:func:`~bandits.base.win_probabilities`), applies the floor and samples the served
arm from that allocation: the logged propensity is exactly the probability with
which the arm was served. The inverse factors L_a^-1 (triangular, computed by LAPACK's
triangular inversion, well conditioned because A_a >= D) are cached per refresh.

Delayed rewards and storage. The service stores :class:`LinearArmState` per arm and
applies :func:`add_decision` when a variant is served (y = 0 so far) and
:func:`add_reward` when its conversion arrives, possibly hours later; the result is
identical to an immediate update. With a half-life h, an event at time t weighs
2^-((now - t)/h) at time ``now``; see :func:`decay_to`.
"""
from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
from scipy import linalg
from scipy.linalg import lapack

from .base import Decision, PolicyConfigError, apply_floor, decide, win_probabilities
from .encoding import ContextEncoder, EncodedContext

_MAGIC = b"LAS1"
_HEADER = struct.Struct("<4sI")  # magic, d


# -- sufficient statistics -------------------------------------------------------------
@dataclass(frozen=True)
class LinearArmState:
    """Decayed sufficient statistics of one arm, as plain arrays.

    ``precision_increment`` = sum_i w_i x_i x_i' (d, d), ``target`` = sum_i w_i x_i y_i
    (d,), ``decisions`` = sum_i w_i, where w_i = 2^-((reference_time - t_i)/h) is the
    weight of event i at ``reference_time`` (1 without decay). Arrays are read-only:
    the update functions return new states.
    """

    precision_increment: np.ndarray
    target: np.ndarray
    decisions: float = 0.0
    reference_time: float = 0.0

    def __post_init__(self) -> None:
        p = np.array(self.precision_increment, dtype=np.float64)
        b = np.array(self.target, dtype=np.float64)
        if b.ndim != 1 or p.shape != (b.size, b.size) or b.size < 1:
            raise PolicyConfigError(f"arm state shapes do not match: {p.shape} and {b.shape}")
        if not (np.isfinite(p).all() and np.isfinite(b).all()):
            raise PolicyConfigError("arm state contains NaN or infinity")
        if not (math.isfinite(self.decisions) and self.decisions >= 0 and math.isfinite(self.reference_time)):
            raise PolicyConfigError("arm state needs finite decisions >= 0 and a finite reference_time")
        # Outer products are exactly symmetric, so this is an identity for any state the
        # update functions built; it makes the packed (upper-triangle) storage lossless.
        p = 0.5 * (p + p.T)
        p.flags.writeable = False
        b.flags.writeable = False
        object.__setattr__(self, "precision_increment", p)
        object.__setattr__(self, "target", b)
        object.__setattr__(self, "decisions", float(self.decisions))
        object.__setattr__(self, "reference_time", float(self.reference_time))

    @property
    def dim(self) -> int:
        return self.target.size

    @classmethod
    def empty(cls, dim: int, reference_time: float = 0.0) -> "LinearArmState":
        return cls(np.zeros((dim, dim)), np.zeros(dim), 0.0, reference_time)

    def to_bytes(self) -> bytes:
        """Little-endian: b"LAS1", uint32 d, then float64 decisions, reference_time,
        target (d) and the upper triangle of precision_increment row by row (d(d+1)/2).
        """
        upper = self.precision_increment[np.triu_indices(self.dim)]
        body = np.concatenate([[self.decisions, self.reference_time], self.target, upper]).astype("<f8")
        return _HEADER.pack(_MAGIC, self.dim) + body.tobytes()

    @classmethod
    def from_bytes(cls, blob: bytes) -> "LinearArmState":
        if len(blob) < _HEADER.size:
            raise PolicyConfigError("arm state blob is truncated")
        magic, dim = _HEADER.unpack_from(blob)
        expected = _HEADER.size + 8 * (2 + dim + dim * (dim + 1) // 2)
        if magic != _MAGIC or len(blob) != expected or dim < 1:
            raise PolicyConfigError("not a LinearArmState blob (bad magic or length)")
        body = np.frombuffer(blob, dtype="<f8", offset=_HEADER.size).astype(np.float64)
        decisions, reference_time = float(body[0]), float(body[1])
        target = body[2 : 2 + dim]
        p = np.zeros((dim, dim))
        p[np.triu_indices(dim)] = body[2 + dim :]
        p = p + np.triu(p, 1).T
        return cls(p, target.copy(), decisions, reference_time)

    def to_dict(self) -> dict:
        return {
            "precision_increment": self.precision_increment.tolist(),
            "target": self.target.tolist(),
            "decisions": self.decisions,
            "reference_time": self.reference_time,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "LinearArmState":
        return cls(
            np.asarray(data["precision_increment"], dtype=float),
            np.asarray(data["target"], dtype=float),
            float(data["decisions"]),
            float(data["reference_time"]),
        )


def _decay_factor(elapsed: float, half_life: float | None) -> float:
    """2^-(elapsed / h): the weight left after ``elapsed`` seconds (1 without decay)."""
    if half_life is None or elapsed <= 0:
        return 1.0
    return math.exp(-math.log(2.0) * elapsed / half_life)


def decay_to(state: LinearArmState, t: float, half_life: float | None) -> LinearArmState:
    """The same statistics expressed at a later time t.

    Each stored weight w_i = 2^-((r - t_i)/h) becomes 2^-((t - t_i)/h) = w_i * 2^-((t - r)/h),
    so the whole state is multiplied by one factor and r moves to t. The reference time
    only moves forward: every factor is <= 1, so nothing can overflow, however long
    the experiment runs. Without a half-life only the reference time moves.
    """
    if t <= state.reference_time:
        return state
    factor = _decay_factor(t - state.reference_time, half_life)
    return LinearArmState(
        state.precision_increment * factor, state.target * factor, state.decisions * factor, float(t)
    )


def _vector(x: np.ndarray, dim: int) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.shape != (dim,) or not np.isfinite(x).all():
        raise PolicyConfigError(f"context must be a finite vector of shape ({dim},), got shape {x.shape}")
    return x


def add_decision(state: LinearArmState, x: np.ndarray, t: float, half_life: float | None = None) -> LinearArmState:
    """Count one decision of this arm for context x at time t (reward 0 until one arrives).

    The state first moves to max(t, reference_time); the event then enters with weight
    2^-((reference_time - t)/h), which is 1 unless it is older than the state.
    """
    x = _vector(x, state.dim)
    state = decay_to(state, t, half_life)
    w = _decay_factor(state.reference_time - t, half_life)
    return LinearArmState(
        state.precision_increment + w * np.outer(x, x),
        state.target,
        state.decisions + w,
        state.reference_time,
    )


def add_reward(
    state: LinearArmState,
    x: np.ndarray,
    value: float,
    decided_at: float,
    t: float,
    half_life: float | None = None,
) -> LinearArmState:
    """Add a reward that arrived at time t for a decision made at ``decided_at``.

    The decision's x x' entered the state with the weight of time ``decided_at``; its
    reward enters ``target`` with that same weight, so a delayed reward leaves exactly
    the statistics an immediate one would have (up to rounding). t only advances the
    reference time.
    """
    x = _vector(x, state.dim)
    if not math.isfinite(value):
        raise PolicyConfigError(f"reward must be finite, got {value!r}")
    state = decay_to(state, max(t, decided_at), half_life)
    w = _decay_factor(state.reference_time - decided_at, half_life)
    return LinearArmState(
        state.precision_increment, state.target + (w * value) * x, state.decisions, state.reference_time
    )


# -- the policy --------------------------------------------------------------------------
@dataclass(frozen=True)
class ContextualDecision(Decision):
    """A :class:`Decision` with the draws it came from.

    ``scores`` is the posterior-mean prediction per arm (the explanation), ``samples``
    the (draws, arms) sampled values x . theta_a the propensities were computed from,
    ``predictive_sd`` the posterior standard deviation of x . theta_a per arm.
    """

    samples: np.ndarray | None = field(default=None, repr=False)
    predictive_sd: np.ndarray | None = field(default=None, repr=False)


def _positive(value: float, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
        raise PolicyConfigError(f"{what} must be a positive finite number, got {value!r}")
    return float(value)


class LinearThompson:
    """Linear Thompson sampling, one Bayesian ridge regression per arm (see module doc).

    ``n_features`` is the encoded width d, intercept column included
    (``ContextEncoder.width``). Column 0 is assumed to be the constant 1.
    """

    name = "linear_thompson"

    def __init__(
        self,
        n_arms: int,
        n_features: int,
        prior_precision: float = 4.0,
        intercept_precision: float = 1.0,
        noise_variance: float | None = None,
        prior_mean: float | None = None,
        pool_prior: bool = True,
        adaptive_prior: bool = True,
        max_precision: float = 1e6,
        min_share: float = 0.0,
        draws: int = 256,
        half_life_s: float | None = None,
    ) -> None:
        if isinstance(n_arms, bool) or not isinstance(n_arms, int) or n_arms < 1:
            raise PolicyConfigError("a policy needs at least one arm")
        if isinstance(n_features, bool) or not isinstance(n_features, int) or n_features < 1:
            raise PolicyConfigError("n_features must be a positive integer (the encoded width, intercept included)")
        if not 0.0 <= min_share <= 1.0 / n_arms:
            raise PolicyConfigError(f"min_share must be in [0, 1/{n_arms}], got {min_share}")
        if isinstance(draws, bool) or not isinstance(draws, int) or draws < 100:
            raise PolicyConfigError("draws must be an integer of at least 100 for a usable propensity estimate")
        self.n_arms = n_arms
        self.n_features = n_features
        self.prior_precision = _positive(prior_precision, "prior_precision")
        self.intercept_precision = _positive(intercept_precision, "intercept_precision")
        self.noise_variance = None if noise_variance is None else _positive(noise_variance, "noise_variance")
        if prior_mean is not None and not (isinstance(prior_mean, (int, float)) and math.isfinite(prior_mean)):
            raise PolicyConfigError(f"prior_mean must be a finite number or None, got {prior_mean!r}")
        self.prior_mean = None if prior_mean is None else float(prior_mean)
        self.pool_prior = bool(pool_prior)
        self.adaptive_prior = bool(adaptive_prior)
        self.max_precision = _positive(max_precision, "max_precision")
        if self.max_precision < self.prior_precision:
            raise PolicyConfigError("max_precision must be at least prior_precision")
        self.min_share = float(min_share)
        self.draws = draws
        self.half_life_s = None if half_life_s is None else _positive(half_life_s, "half_life_s")
        self._prior_diag = np.full(n_features, self.prior_precision)
        self._prior_diag[0] = self.intercept_precision
        self.fit([LinearArmState.empty(n_features) for _ in range(n_arms)], now=0.0)

    def params(self) -> dict:
        return {
            "n_features": self.n_features,
            "prior_precision": self.prior_precision,
            "intercept_precision": self.intercept_precision,
            "noise_variance": self.noise_variance,
            "prior_mean": self.prior_mean,
            "pool_prior": self.pool_prior,
            "adaptive_prior": self.adaptive_prior,
            "max_precision": self.max_precision,
            "min_share": self.min_share,
            "draws": self.draws,
            "half_life_s": self.half_life_s,
        }

    # -- refresh -------------------------------------------------------------------
    def fit(self, arm_states: Sequence[LinearArmState], now: float) -> "LinearThompson":
        """Replace the statistics (what the service does on each refresh) and factorise.

        Every state is decayed to ``now`` (a state newer than ``now`` stays as it is).
        """
        if len(arm_states) != self.n_arms:
            raise PolicyConfigError(f"expected statistics for {self.n_arms} arms, got {len(arm_states)}")
        for state in arm_states:
            if state.dim != self.n_features:
                raise PolicyConfigError(f"arm state has dimension {state.dim}, the policy {self.n_features}")
        self._now = float(now)
        self._states = [decay_to(s, self._now, self.half_life_s) for s in arm_states]
        self._refresh()
        return self

    def _factorise(self, precisions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(L, L^-1) for a stack of posterior precisions A = L L' of shape (..., d, d).

        A = D + S >= D > 0 in exact arithmetic; rounding in S can only matter when S is
        astronomically large, and then a relative jitter on the diagonal restores it.
        L^-1 comes from LAPACK's triangular inversion (dtrtri); it is well conditioned
        because cond(L)^2 = cond(A) <= (max D + |S|) / min D.
        """
        stack = precisions.reshape(-1, self.n_features, self.n_features)
        try:
            lowers = np.linalg.cholesky(stack)
        except np.linalg.LinAlgError:
            lowers = np.stack([self._jittered_cholesky(a) for a in stack])
        inverses = np.empty_like(lowers)
        for i, lower in enumerate(lowers):
            inverses[i], info = lapack.dtrtri(lower, lower=1)
            if info != 0:  # pragma: no cover - a Cholesky factor has a positive diagonal
                raise PolicyConfigError("singular Cholesky factor")
        return lowers.reshape(precisions.shape), inverses.reshape(precisions.shape)

    def _jittered_cholesky(self, precision: np.ndarray) -> np.ndarray:
        jitter = 1e-12 * max(float(np.trace(precision)) / self.n_features, 1.0)
        for _ in range(8):
            try:
                return np.linalg.cholesky(precision + jitter * np.eye(self.n_features))
            except np.linalg.LinAlgError:
                jitter *= 100.0
        raise PolicyConfigError("arm statistics are not positive semi-definite")  # pragma: no cover

    def _pooled_prior_mean(self, s: np.ndarray, b: np.ndarray) -> np.ndarray:
        """m0: the ridge fit of all arms pooled, or the fixed (prior_mean, 0, ...)."""
        m0 = np.zeros(self.n_features)
        if self.prior_mean is not None:
            m0[0] = self.prior_mean
        if not self.pool_prior:
            return m0
        lower, _ = self._factorise(s.sum(axis=0) + np.diag(self._prior_diag))
        return linalg.cho_solve((lower, True), self._prior_diag * m0 + b.sum(axis=0), check_finite=False)

    def _noise(self, s: np.ndarray, b: np.ndarray) -> float:
        """s2: the fixed ``noise_variance``, else the Bernoulli variance of the pooled rate.

        ybar = (sum y + 1) / (n + 2), the Beta(1, 1) posterior mean, so that an experiment
        with no conversion yet still explores (s2 = 0.25 with no data).
        """
        if self.noise_variance is not None:
            return self.noise_variance
        successes = float(b[:, 0].sum())  # x_0 = 1: sum w y
        n = float(s[:, 0, 0].sum())  # sum w
        ybar = min(max((successes + 1.0) / (n + 2.0), 0.0), 1.0)
        return max(ybar * (1.0 - ybar), 1e-6)

    def _posterior(self, s: np.ndarray, b: np.ndarray, prior_diag: np.ndarray, m0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(means (K, d), inverse factors (K, d, d)) of every arm under the prior diag(prior_diag).

        mu_a = A_a^-1 (D m0 + b_a) = R_a' R_a (D m0 + b_a) with R_a = L_a^-1, batched.
        """
        inv_factors = self._factorise(s + np.diag(prior_diag))[1]
        half = np.einsum("kij,kj->ki", inv_factors, prior_diag * m0 + b)
        return np.einsum("kji,kj->ki", inv_factors, half), inv_factors

    def _adapted_precision(self, s: np.ndarray, b: np.ndarray, s2: float) -> np.ndarray:
        """Per-feature prior precision from how much the arms really differ (empirical Bayes).

        Model: theta_aj = m0_j + delta_aj with delta_aj ~ N(0, tau_j^2). tau_j is
        estimated from each arm's *marginal* slope of y on x_j (simple regression with
        an intercept, read off the sufficient statistics: no collinearity with the
        intercept or the other levels of a one-hot block),

            t_aj = (sum x_j y - sum x_j sum y / n) / (sum x_j^2 - (sum x_j)^2 / n),
            v_aj = s2 / (sum x_j^2 - (sum x_j)^2 / n),

        by the DerSimonian-Laird moment estimator with weights w_aj = 1 / v_aj:

            Q_j = sum_a w_aj (t_aj - tbar_j)^2,  tbar_j = sum_a w_aj t_aj / sum_a w_aj,
            tau_j^2 = max(0, (Q_j - (K_j - 1)) / (sum_a w_aj - sum_a w_aj^2 / sum_a w_aj)),

        over the K_j arms that have seen x_j vary. A feature whose effect is the same
        for every arm (or none) has Q_j ~ K_j - 1, so tau_j ~ 0: its prior precision
        s2 / tau_j^2 becomes large, the arms share its pooled coefficient and explore
        only their intercepts, like non-contextual Thompson sampling. A feature that
        changes which arm is best gets a large tau_j and a weak prior. Clipped to
        [prior_precision, max_precision]; the intercept keeps ``intercept_precision``.
        """
        tiny = 1e-300
        n = np.maximum(s[:, 0, 0][:, None], tiny)  # sum w per arm
        sum_x = s[:, 0, 1:]
        sum_xx = np.diagonal(s, axis1=1, axis2=2)[:, 1:]
        sxx = sum_xx - sum_x * sum_x / n  # centred sum of squares of x_j within the arm
        sxy = b[:, 1:] - sum_x * b[:, :1] / n  # centred cross-product with y
        varies = sxx > 1e-9 * sum_xx + tiny
        weights = np.where(varies, sxx, 0.0) / s2
        slopes = np.where(varies, sxy / np.maximum(sxx, tiny), 0.0)
        total = weights.sum(axis=0)
        safe_total = np.maximum(total, tiny)
        centre = (weights * slopes).sum(axis=0) / safe_total
        q = (weights * (slopes - centre) ** 2).sum(axis=0)
        dof = np.maximum(varies.sum(axis=0) - 1, 0)
        denominator = total - (weights * weights).sum(axis=0) / safe_total
        tau2 = np.where(denominator > tiny, np.maximum(q - dof, 0.0) / np.maximum(denominator, tiny), 0.0)
        # s2 / tau2, with tau2 = 0 mapping to max_precision
        precision = s2 / np.maximum(tau2, s2 / self.max_precision)
        return np.concatenate([[self.intercept_precision], np.clip(precision, self.prior_precision, self.max_precision)])

    def _refresh(self) -> None:
        """Prior, posterior means and cached inverse factors from the current states."""
        s = np.stack([state.precision_increment for state in self._states])
        b = np.stack([state.target for state in self._states])
        m0 = self._pooled_prior_mean(s, b)
        s2 = self._noise(s, b)
        prior_diag = self._prior_diag
        if self.adaptive_prior and self.n_arms > 1:
            prior_diag = self._adapted_precision(s, b, s2)
        self._means, self._inv_factors = self._posterior(s, b, prior_diag, m0)
        self._noise_variance = s2
        self._prior_mean_vector = m0
        self._effective_prior = prior_diag

    # -- in-process learning ---------------------------------------------------------
    def update(self, arm: int, x: np.ndarray, reward: float, t: float = 0.0) -> None:
        """One decision of ``arm`` at time t with its reward (add_decision + add_reward)."""
        if not 0 <= arm < self.n_arms:
            raise PolicyConfigError(f"arm {arm} out of range for {self.n_arms} arms")
        t = max(float(t), self._now)
        state = add_decision(self._states[arm], x, t, self.half_life_s)
        state = add_reward(state, x, float(reward), t, t, self.half_life_s)
        if t > self._now:
            self._now = t
            if self.half_life_s is not None:  # every arm's weights at the same reference time
                self._states = [decay_to(s, t, self.half_life_s) for s in self._states]
        self._states[arm] = state
        self._refresh()

    def effective_prior_precision(self) -> np.ndarray:
        """The per-column prior precision (pseudo-observations) of the last refresh."""
        return self._effective_prior.copy()

    def arm_states(self) -> list[LinearArmState]:
        return list(self._states)

    # -- decisions -------------------------------------------------------------------
    def predict(self, context: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and standard deviation of x . theta_a for every arm."""
        x = _vector(context, self.n_features)
        mean = self._means @ x
        # |L_a^-1 x|^2 = x' A_a^-1 x, a sum of squares: never negative.
        projected = self._inv_factors @ x
        sd = np.sqrt(self._noise_variance * np.einsum("ij,ij->i", projected, projected))
        return mean, sd

    def allocation(self, rng: np.random.Generator, context: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(probabilities with the floor, posterior means, predictive sds, draws) for a context."""
        mean, sd = self.predict(context)
        samples = mean + sd * rng.standard_normal((self.draws, self.n_arms))
        probabilities = apply_floor(win_probabilities(samples), self.min_share)
        return probabilities, mean, sd, samples

    def select(self, rng: np.random.Generator, context: np.ndarray) -> ContextualDecision:
        probabilities, mean, sd, samples = self.allocation(rng, context)
        chosen = decide(probabilities, rng, scores=mean)
        return ContextualDecision(
            arm=chosen.arm,
            propensity=chosen.propensity,
            probabilities=probabilities,
            scores=mean,
            samples=samples,
            predictive_sd=sd,
        )

    def posterior_means(self) -> np.ndarray:
        """(arms, d) posterior mean coefficients, e.g. to explain what the model learnt."""
        return self._means.copy()

    # -- plain-data state --------------------------------------------------------------
    def state(self) -> dict:
        return {
            "policy": self.name,
            "n_arms": self.n_arms,
            "params": self.params(),
            "now": self._now,
            "arms": [s.to_dict() for s in self._states],
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> "LinearThompson":
        policy = cls(n_arms=int(state["n_arms"]), **state["params"])
        return policy.fit([LinearArmState.from_dict(a) for a in state["arms"]], now=float(state["now"]))


#: Contextual policies by the name an experiment definition gives (``"policy"``).
CONTEXTUAL_POLICIES: dict[str, type[LinearThompson]] = {LinearThompson.name: LinearThompson}


# -- convenience: encoder + policy from an experiment definition -------------------------
@dataclass(frozen=True)
class ContextualSelection:
    """The variant served for a raw context, with the decision and the encoding."""

    variant: str
    decision: ContextualDecision
    encoded: EncodedContext


def _variant_names(variants: Any) -> list[str]:
    if not isinstance(variants, (list, tuple)) or not variants:
        raise PolicyConfigError("an experiment needs a non-empty list of variants")
    names = []
    for variant in variants:
        name = variant.get("name", variant.get("key")) if isinstance(variant, Mapping) else variant
        if not isinstance(name, str) or not name:
            raise PolicyConfigError(f"variant {variant!r} needs a non-empty name")
        names.append(name)
    if len(set(names)) != len(names):
        raise PolicyConfigError("variant names must be unique")
    return names


class ContextualPolicy:
    """Encoder + contextual policy for one experiment, usable without the service.

    ``from_definition({"variants": ["a", "b"], "context": [...schema...],
    "min_share": 0.05, "decay": {"half_life_s": 604800}})``; an optional
    ``"policy"`` names an entry of :data:`CONTEXTUAL_POLICIES` and ``"params"`` passes
    further hyperparameters to it.
    """

    def __init__(self, variants: Sequence[str], encoder: ContextEncoder, policy: LinearThompson) -> None:
        if len(variants) != policy.n_arms or encoder.width != policy.n_features:
            raise PolicyConfigError("variants, encoder and policy do not agree on arms/width")
        self.variants = list(variants)
        self.encoder = encoder
        self.policy = policy

    @classmethod
    def from_definition(cls, definition: Mapping[str, Any]) -> "ContextualPolicy":
        if not isinstance(definition, Mapping):
            raise PolicyConfigError("an experiment definition is an object")
        variants = _variant_names(definition.get("variants"))
        encoder = ContextEncoder.from_schema(definition.get("context", []))
        policy_name = definition.get("policy", LinearThompson.name)
        policy_cls = CONTEXTUAL_POLICIES.get(policy_name) if isinstance(policy_name, str) else None
        if policy_cls is None:
            raise PolicyConfigError(f"unknown contextual policy {policy_name!r} (known: {', '.join(CONTEXTUAL_POLICIES)})")
        params = dict(definition.get("params") or {})
        if "min_share" in definition:
            params["min_share"] = definition["min_share"]
        decay = definition.get("decay") or {}
        if not isinstance(decay, Mapping):
            raise PolicyConfigError("'decay' must be an object such as {\"half_life_s\": 604800}")
        if decay.get("half_life_s") is not None:
            params["half_life_s"] = decay["half_life_s"]
        try:
            policy = policy_cls(len(variants), encoder.width, **params)
        except TypeError as exc:
            raise PolicyConfigError(f"bad policy parameters: {exc}") from None
        return cls(variants, encoder, policy)

    def select(self, context: Mapping[str, Any] | None, rng: np.random.Generator) -> ContextualSelection:
        encoded = self.encoder.encode(context)
        decision = self.policy.select(rng, encoded.vector)
        return ContextualSelection(self.variants[decision.arm], decision, encoded)

    def update(self, variant: str | int, context: Mapping[str, Any] | None, reward: float, t: float = 0.0) -> None:
        arm = variant if isinstance(variant, int) else self.variants.index(variant)
        self.policy.update(arm, self.encoder.encode(context).vector, reward, t)

    def state(self) -> dict:
        return {"variants": self.variants, "context": self.encoder.schema(), "policy": self.policy.state()}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> "ContextualPolicy":
        encoder = ContextEncoder.from_schema(state["context"])
        policy_state = state["policy"]
        policy = CONTEXTUAL_POLICIES[policy_state["policy"]].from_state(policy_state)
        return cls(list(state["variants"]), encoder, policy)


def remove_decision(
    state: LinearArmState,
    x: np.ndarray,
    decided_at: float,
    reward_total: float,
    half_life: float | None = None,
) -> LinearArmState:
    """Take one decision (and its rewards) back out of the statistics: erasure of a visitor.

    The decision entered with the weight w = 2^-((r - t_d)/h) it has at the state's
    reference time r, so subtracting w x x' from the precision and w x y from the target
    leaves exactly the statistics that never saw it (up to rounding).
    """
    x = _vector(x, state.dim)
    w = _decay_factor(state.reference_time - decided_at, half_life)
    return LinearArmState(
        state.precision_increment - w * np.outer(x, x),
        state.target - (w * reward_total) * x,
        max(state.decisions - w, 0.0),
        state.reference_time,
    )
