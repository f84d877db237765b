"""Synthetic contextual environments for the bandit benchmark.

Every environment draws raw visitor contexts (the JSON a browser would send), encodes
them with Lever's own :class:`~bandits.ContextEncoder`, and gives each variant a
logistic click model  P(click | x, a) = sigmoid(alpha_a + beta_a . z(x))  on
interpretable context variables z (device, hour, visits, returning). A run of one
environment with one seed is a :class:`Stream`: contexts, true click probabilities
and the uniforms that decide every click, pre-drawn so that every policy faces
exactly the same visitors and the same luck (common random numbers).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from bandits import ContextEncoder

SCHEMA = [
    {"name": "device", "type": "categorical", "levels": ["mobile", "desktop", "tablet"]},
    {"name": "hour", "type": "cyclic", "period": 24},
    {"name": "visits", "type": "numeric", "max": 50},
    {"name": "referrer", "type": "hashed", "buckets": 8},
    {"name": "returning", "type": "boolean"},
]
DEVICES = ("mobile", "desktop", "tablet")
DEVICE_SHARE = (0.55, 0.35, 0.10)
REFERRERS = ("google", "bing", "newsletter", "facebook", "direct", "partner-a", "partner-b", "reddit")


def logit(p: float) -> float:
    return float(np.log(p / (1 - p)))


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


@dataclass(frozen=True)
class Stream:
    """One environment instance for one seed."""

    name: str
    contexts: list[dict]  # raw contexts as sent by clients
    x: np.ndarray  # (T, d) encoded with Lever's encoder
    probabilities: np.ndarray  # (T, K) true click probability of every variant
    uniforms: np.ndarray  # (T,) click iff uniform < probability of the served variant
    delays: np.ndarray  # (T,) seconds until a click is reported (the service's delayed conversions)
    rate: float  # simulated requests per second

    @property
    def horizon(self) -> int:
        return self.x.shape[0]

    @property
    def n_arms(self) -> int:
        return self.probabilities.shape[1]


def _raw_contexts(rng: np.random.Generator, n: int) -> tuple[list[dict], dict[str, np.ndarray]]:
    device = rng.choice(3, size=n, p=DEVICE_SHARE)
    hour = rng.integers(0, 24, size=n)
    returning = rng.random(n) < 0.35
    visits = np.where(returning, 1 + rng.geometric(0.15, size=n), 0)
    referrer = rng.integers(0, len(REFERRERS), size=n)
    missing_device = rng.random(n) < 0.02  # a few clients send nothing
    contexts = []
    for i in range(n):
        context = {
            "hour": int(hour[i]),
            "visits": int(visits[i]),
            "referrer": REFERRERS[referrer[i]],
            "returning": bool(returning[i]),
        }
        if not missing_device[i]:
            context["device"] = DEVICES[device[i]]
        contexts.append(context)
    z = {
        "device": np.eye(3)[device] * ~missing_device[:, None],
        "hour_sin": np.sin(2 * np.pi * hour / 24),
        "hour_cos": np.cos(2 * np.pi * hour / 24),
        "visits": np.minimum(visits, 50) / 50,
        "returning": returning.astype(float),
    }
    return contexts, z


# A click model maps the context variables z to (T, K) logits, possibly time-varying.
ClickModel = Callable[[dict[str, np.ndarray], int], np.ndarray]


def context_decides(z: dict[str, np.ndarray], n: int) -> np.ndarray:
    """4 variants; the best depends on the device: desktop -> a, mobile -> b, tablet -> c.

    d is decent everywhere and best nowhere (what a non-contextual bandit settles on).
    Common effects: returning visitors and evenings convert more on every variant.
    """
    base = logit(0.035)
    lift = np.array(
        [  # mobile, desktop, tablet
            [0.0, 1.0, 0.0],  # a
            [1.0, 0.0, 0.0],  # b
            [0.0, 0.0, 1.0],  # c
            [0.45, 0.45, 0.45],  # d
        ]
    )
    common = 0.5 * z["returning"] - 0.25 * z["hour_cos"] + 0.3 * z["visits"]
    return base + common[:, None] + z["device"] @ lift.T


def context_irrelevant(z: dict[str, np.ndarray], n: int) -> np.ndarray:
    """4 variants with constant rates 3%, 4%, 5%, 4.5%: context carries no signal at all."""
    rates = np.array([0.03, 0.04, 0.05, 0.045])
    return np.broadcast_to(np.log(rates / (1 - rates)), (n, rates.size)).copy()


def drifting(z: dict[str, np.ndarray], n: int) -> np.ndarray:
    """``context_decides`` for the first half, then the device -> best-variant map rotates."""
    logits = context_decides(z, n)
    half = n // 2
    rotated = logits[half:].copy()
    rotated[:, [0, 1, 2]] = logits[half:, [1, 2, 0]]  # now mobile -> a, desktop -> c, tablet -> b
    logits[half:] = rotated
    return logits


def many_variants(z: dict[str, np.ndarray], n: int) -> np.ndarray:
    """12 variants with fixed random device x returning effects, base rates 1-10%."""
    env_rng = np.random.default_rng(12345)  # the environment is the same for every seed
    k = 12
    base = np.log(env_rng.uniform(0.01, 0.06, size=k) / 0.97)
    device_effect = env_rng.normal(0.0, 0.45, size=(k, 3))
    returning_effect = env_rng.normal(0.4, 0.3, size=k)
    hour_effect = env_rng.normal(0.0, 0.2, size=k)
    return (
        base
        + z["device"] @ device_effect.T
        + z["returning"][:, None] * returning_effect
        + z["hour_sin"][:, None] * hour_effect
    )


ENVIRONMENTS: dict[str, ClickModel] = {
    "context decides": context_decides,
    "context irrelevant": context_irrelevant,
    "drift at T/2": drifting,
    "12 variants": many_variants,
}


def make_stream(env: str, seed: int, horizon: int, rate: float = 20.0, mean_delay_s: float = 30.0) -> Stream:
    rng = np.random.default_rng([seed, 7919])
    contexts, z = _raw_contexts(rng, horizon)
    encoder = ContextEncoder.from_schema(SCHEMA)
    x = np.stack([encoder.encode(c).vector for c in contexts])
    probabilities = np.clip(sigmoid(ENVIRONMENTS[env](z, horizon)), 0.0, 1.0)
    uniforms = rng.random(horizon)
    delays = rng.exponential(mean_delay_s, size=horizon)
    return Stream(env, contexts, x, probabilities, uniforms, delays, rate)
