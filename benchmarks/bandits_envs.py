"""Synthetic contextual environments for the bandit benchmark.

Every environment draws raw visitor contexts (the JSON a browser would send), encodes
them with Lever's own :class:`~bandits.ContextEncoder` twice: with the plain schema
(what the peers get, they learn interactions their own way or not at all) and with the
declared crosses device*hour and returning*source (what Lever gets; the same crosses in
every environment, as a user declares them once without knowing the answer). Each
variant has a logistic click model P(click | context, a) = sigmoid(logit_a(z)) on
interpretable context variables z. A run of one environment with one seed is a
:class:`Stream`: contexts, true click probabilities and the uniforms that decide every
click, pre-drawn so that every policy faces the same visitors and the same luck
(common random numbers).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from bandits import ContextEncoder

DEVICES = ("mobile", "desktop", "tablet")
DEVICE_SHARE = (0.55, 0.35, 0.10)
SOURCES = ("search", "social", "email", "direct", "referral")
SOURCE_SHARE = (0.35, 0.25, 0.10, 0.20, 0.10)
CAMPAIGNS = tuple(f"campaign-{i}" for i in range(30))

SCHEMA = [
    {"name": "device", "type": "categorical", "levels": list(DEVICES)},
    {"name": "hour", "type": "cyclic", "period": 24},
    {"name": "visits", "type": "numeric", "max": 20},
    {"name": "source", "type": "categorical", "levels": list(SOURCES)},
    {"name": "returning", "type": "boolean"},
]
#: 10 variants x 31 encoded columns before crosses (51 with them).
WIDE_SCHEMA = SCHEMA + [
    {"name": "weekday", "type": "cyclic", "period": 7},
    {"name": "campaign", "type": "hashed", "buckets": 12},
]
CROSSES = [["device", "hour"], ["returning", "source"]]


def lever_schema(features: list[dict], hour: dict | None = None) -> list[dict]:
    """The schema Lever's user declares: the plain one, with ``hour`` (e.g. ``{"parts": [0, 9, 18]}``,
    day parts, or ``{"harmonics": 2}``) added to the hour feature."""
    return [{**f, **hour} if hour and f["name"] == "hour" else f for f in features]


def logit(p: float) -> float:
    return float(np.log(p / (1 - p)))


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


@dataclass(frozen=True)
class Stream:
    """One environment instance for one seed."""

    name: str
    contexts: list[dict]  # raw contexts as sent by clients
    x: np.ndarray  # (T, d) plain encoding (peers)
    x_crossed: np.ndarray  # (T, d') encoding with the declared crosses (Lever)
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
    weekday = rng.integers(0, 7, size=n)
    returning = rng.random(n) < 0.35
    visits = np.where(returning, 1 + rng.geometric(0.25, size=n), 0)
    source = rng.choice(len(SOURCES), size=n, p=SOURCE_SHARE)
    campaign = rng.integers(0, len(CAMPAIGNS), size=n)
    missing_device = rng.random(n) < 0.02  # a few clients send nothing
    contexts = []
    for i in range(n):
        context = {
            "hour": int(hour[i]),
            "weekday": int(weekday[i]),
            "visits": int(visits[i]),
            "source": SOURCES[source[i]],
            "returning": bool(returning[i]),
            "campaign": CAMPAIGNS[campaign[i]],
        }
        if not missing_device[i]:
            context["device"] = DEVICES[device[i]]
        contexts.append(context)
    z = {
        "device": np.eye(3)[device] * ~missing_device[:, None],
        "hour": hour,
        "hour_sin": np.sin(2 * np.pi * hour / 24),
        "hour_cos": np.cos(2 * np.pi * hour / 24),
        "weekday_sin": np.sin(2 * np.pi * weekday / 7),
        "visits": np.minimum(visits, 20) / 20,
        "returning": returning.astype(float),
        "source": np.eye(len(SOURCES))[source],
    }
    return contexts, z


# A click model maps the context variables z to (T, K) logits.
ClickModel = Callable[[dict[str, np.ndarray], int], np.ndarray]


def _common(z: dict[str, np.ndarray]) -> np.ndarray:
    """Effects shared by every variant: returning visitors and evenings convert more."""
    return 0.5 * z["returning"] - 0.25 * z["hour_cos"] + 0.3 * z["visits"]


def main_effects(z: dict[str, np.ndarray], n: int) -> np.ndarray:
    """4 variants; the best depends on the device: desktop -> a, mobile -> b, tablet -> c.

    d is decent everywhere and best nowhere (what a non-contextual bandit settles on).
    """
    lift = np.array(
        [  # mobile, desktop, tablet
            [0.0, 1.0, 0.0],  # a
            [1.0, 0.0, 0.0],  # b
            [0.0, 0.0, 1.0],  # c
            [0.45, 0.45, 0.45],  # d
        ]
    )
    return logit(0.035) + _common(z)[:, None] + z["device"] @ lift.T


def interactions(z: dict[str, np.ndarray], n: int) -> np.ndarray:
    """The best variant depends on combinations, through step functions of the hour.

    a: desktop in working hours (9-17h); b: mobile in the evening (18-23h); c: new
    visitors from social or search; d: decent everywhere, best nowhere in particular.
    No single feature tells the best variant.
    """
    mobile, desktop = z["device"][:, 0], z["device"][:, 1]
    work = ((z["hour"] >= 9) & (z["hour"] <= 17)).astype(float)
    evening = (z["hour"] >= 18).astype(float)
    new_social_search = (1.0 - z["returning"]) * (z["source"][:, 0] + z["source"][:, 1])
    lifts = np.column_stack([0.9 * desktop * work, 0.9 * mobile * evening, 0.8 * new_social_search, np.full(n, 0.35)])
    return logit(0.04) + _common(z)[:, None] + lifts


def context_irrelevant(z: dict[str, np.ndarray], n: int) -> np.ndarray:
    """4 variants with constant rates 3%, 4%, 5%, 4.5%: context carries no signal at all."""
    rates = np.array([0.03, 0.04, 0.05, 0.045])
    return np.broadcast_to(np.log(rates / (1 - rates)), (n, rates.size)).copy()


def drifting(z: dict[str, np.ndarray], n: int) -> np.ndarray:
    """``main_effects`` for the first half, then the device -> best-variant map rotates."""
    logits = main_effects(z, n)
    half = n // 2
    rotated = logits[half:].copy()
    rotated[:, [0, 1, 2]] = logits[half:, [1, 2, 0]]  # now mobile -> a, desktop -> c, tablet -> b
    logits[half:] = rotated
    return logits


def many_variants(z: dict[str, np.ndarray], n: int, k: int = 12, seed: int = 12345) -> np.ndarray:
    """k variants with fixed random device x returning effects, base rates 1-6%."""
    env_rng = np.random.default_rng(seed)  # the environment is the same for every seed
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


def wide(z: dict[str, np.ndarray], n: int) -> np.ndarray:
    """10 variants on the wide schema: device, source and weekday effects per variant."""
    env_rng = np.random.default_rng(777)
    k = 10
    base = np.log(env_rng.uniform(0.02, 0.05, size=k) / 0.97)
    device_effect = env_rng.normal(0.0, 0.4, size=(k, 3))
    source_effect = env_rng.normal(0.0, 0.3, size=(k, len(SOURCES)))
    weekday_effect = env_rng.normal(0.0, 0.15, size=k)
    return (
        base
        + _common(z)[:, None]
        + z["device"] @ device_effect.T
        + z["source"] @ source_effect.T
        + z["weekday_sin"][:, None] * weekday_effect
    )


def _schema(features: list[dict]) -> tuple:
    """A schema as nested tuples (hashable, so it can sit in a frozen dataclass)."""
    return tuple(tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in f.items()) for f in features)


@dataclass(frozen=True)
class Environment:
    model: ClickModel
    schema: tuple = _schema(SCHEMA)
    mean_delay_s: float = 30.0
    doc: str = ""


ENVIRONMENTS: dict[str, Environment] = {
    "main effects": Environment(main_effects, doc="the device alone decides (4 variants)"),
    "interactions": Environment(interactions, doc="device x hour and returning x source decide (4 variants)"),
    "context irrelevant": Environment(context_irrelevant, doc="constant rates 3-5% (4 variants)"),
    "drift at T/2": Environment(drifting, doc="main effects, the device -> variant map rotates at T/2"),
    "12 variants": Environment(many_variants, doc="random device and returning effects"),
    "10 variants x 31 columns": Environment(wide, _schema(WIDE_SCHEMA), doc="wide schema, 51 columns with crosses"),
    "delayed rewards": Environment(interactions, mean_delay_s=600.0, doc="interactions, clicks 10 min late on average"),
}


def _features(schema: tuple) -> list[dict]:
    return [{k: list(v) if isinstance(v, tuple) else v for k, v in f} for f in schema]


def make_stream(env: str, seed: int, horizon: int, rate: float = 20.0) -> Stream:
    spec = ENVIRONMENTS[env]
    rng = np.random.default_rng([seed, 7919])
    contexts, z = _raw_contexts(rng, horizon)
    schema = _features(spec.schema)
    plain = ContextEncoder.from_schema(schema)
    crossed = ContextEncoder.from_schema(schema, CROSSES)
    x = np.stack([plain.encode(c).vector for c in contexts])
    x_crossed = np.stack([crossed.encode(c).vector for c in contexts])
    probabilities = np.clip(sigmoid(spec.model(z, horizon)), 0.0, 1.0)
    uniforms = rng.random(horizon)
    delays = rng.exponential(spec.mean_delay_s, size=horizon)
    return Stream(env, contexts, x, x_crossed, probabilities, uniforms, delays, rate)


def encoder_for(env: str, crossed: bool, hour: dict | None = None) -> ContextEncoder:
    """Lever's encoder (crosses, ``hour`` options) or the plain one."""
    schema = lever_schema(_features(ENVIRONMENTS[env].schema), hour)
    return ContextEncoder.from_schema(schema, CROSSES if crossed else ())
