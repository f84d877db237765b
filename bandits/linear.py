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

Prior precision. With ``adaptive_prior=True`` (default) D is empirical Bayes too: a
feature whose effect does not differ between arms gets a very strong prior (its arms
share the pooled coefficient), one that changes which arm is best a weak one (see
:meth:`LinearThompson._adapted_precision`). ``column_groups`` (the encoder's
``column_groups()``) estimates one precision per feature block instead of per column,
and a block is freed only on evidence beyond chance (``evidence_z``). Without this, a
per-arm model with d columns explores as if it had to learn d numbers per arm even
when the context is irrelevant. Cross columns (after ``main_columns``) are tested on
their slope *given* the main effects, so a cross of an important feature is not freed
just because its parent is. A new experiment therefore behaves like non-contextual
Thompson sampling and becomes contextual where the data says so.

Exploration. The sampled spread is ``exploration`` times the posterior's (0.5 by
default: measured in benchmarks/bandits_bench.py; the Bernoulli s2 and the d per-arm
coefficients make the unshrunk posterior explore more than the traffic needs).

Decisions. For one context the arms' sampled values x . theta_a are independent
1-D normals N(x . mu_a, s2 x' A_a^-1 x). A fit stores one matrix stacking the means
and the covariances C_a = s2 A_a^-1, so mean and variance for x are two small BLAS
products, and a fixed (draws, K) matrix of standard normals Z seeded by a digest of
the statistics (:meth:`LinearThompson._standard_draws`). The allocation for x is the
share of rows of mean + sd * Z each arm wins, with the floor: a deterministic function
of the fitted model and x (every worker that fitted the same statistics allocates
identically), memoised per fit; the served arm is drawn from it with one uniform, so
the logged propensity is exactly the probability with which the arm was served.

Delayed rewards and storage: see :mod:`bandits.arm_state` (decisions count at once,
rewards however late, and the pending-reward correction ``reward_delay_s``). Absurd
statistics (e.g. rewards of 1e308) never produce a non-finite output: the fit falls
back to the prior and says so in :attr:`LinearThompson.reason`.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
from scipy import linalg, special
from scipy.linalg import lapack

from .arm_state import (  # noqa: F401  (re-exported: the service imports them from here)
    LinearArmState,
    _vector,
    add_decision,
    add_reward,
    decay_to,
    remove_decision,
)
from .base import Decision, PolicyConfigError
from .encoding import ContextEncoder, EncodedContext
from .schema import normalise_schema

#: Largest magnitude a fitted coefficient or inverse-factor entry may have. Contexts are
#: bounded (|x_j| <= 1, d <= 256), so with this bound x . mu and |L^-1 x|^2 stay far from
#: overflow. A fit that exceeds it (absurd stored statistics) falls back to the prior.
_MAX_FITTED = 1e100

#: Reason codes of :attr:`LinearThompson.reason` (None when the fit used the data).
REASON_NON_FINITE_FIT = "non_finite_fit"

#: Contexts whose allocation a fit memoises (a pure function of fit and context).
_CACHE_SIZE = 4096

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
        main_columns: int | None = None,
        column_groups: Sequence[int] | None = None,
        evidence_z: float = 1.0,
        exploration: float = 0.5,
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
        if main_columns is None:
            main_columns = n_features
        if isinstance(main_columns, bool) or not isinstance(main_columns, int) or not 1 <= main_columns <= n_features:
            raise PolicyConfigError(f"main_columns must be an integer in [1, {n_features}] (ContextEncoder.main_width)")
        self.main_columns = main_columns
        self._groups = None
        if column_groups is not None:
            groups = np.asarray(column_groups)
            if groups.shape != (n_features,) or not np.issubdtype(groups.dtype, np.integer):
                raise PolicyConfigError(f"column_groups must be {n_features} integers (a block id per column)")
            labels, inverse = np.unique(groups[1:], return_inverse=True)
            self._groups = (labels.size, inverse)
        self.column_groups = None if column_groups is None else [int(g) for g in column_groups]
        if isinstance(evidence_z, bool) or not isinstance(evidence_z, (int, float)) or not 0 <= evidence_z <= 10:
            raise PolicyConfigError(f"evidence_z must be a number in [0, 10], got {evidence_z!r}")
        self.evidence_z = float(evidence_z)
        self.exploration = _positive(exploration, "exploration")
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
            "main_columns": self.main_columns,
            "column_groups": self.column_groups,
            "evidence_z": self.evidence_z,
            "exploration": self.exploration,
        }

    # -- refresh -------------------------------------------------------------------
    def fit(self, arm_states: Sequence[LinearArmState], now: float) -> "LinearThompson":
        """Replace the statistics (what the service does on each refresh) and factorise.

        Every state is decayed to ``now`` (a state newer than ``now`` stays as it is).
        The fitted model is a pure function of the decayed statistics, including the
        normal draws its allocations use (see :meth:`allocation_for`): two workers that
        fit the same stored states allocate identically.
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
        if self.main_columns < self.n_features:
            sxx, sxy = self._partial_cross_products(s, b, sxx, sxy)
        varies = sxx > 1e-9 * sum_xx + tiny
        weights = np.where(varies, sxx, 0.0) / s2
        slopes = np.where(varies, sxy / np.maximum(sxx, tiny), 0.0)
        total = weights.sum(axis=0)
        safe_total = np.maximum(total, tiny)
        centre = (weights * slopes).sum(axis=0) / safe_total
        q = (weights * (slopes - centre) ** 2).sum(axis=0)
        dof = np.maximum(varies.sum(axis=0) - 1, 0).astype(float)
        denominator = total - (weights * weights).sum(axis=0) / safe_total
        if self._groups is not None:  # one tau^2 per feature block: sum the moments over the block
            groups, inverse = self._groups
            q, dof, denominator = (np.bincount(inverse, weights=v, minlength=groups)[inverse] for v in (q, dof, denominator))
        # Q ~ chi2(dof) when the arms do not differ: Q - dof alone exceeds 0 about half the
        # time, so every tested block would be freed by chance every other refit. The
        # excess over dof + z sqrt(2 dof) (a one-sided test at about 16% for z = 1) is
        # what counts as evidence.
        excess = np.maximum(q - dof - self.evidence_z * np.sqrt(2.0 * dof), 0.0)
        tau2 = np.where(denominator > tiny, excess / np.maximum(denominator, tiny), 0.0)
        # s2 / tau2, with tau2 = 0 mapping to max_precision
        precision = s2 / np.maximum(tau2, s2 / self.max_precision)
        return np.concatenate([[self.intercept_precision], np.clip(precision, self.prior_precision, self.max_precision)])

    def _partial_cross_products(self, s: np.ndarray, b: np.ndarray, sxx: np.ndarray, sxy: np.ndarray):
        """Cross columns: slopes *given the main effects* instead of marginal slopes.

        A cross column such as device=mobile*hour:sin is correlated with its parents
        (device=mobile), so its marginal slope differs between arms whenever the
        device's main effect does, and the marginal test would free every cross of a
        feature that matters. For a cross column j the slope of y on x_j after the
        main-effect columns M (intercept included) is, from the sufficient statistics,

            t_aj = (b_j - S_jM beta_M) / (S_jj - S_jM S_MM^-1 S_Mj),   beta_M = S_MM^-1 b_M,

        with the prior's ridge on S_MM (so that an arm with no data has no slope). Arms then differ in t_aj only through a real
        interaction, and the cross keeps a strong prior when there is none.
        """
        m, tiny = self.main_columns, 1e-300
        s_mm = s[:, :m, :m] + np.diag(self._prior_diag[:m])
        s_mc = s[:, :m, m:]
        solved = np.linalg.solve(s_mm, np.concatenate([b[:, :m, None], s_mc], axis=2))
        beta_m, projection = solved[:, :, 0], solved[:, :, 1:]  # (K, m), (K, m, d - m)
        residual_xy = b[:, m:] - np.einsum("kmc,km->kc", s_mc, beta_m)
        residual_xx = np.diagonal(s, axis1=1, axis2=2)[:, m:] - np.einsum("kmc,kmc->kc", s_mc, projection)
        sxx, sxy = sxx.copy(), sxy.copy()
        sxx[:, m - 1:] = np.maximum(residual_xx, tiny)  # columns 1.. of sxx: index m-1 is column m
        sxy[:, m - 1:] = residual_xy
        return sxx, sxy

    def _refresh(self) -> None:
        """Prior, posterior means, cached factors and the allocation draws from the states."""
        # exposure = precision_increment - pending: decisions whose rewards may still come
        # count only with the share that had time to arrive (see bandits.arm_state).
        s = np.stack([state.exposure() for state in self._states])
        b = np.stack([state.target for state in self._states])
        self.reason = None
        with np.errstate(all="ignore"):
            fitted = self._fit_arrays(s, b)
        if fitted is None:  # absurd statistics (e.g. rewards of 1e308): decide from the prior
            self.reason = REASON_NON_FINITE_FIT
            s, b = np.zeros_like(s), np.zeros_like(b)
            fitted = self._fit_arrays(s, b)
        self._means, self._inv_factors, self._noise_variance, self._prior_mean_vector, self._effective_prior = fitted
        self._fit_statistics = (s, b)
        self._decision_arrays: tuple[np.ndarray, np.ndarray] | None = None  # built at the first decision
        self._floor = (self.min_share, 1.0 - self.n_arms * self.min_share)
        self._cache: dict[bytes, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def _decision_matrices(self) -> tuple[np.ndarray, np.ndarray]:
        """(stacked means and covariances, standard draws) of this fit, built once.

        One matrix for a decision: rows 0..K-1 give x . mu_a, the next K*d rows C_a x with
        C_a = s2 A_a^-1 = s2 R_a' R_a the posterior covariance, so that x' C_a x (the
        predictive variance) is one more small product. Lazy, so that in-process
        learning (:meth:`update` refits after every event) pays for it only when deciding.
        """
        if self._decision_arrays is None:
            k, d = self.n_arms, self.n_features
            spread = self._noise_variance * self.exploration**2  # posterior inflation (> 1) or shrinkage (< 1)
            covariances = spread * np.einsum("kji,kjl->kil", self._inv_factors, self._inv_factors)
            stacked = np.ascontiguousarray(np.vstack([self._means, covariances.reshape(k * d, d)]))
            self._decision_arrays = (stacked, self._standard_draws(*self._fit_statistics))
        return self._decision_arrays

    def _fit_arrays(self, s: np.ndarray, b: np.ndarray) -> tuple | None:
        """(means, inverse factors, s2, m0, prior diag), or None when anything is non-finite."""
        try:
            m0 = self._pooled_prior_mean(s, b)
            s2 = self._noise(s, b)
            prior_diag = self._prior_diag
            if self.adaptive_prior and self.n_arms > 1:
                prior_diag = self._adapted_precision(s, b, s2)
            means, inv_factors = self._posterior(s, b, prior_diag, m0)
        except (np.linalg.LinAlgError, PolicyConfigError, ValueError, FloatingPointError):
            return None
        arrays = (means, inv_factors, m0, prior_diag, np.array([s2]))
        if not all(np.isfinite(a).all() and np.abs(a).max(initial=0.0) <= _MAX_FITTED for a in arrays) or s2 <= 0:
            return None
        return means, inv_factors, float(s2), m0, prior_diag

    def _standard_draws(self, s: np.ndarray, b: np.ndarray) -> np.ndarray:
        """(n, K) standard normals for the win probabilities, seeded by a digest of the statistics.

        The same statistics give the same draws in every worker and process, so the
        allocation is a deterministic function of (model, context). Construction
        ("rotation sampling"): n = ``draws`` rounded up to a multiple of K, one normal
        quantile u_j from each of n equal-probability strata in a random order, and
        Z[i, a] = u[(i + a n / K) mod n]. Every column holds all n strata (stratified
        marginals: about 40% less Monte-Carlo error than independent draws at equal
        cost), and arm a's column is arm 0's shifted by a n / K rows, so arms with equal
        posteriors win exactly n / K rows each: a new experiment allocates exactly
        uniformly.
        """
        digest = hashlib.blake2b(s.tobytes() + b.tobytes(), digest_size=16).digest()
        rng = np.random.default_rng(int.from_bytes(digest, "little"))
        k = self.n_arms
        n = k * -(-self.draws // k)
        u = special.ndtri((rng.permutation(n) + rng.random(n)) / n)
        rows = (np.arange(n)[:, None] + (n // k) * np.arange(k)[None, :]) % n
        return np.ascontiguousarray(u[rows])

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
        return self._predict(_vector(context, self.n_features))

    def _predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        projected = self._decision_matrices()[0] @ x  # one BLAS call for the means and every C_a x
        k = self.n_arms
        # x' C_a x >= 0 in exact arithmetic (C_a is positive definite); clip the rounding.
        variance = projected[k:].reshape(k, self.n_features) @ x
        return projected[:k], np.sqrt(np.maximum(variance, 0.0))

    def allocation_for(self, context: np.ndarray) -> np.ndarray:
        """P(serve arm a | context) under the fitted model, floor included (sums to 1).

        Thompson sampling's probability that arm a has the highest sampled value, by
        Monte Carlo over the model's fixed draws: mean + sd * Z for the (draws, K)
        standard normals Z of this fit. A deterministic function of the fitted model
        and the context; :meth:`select` samples the served arm from exactly this vector,
        so the logged propensity is exact.
        """
        return self._allocate(_vector(context, self.n_features))[0]

    def _allocate(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        mean, sd = self._predict(x)
        samples = self._decision_matrices()[1] * sd
        samples += mean
        low, scale = self._floor
        wins = np.bincount(samples.argmax(axis=1), minlength=self.n_arms) * (scale / samples.shape[0]) + low
        return wins, mean, sd, samples

    def _cached_allocation(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(allocation, means, sds) for x, memoised per fit: contexts repeat (device x hour...).

        The allocation is a pure function of the fit and x, so the cache changes no
        decision; it is cleared on every refit and bounded in size.
        """
        key = x.tobytes()
        hit = self._cache.get(key)
        if hit is None:
            wins, mean, sd, _ = self._allocate(x)
            hit = (wins, mean, sd)
            if len(self._cache) < _CACHE_SIZE:
                self._cache[key] = hit
        return hit

    def allocation(self, rng: np.random.Generator | None, context: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(probabilities with the floor, posterior means, predictive sds, draws) for a context.

        ``rng`` is not used (the draws are the fit's, see :meth:`allocation_for`); it is
        kept for callers of the previous signature.
        """
        return self._allocate(_vector(context, self.n_features))

    def select(self, rng: np.random.Generator, context: np.ndarray) -> ContextualDecision:
        """Serve an arm for one encoded context: one uniform from ``rng``, exact propensity.

        The arm is drawn from :meth:`allocation_for` (by inverse CDF on one uniform), so
        ``propensity`` is exactly its probability; ``samples`` is None (the draws are
        the fit's, see :meth:`allocation`).
        """
        probabilities, mean, sd = self._cached_allocation(_vector(context, self.n_features))
        u = rng.random()  # the vector sums to 1 up to rounding; the else-branch takes the rest
        arm, cumulative = 0, 0.0
        for arm, p in enumerate(probabilities.tolist()):
            cumulative += p
            if u < cumulative and p > 0.0:
                break
        else:  # rounding put u past the last edge: the last arm with positive probability
            arm = int(np.flatnonzero(probabilities > 0)[-1])
        return ContextualDecision(
            arm=arm,
            propensity=float(probabilities[arm]),
            probabilities=probabilities,
            scores=mean,
            predictive_sd=sd,
        )

    def posterior_sd(self) -> np.ndarray:
        """(arms, d) posterior standard deviations of the coefficients: sqrt(s2 diag(A_a^-1)).

        A_a^-1 = R_a' R_a with R_a = L_a^-1, so diag(A_a^-1)_j = sum_i (R_a)_ij^2.
        """
        return np.sqrt(self._noise_variance * np.einsum("kij,kij->kj", self._inv_factors, self._inv_factors))

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
    "crosses": [["device", "hour"]], "min_share": 0.05, "decay": {"half_life_s": 604800}})``;
    the schema may use the short form (``["device", "hour"]``, see :mod:`bandits.schema`); an optional
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
        encoder = ContextEncoder.from_schema(normalise_schema(definition.get("context", [])), definition.get("crosses"))
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
            params.setdefault("main_columns", encoder.main_width)
            params.setdefault("column_groups", encoder.column_groups())
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
        return {
            "variants": self.variants,
            "context": self.encoder.schema(),
            "crosses": [list(pair) for pair in self.encoder.crosses],
            "policy": self.policy.state(),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> "ContextualPolicy":
        encoder = ContextEncoder.from_schema(state["context"], state.get("crosses", ()))
        policy_state = state["policy"]
        policy = CONTEXTUAL_POLICIES[policy_state["policy"]].from_state(policy_state)
        return cls(list(state["variants"]), encoder, policy)
