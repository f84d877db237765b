"""Turn a visitor's raw context (a JSON object) into the feature vector of a linear policy.

An experiment in ``"mode": "contextual"`` declares its features, e.g.::

    [{"name": "device", "type": "categorical", "levels": ["mobile", "desktop", "tablet"]},
     {"name": "hour", "type": "cyclic", "period": 24},
     {"name": "visits", "type": "numeric", "max": 100},
     {"name": "referrer", "type": "hashed", "buckets": 64},
     {"name": "returning", "type": "boolean"}]

:meth:`ContextEncoder.from_schema` validates that list once (at experiment creation)
and :meth:`ContextEncoder.encode` then maps any JSON-ish mapping to a finite float64
vector of fixed width. Column 0 is always the intercept (1.0); each feature owns a
contiguous block of columns after it:

=============  =======================  ======================================  ===============
type           columns                  value                                   missing/invalid
=============  =======================  ======================================  ===============
categorical    one per level + "other"  one-hot; an unseen level -> "other"     all zeros
boolean        ``=true``, ``=false``    one-hot                                 all zeros
numeric        value, ``missing``       clip to [min, max], scale to [0, 1]     0, missing = 1
cyclic         ``sin``, ``cos``         angle 2*pi*v/period on the unit circle  (0, 0)
               (+ harmonics, parts)     (opt-in, see :class:`CyclicFeature`)
hashed         one per bucket           one-hot of SHA-256(name, value) mod B   all zeros
=============  =======================  ======================================  ===============

Missing values get an explicit code rather than an imputed value: for the one-hot
types "all zeros" is a pattern no observed value produces, so a linear model fits the
missing case through the intercept alone; a numeric feature has an indicator column
(its value column is 0, which would otherwise read as "at the minimum"); the cyclic
(0, 0) is the centre of the circle, equidistant from every hour. A value that is
present but unusable (a nested object, NaN, a string that is not a number) is encoded
exactly like a missing one and reported separately in ``EncodedContext.invalid``.
Keys the schema does not declare are ignored and reported in ``unknown_keys``.
Encoding never raises on a context and never yields NaN or infinity.

Crosses. ``from_schema(features, crosses=[["device", "hour"], ["returning", "source"]])``
adds, after the features' blocks, one block per declared pair: the outer product of
the two features' columns (width w_a * w_b), e.g. ``device=mobile*hour:sin``. A linear
model on a categorical x cyclic cross fits one daily curve per device, on a
categorical x categorical cross one coefficient per combination: "mobile visitors in
the evening" and "new visitors from social" become learnable by a linear policy.
A missing value zeroes the cross block (the product of an all-zero block), so the
missing case is again fitted by the main effects alone.
"""
from __future__ import annotations

import hashlib
import math
import numbers
import re
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np

from .base import PolicyConfigError

#: Limits of a schema, enforced by :meth:`ContextEncoder.from_schema`. They bound the
#: cost of a decision (a d x d factor per arm) and the size of the stored statistics.
MAX_FEATURES = 30
MAX_WIDTH = 256  # encoded columns, intercept included
MAX_LEVELS = 64  # declared levels of one categorical feature
MAX_BUCKETS = 128  # buckets of one hashed feature
MAX_NAME_LENGTH = 64
MAX_CROSSES = 8  # declared interaction pairs
_NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
_MAX_LEVEL_LENGTH = 200

INTERCEPT = "intercept"
MISSING_LEVEL = "(missing)"
OTHER_LEVEL = "(other)"

# A value's fate during encoding.
_OK, _MISSING, _INVALID = "ok", "missing", "invalid"


# -- coercion of JSON-ish values ----------------------------------------------------
def _as_number(value: Any) -> float | None:
    """A finite-or-infinite float for a number-like value, None when it is not one.

    Accepts ints (any size: an int too large for a float becomes +/-inf and is then
    clipped by the caller), floats, bools (as 1/0) and numeric strings. NaN is not a
    number here: nothing sensible can be clipped from it.
    """
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, numbers.Real):
        try:
            number = float(value)
        except OverflowError:
            number = math.inf if value > 0 else -math.inf
    elif isinstance(value, str):
        text = value.strip()
        if not text or len(text) > 64:
            return None
        try:
            number = float(text)
        except ValueError:
            return None
    else:
        return None
    return None if math.isnan(number) else number


def _as_label(value: Any) -> str | None:
    """The string a categorical or hashed feature compares: None for missing/invalid.

    Strings are taken as they are; numbers and booleans by their JSON spelling (so a
    level "1" matches the number 1, and ``true`` matches "true"). Objects, arrays and
    NaN are not labels.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return None
        return str(int(value)) if value.is_integer() else repr(value)
    return None


_TRUE_WORDS = frozenset({"true", "1", "yes", "y", "on", "t"})
_FALSE_WORDS = frozenset({"false", "0", "no", "n", "off", "f"})


def _as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS:
            return False
    return None


def stable_bucket(name: str, label: str, buckets: int) -> int:
    """Bucket of ``label`` for feature ``name``: SHA-256, first 8 bytes, modulo ``buckets``.

    Python's ``hash()`` is salted per process, so it would put the same referrer in a
    different bucket in every worker and after every restart; SHA-256 does not.
    The feature name is part of the key so that two hashed features collide
    independently.
    """
    digest = hashlib.sha256(f"{name}\x00{label}".encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") % buckets


# -- feature types -------------------------------------------------------------------
def _require(spec: Mapping[str, Any], key: str, name: str, kind: str) -> Any:
    if key not in spec:
        raise PolicyConfigError(f"feature {name!r} ({kind}) needs {key!r}")
    return spec[key]


def _finite_number(value: Any, what: str) -> float:
    try:
        number = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan
    except OverflowError:  # an int beyond the float range
        number = math.inf
    if not math.isfinite(number):
        raise PolicyConfigError(f"{what} must be a finite number, got {value!r}")
    return number


def _check_keys(spec: Mapping[str, Any], allowed: set[str], name: str) -> None:
    extra = sorted(set(spec) - allowed - {"name", "type"})
    if extra:
        raise PolicyConfigError(f"feature {name!r}: unknown parameter(s) {', '.join(extra)}")


class _Feature:
    """One declared feature: its parameters, its columns and how to write them.

    ``write`` fills the feature's block ``out`` (a view, pre-zeroed) and returns
    whether the value was used, missing or invalid.
    """

    kind: ClassVar[str] = "abstract"

    def __init__(self, name: str) -> None:
        self.name = name

    @classmethod
    def from_spec(cls, name: str, spec: Mapping[str, Any]) -> "_Feature":
        raise NotImplementedError

    @property
    def width(self) -> int:
        return len(self.columns())

    def columns(self) -> list[str]:
        raise NotImplementedError

    def params(self) -> dict:
        return {}

    def write(self, value: Any, out: np.ndarray) -> str:
        raise NotImplementedError

    def segment(self, value: Any) -> str | None:
        """The report-segment level of this value, None when the type has no segments."""
        return None

    def describe(self) -> dict:
        return {"name": self.name, "type": self.kind, **self.params(), "columns": self.columns()}


class CategoricalFeature(_Feature):
    """One-hot over the declared levels plus an "other" column for unseen values."""

    kind = "categorical"

    def __init__(self, name: str, levels: Sequence[str]) -> None:
        super().__init__(name)
        self.levels = tuple(levels)
        self._index = {level: i for i, level in enumerate(self.levels)}

    @classmethod
    def from_spec(cls, name: str, spec: Mapping[str, Any]) -> "CategoricalFeature":
        _check_keys(spec, {"levels"}, name)
        levels = _require(spec, "levels", name, cls.kind)
        if not isinstance(levels, (list, tuple)) or not levels:
            raise PolicyConfigError(f"feature {name!r}: 'levels' must be a non-empty list of strings")
        if len(levels) > MAX_LEVELS:
            raise PolicyConfigError(f"feature {name!r}: {len(levels)} levels, at most {MAX_LEVELS} allowed")
        for level in levels:
            if not isinstance(level, str) or not level or len(level) > _MAX_LEVEL_LENGTH:
                raise PolicyConfigError(f"feature {name!r}: level {level!r} must be a non-empty string")
        if len(set(levels)) != len(levels):
            raise PolicyConfigError(f"feature {name!r}: duplicate levels")
        return cls(name, levels)

    def columns(self) -> list[str]:
        return [f"{self.name}={level}" for level in self.levels] + [f"{self.name}={OTHER_LEVEL}"]

    def params(self) -> dict:
        return {"levels": list(self.levels)}

    def _level(self, value: Any) -> tuple[str, int | None]:
        if value is None:
            return _MISSING, None
        label = _as_label(value)
        if label is None:
            return _INVALID, None
        return _OK, self._index.get(label, len(self.levels))

    def write(self, value: Any, out: np.ndarray) -> str:
        status, column = self._level(value)
        if column is not None:
            out[column] = 1.0
        return status

    def segment(self, value: Any) -> str:
        status, column = self._level(value)
        if column is None:
            return MISSING_LEVEL
        return self.levels[column] if column < len(self.levels) else OTHER_LEVEL


class BooleanFeature(_Feature):
    """Two one-hot columns, so that "false" and "missing" stay distinguishable."""

    kind = "boolean"

    @classmethod
    def from_spec(cls, name: str, spec: Mapping[str, Any]) -> "BooleanFeature":
        _check_keys(spec, set(), name)
        return cls(name)

    def columns(self) -> list[str]:
        return [f"{self.name}=true", f"{self.name}=false"]

    def _flag(self, value: Any) -> tuple[str, bool | None]:
        if value is None:
            return _MISSING, None
        flag = _as_bool(value)
        return (_INVALID, None) if flag is None else (_OK, flag)

    def write(self, value: Any, out: np.ndarray) -> str:
        status, flag = self._flag(value)
        if flag is not None:
            out[0 if flag else 1] = 1.0
        return status

    def segment(self, value: Any) -> str:
        _, flag = self._flag(value)
        return MISSING_LEVEL if flag is None else ("true" if flag else "false")


class NumericFeature(_Feature):
    """(v - min) / (max - min) after clipping v to [min, max], plus a missing indicator.

    Clipping makes the encoding bounded whatever a client sends (1e308, a 400-digit
    integer, "-inf"), which keeps the regression well conditioned.
    """

    kind = "numeric"

    def __init__(self, name: str, low: float, high: float) -> None:
        super().__init__(name)
        self.low, self.high = low, high

    @classmethod
    def from_spec(cls, name: str, spec: Mapping[str, Any]) -> "NumericFeature":
        _check_keys(spec, {"min", "max"}, name)
        high = _finite_number(_require(spec, "max", name, cls.kind), f"feature {name!r}: 'max'")
        low = _finite_number(spec.get("min", 0.0), f"feature {name!r}: 'min'")
        if not high > low:
            raise PolicyConfigError(f"feature {name!r}: 'max' ({high}) must be greater than 'min' ({low})")
        return cls(name, low, high)

    def columns(self) -> list[str]:
        return [self.name, f"{self.name}={MISSING_LEVEL}"]

    def params(self) -> dict:
        return {"min": self.low, "max": self.high}

    def write(self, value: Any, out: np.ndarray) -> str:
        if value is None:
            out[1] = 1.0
            return _MISSING
        number = _as_number(value)
        if number is None:
            out[1] = 1.0
            return _INVALID
        clipped = min(max(number, self.low), self.high)
        out[0] = (clipped - self.low) / (self.high - self.low)
        return _OK


MAX_HARMONICS = 4  # sin/cos pairs of one cyclic feature
MAX_PARTS = 12  # declared parts (e.g. day parts) of one cyclic feature


def _cyclic_parts(spec: Mapping[str, Any], name: str, period: float) -> tuple[float, ...]:
    """Validated ``parts``: the start of every part, increasing, in [0, period), at least 2."""
    if "parts" not in spec:
        return ()
    raw = spec["parts"]
    if not isinstance(raw, (list, tuple)) or not 2 <= len(raw) <= MAX_PARTS:
        raise PolicyConfigError(
            f"feature {name!r}: 'parts' must be a list of 2 to {MAX_PARTS} part starts, e.g. [0, 9, 18]"
        )
    starts = tuple(_finite_number(v, f"feature {name!r}: 'parts'") for v in raw)
    if any(not 0 <= v < period for v in starts) or any(b <= a for a, b in zip(starts, starts[1:])):
        raise PolicyConfigError(
            f"feature {name!r}: 'parts' must increase strictly and lie in [0, {period:g}), got {list(raw)!r}"
        )
    return starts


class CyclicFeature(_Feature):
    """A periodic quantity (hour of day, weekday) as a point on the unit circle.

    v -> (sin(2 pi v / P), cos(2 pi v / P)): 23h and 0h are neighbours, and a linear
    model on (sin, cos) is a smooth daily curve with one peak. v is reduced modulo P
    first so that huge values keep their precision.

    Opt-in richer shapes (the default encoding, and so the width of an existing
    experiment, is unchanged):

    * ``"harmonics": H`` adds (sin(2 pi h v / P), cos(2 pi h v / P)) for h = 2..H: a
      truncated Fourier series, so a linear model (or a cross with a categorical
      feature: one curve per level) can fit H peaks per period instead of one.
    * ``"parts": [s_0, s_1, ...]`` adds one indicator per part [s_i, s_{i+1}) (the
      last part wraps around to s_0 + P), e.g. ``[0, 9, 18]`` = night, working hours,
      evening. A step in the hour effect (what opening hours and commutes produce)
      is then exactly linear in the columns; a sinusoid can only approximate it.
    """

    kind = "cyclic"

    def __init__(self, name: str, period: float, harmonics: int = 1, parts: Sequence[float] = ()) -> None:
        super().__init__(name)
        self.period = period
        self.harmonics = harmonics
        self.parts = tuple(parts)

    @classmethod
    def from_spec(cls, name: str, spec: Mapping[str, Any]) -> "CyclicFeature":
        _check_keys(spec, {"period", "harmonics", "parts"}, name)
        period = _finite_number(_require(spec, "period", name, cls.kind), f"feature {name!r}: 'period'")
        if period <= 0:
            raise PolicyConfigError(f"feature {name!r}: 'period' must be positive, got {period}")
        harmonics = spec.get("harmonics", 1)
        if isinstance(harmonics, bool) or not isinstance(harmonics, int) or not 1 <= harmonics <= MAX_HARMONICS:
            raise PolicyConfigError(f"feature {name!r}: 'harmonics' must be an integer in [1, {MAX_HARMONICS}]")
        return cls(name, period, harmonics, _cyclic_parts(spec, name, period))

    def columns(self) -> list[str]:
        names = [f"{self.name}:sin", f"{self.name}:cos"]
        for h in range(2, self.harmonics + 1):
            names += [f"{self.name}:sin{h}", f"{self.name}:cos{h}"]
        ends = self.parts[1:] + (self.parts[0],) if self.parts else ()
        return names + [f"{self.name}@{a:g}-{b:g}" for a, b in zip(self.parts, ends)]

    def params(self) -> dict:
        params: dict[str, Any] = {"period": self.period}
        if self.harmonics != 1:  # only what was declared: a stored schema reads back the same
            params["harmonics"] = self.harmonics
        if self.parts:
            params["parts"] = list(self.parts)
        return params

    def part_of(self, phase: float) -> int:
        """Index of the declared part a phase in [0, period) falls in (the last part wraps)."""
        index = len(self.parts) - 1  # before the first start: the wrapping last part
        for i, start in enumerate(self.parts):
            if phase >= start:
                index = i
        return index

    def write(self, value: Any, out: np.ndarray) -> str:
        if value is None:
            return _MISSING
        number = _as_number(value)
        if number is None or not math.isfinite(number):
            return _INVALID
        remainder = math.fmod(number, self.period)  # in (-period, period), the sign of the value
        angle = 2.0 * math.pi * (remainder / self.period)
        out[0] = math.sin(angle)
        out[1] = math.cos(angle)
        for h in range(1, self.harmonics):  # the default (one harmonic, no parts) stops here
            out[2 * h] = math.sin((h + 1) * angle)
            out[2 * h + 1] = math.cos((h + 1) * angle)
        if self.parts:
            phase = remainder + self.period if remainder < 0 else remainder
            out[2 * self.harmonics + self.part_of(phase)] = 1.0
        return _OK


class HashedFeature(_Feature):
    """High-cardinality strings (referrer, campaign) one-hot in a fixed number of buckets."""

    kind = "hashed"

    def __init__(self, name: str, buckets: int) -> None:
        super().__init__(name)
        self.buckets = buckets

    @classmethod
    def from_spec(cls, name: str, spec: Mapping[str, Any]) -> "HashedFeature":
        _check_keys(spec, {"buckets"}, name)
        buckets = _require(spec, "buckets", name, cls.kind)
        if isinstance(buckets, bool) or not isinstance(buckets, int) or not 2 <= buckets <= MAX_BUCKETS:
            raise PolicyConfigError(f"feature {name!r}: 'buckets' must be an integer in [2, {MAX_BUCKETS}]")
        return cls(name, buckets)

    def columns(self) -> list[str]:
        return [f"{self.name}#{i}" for i in range(self.buckets)]

    def params(self) -> dict:
        return {"buckets": self.buckets}

    def write(self, value: Any, out: np.ndarray) -> str:
        if value is None:
            return _MISSING
        label = _as_label(value)
        if label is None:
            return _INVALID
        out[stable_bucket(self.name, label, self.buckets)] = 1.0
        return _OK


#: Feature types by the ``type`` of a schema entry.
FEATURE_TYPES: dict[str, type[_Feature]] = {
    cls.kind: cls for cls in (CategoricalFeature, BooleanFeature, NumericFeature, CyclicFeature, HashedFeature)
}


# -- the encoder ---------------------------------------------------------------------
@dataclass(frozen=True)
class EncodedContext:
    """A context as the policy sees it, with what the encoder had to ignore or impute.

    ``vector`` has shape (width,), float64, finite, ``vector[0] == 1``. ``unknown_keys``
    are keys the schema does not declare (ignored); ``missing`` are declared features
    absent or null; ``invalid`` are declared features whose value could not be used
    (encoded as missing).
    """

    vector: np.ndarray
    unknown_keys: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    invalid: tuple[str, ...] = ()


def _check_crosses(crosses: Any, features: Sequence[_Feature]) -> tuple[tuple[str, str], ...]:
    """Validate declared crosses: pairs of two different declared features, each pair once."""
    if crosses is None:
        return ()
    if not isinstance(crosses, (list, tuple)):
        raise PolicyConfigError('crosses must be a list of feature-name pairs, e.g. [["device", "hour"]]')
    if len(crosses) > MAX_CROSSES:
        raise PolicyConfigError(f"{len(crosses)} crosses declared, at most {MAX_CROSSES} allowed")
    names = {f.name for f in features}
    pairs: list[tuple[str, str]] = []
    seen: set[frozenset] = set()
    for position, pair in enumerate(crosses):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2 or not all(isinstance(n, str) for n in pair):
            raise PolicyConfigError(f"cross #{position} must be a pair of feature names, got {pair!r}")
        a, b = pair
        for name in (a, b):
            if name not in names:
                raise PolicyConfigError(f"cross #{position} ({a!r}, {b!r}): {name!r} is not a declared feature")
        if a == b:
            raise PolicyConfigError(f"cross #{position} crosses {a!r} with itself")
        if frozenset(pair) in seen:
            raise PolicyConfigError(f"cross #{position} ({a!r}, {b!r}) is declared twice")
        seen.add(frozenset(pair))
        pairs.append((a, b))
    return tuple(pairs)


class ContextEncoder:
    """A validated feature schema (and its crosses) and the fixed-width encoding it defines."""

    def __init__(self, features: Sequence[_Feature], crosses: Sequence[tuple[str, str]] = ()) -> None:
        self.features = tuple(features)
        self._slices: list[tuple[_Feature, slice]] = []
        start = 1
        for feature in self.features:
            self._slices.append((feature, slice(start, start + feature.width)))
            start += feature.width
        self.main_width = start
        by_name = {feature.name: block for feature, block in self._slices}
        self.crosses = tuple((a, b) for a, b in crosses)
        self._cross_slices: list[tuple[slice, slice, slice]] = []
        for a, b in self.crosses:
            width = (by_name[a].stop - by_name[a].start) * (by_name[b].stop - by_name[b].start)
            self._cross_slices.append((by_name[a], by_name[b], slice(start, start + width)))
            start += width
        self.width = start
        self._names = frozenset(f.name for f in self.features)

    @classmethod
    def from_schema(cls, schema: Sequence[Mapping[str, Any]], crosses: Sequence[Sequence[str]] | None = ()) -> "ContextEncoder":
        """Validate a schema (list of feature dicts) and its crosses, and build the encoder.

        Raises :class:`PolicyConfigError` naming the offending feature for an unknown
        type, missing or bad parameters, duplicate names, more than ``MAX_FEATURES``
        features or more than ``MAX_WIDTH`` encoded columns (crosses included), and
        naming the cross for a pair that is not two different declared features.
        """
        if not isinstance(schema, (list, tuple)):
            raise PolicyConfigError("a context schema is a list of feature objects")
        if len(schema) > MAX_FEATURES:
            raise PolicyConfigError(f"{len(schema)} context features declared, at most {MAX_FEATURES} allowed")
        features: list[_Feature] = []
        seen: set[str] = set()
        for position, spec in enumerate(schema):
            if not isinstance(spec, Mapping):
                raise PolicyConfigError(f"context feature #{position} must be an object, got {type(spec).__name__}")
            name = spec.get("name")
            if not isinstance(name, str) or not name:
                raise PolicyConfigError(f"context feature #{position} needs a non-empty string 'name'")
            if len(name) > MAX_NAME_LENGTH or not _NAME_PATTERN.fullmatch(name):
                raise PolicyConfigError(
                    f"feature name {name!r} must start with a letter or '_' and use only letters, digits, '_', '.', '-'"
                    f" (at most {MAX_NAME_LENGTH} characters)"
                )
            if name in seen:
                raise PolicyConfigError(f"feature {name!r} is declared twice")
            seen.add(name)
            kind = spec.get("type")
            feature_cls = FEATURE_TYPES.get(kind) if isinstance(kind, str) else None
            if feature_cls is None:
                known = ", ".join(sorted(FEATURE_TYPES))
                raise PolicyConfigError(f"feature {name!r}: unknown type {kind!r} (known: {known})")
            features.append(feature_cls.from_spec(name, spec))
        encoder = cls(features, _check_crosses(crosses, features))
        if encoder.width > MAX_WIDTH:
            widest = max(features, key=lambda f: f.width)
            raise PolicyConfigError(
                f"the context encodes to {encoder.width} columns, at most {MAX_WIDTH} allowed"
                f" (widest feature: {widest.name!r} with {widest.width}; crosses add {encoder.width - encoder.main_width})"
            )
        return encoder

    def encode(self, context: Mapping[str, Any] | None) -> EncodedContext:
        """Encode one raw context; never raises for any JSON-ish input."""
        vector = np.zeros(self.width)
        vector[0] = 1.0
        if not isinstance(context, Mapping):
            context = {}
        missing: list[str] = []
        invalid: list[str] = []
        for feature, block in self._slices:
            try:
                status = feature.write(context.get(feature.name), vector[block])
            except (TypeError, ValueError, OverflowError, RecursionError):  # pragma: no cover - defensive
                vector[block] = 0.0
                status = _INVALID
            if status == _MISSING:
                missing.append(feature.name)
            elif status == _INVALID:
                invalid.append(feature.name)
        for block_a, block_b, block in self._cross_slices:
            vector[block] = np.multiply.outer(vector[block_a], vector[block_b]).ravel()
        unknown = tuple(sorted(str(k) for k in context if k not in self._names))
        return EncodedContext(vector, unknown, tuple(missing), tuple(invalid))

    def segment_levels(self, context: Mapping[str, Any] | None) -> dict[str, str]:
        """Report segment per categorical/boolean feature: a declared level, "(other)" or "(missing)"."""
        if not isinstance(context, Mapping):
            context = {}
        levels = {}
        for feature in self.features:
            level = feature.segment(context.get(feature.name))
            if level is not None:
                levels[feature.name] = level
        return levels

    def columns(self) -> list[str]:
        """Name of every encoded column, in order (column 0 is the intercept)."""
        names = [INTERCEPT]
        by_name = {}
        for feature in self.features:
            names.extend(feature.columns())
            by_name[feature.name] = feature.columns()
        for a, b in self.crosses:
            names.extend(f"{left}*{right}" for left in by_name[a] for right in by_name[b])
        return names

    def column_groups(self) -> list[int]:
        """Block id per column (0 = intercept, then 1.. per feature and per cross), for
        :class:`~bandits.linear.LinearThompson`'s ``column_groups``."""
        groups = [0] * self.width
        for group, (_, _, block) in enumerate(self.column_blocks(), start=1):
            groups[block] = [group] * (block.stop - block.start)
        return groups

    def column_blocks(self) -> list[tuple[str, tuple[str, ...], slice]]:
        """(label, feature names, columns) per block: each feature, then each cross ("device*hour")."""
        blocks = [(f.name, (f.name,), block) for f, block in self._slices]
        blocks += [(f"{a}*{b}", (a, b), block) for (a, b), (_, _, block) in zip(self.crosses, self._cross_slices)]
        return blocks

    def schema(self) -> list[dict]:
        """The normalised schema: what :meth:`from_schema` accepts to rebuild this encoder."""
        return [{"name": f.name, "type": f.kind, **f.params()} for f in self.features]

    def describe(self) -> dict:
        """The schema as plain data, with the columns each feature encodes to."""
        return {
            "width": self.width,
            "columns": self.columns(),
            "features": [f.describe() for f in self.features],
            "crosses": [list(pair) for pair in self.crosses],
        }
