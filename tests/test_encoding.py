"""Context encoding: every feature type, schema validation, and robustness to any JSON."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bandits import FEATURE_TYPES, ContextEncoder, PolicyConfigError
from bandits.encoding import MAX_FEATURES, MAX_WIDTH, stable_bucket

SCHEMA = [
    {"name": "device", "type": "categorical", "levels": ["mobile", "desktop", "tablet"]},
    {"name": "hour", "type": "cyclic", "period": 24},
    {"name": "visits", "type": "numeric", "max": 100},
    {"name": "referrer", "type": "hashed", "buckets": 64},
    {"name": "returning", "type": "boolean"},
]


@pytest.fixture(scope="module")
def encoder() -> ContextEncoder:
    return ContextEncoder.from_schema(SCHEMA)


def block(encoder: ContextEncoder, name: str, vector: np.ndarray) -> np.ndarray:
    columns = encoder.columns()
    idx = [i for i, c in enumerate(columns) if c == name or c.startswith(name + "=") or c.startswith(name + ":") or c.startswith(name + "#")]
    return vector[idx]


def test_width_and_columns(encoder):
    # intercept + (3 levels + other) + sin/cos + (value, missing) + 64 buckets + (true, false)
    assert encoder.width == 1 + 4 + 2 + 2 + 64 + 2
    columns = encoder.columns()
    assert len(columns) == encoder.width
    assert columns[:5] == ["intercept", "device=mobile", "device=desktop", "device=tablet", "device=(other)"]


def test_full_context_encoding(encoder):
    encoded = encoder.encode({"device": "desktop", "hour": 6, "visits": 25, "referrer": "google.com", "returning": True})
    v = encoded.vector
    assert v.dtype == np.float64 and v.shape == (encoder.width,)
    assert v[0] == 1.0
    np.testing.assert_array_equal(block(encoder, "device", v), [0, 1, 0, 0])
    np.testing.assert_allclose(block(encoder, "hour", v), [1.0, 0.0], atol=1e-12)  # 6h = quarter turn
    np.testing.assert_allclose(block(encoder, "visits", v), [0.25, 0.0])
    hashed = block(encoder, "referrer", v)
    assert hashed.sum() == 1.0 and hashed[stable_bucket("referrer", "google.com", 64)] == 1.0
    np.testing.assert_array_equal(block(encoder, "returning", v), [1, 0])
    assert encoded.missing == () and encoded.invalid == () and encoded.unknown_keys == ()


def test_categorical_unseen_level_goes_to_other_and_missing_to_zeros(encoder):
    assert list(block(encoder, "device", encoder.encode({"device": "smart-tv"}).vector)) == [0, 0, 0, 1]
    missing = encoder.encode({})
    assert list(block(encoder, "device", missing.vector)) == [0, 0, 0, 0]
    assert "device" in missing.missing
    nested = encoder.encode({"device": {"kind": "mobile"}})
    assert list(block(encoder, "device", nested.vector)) == [0, 0, 0, 0]
    assert nested.invalid == ("device",)


def test_categorical_matches_numbers_by_json_spelling():
    enc = ContextEncoder.from_schema([{"name": "plan", "type": "categorical", "levels": ["1", "2", "true"]}])
    assert list(enc.encode({"plan": 2}).vector[1:]) == [0, 1, 0, 0]
    assert list(enc.encode({"plan": 1.0}).vector[1:]) == [1, 0, 0, 0]
    assert list(enc.encode({"plan": True}).vector[1:]) == [0, 0, 1, 0]


def test_cyclic_neighbours_and_bad_values(encoder):
    late = block(encoder, "hour", encoder.encode({"hour": 23.5}).vector)
    early = block(encoder, "hour", encoder.encode({"hour": 0.5}).vector)
    noon = block(encoder, "hour", encoder.encode({"hour": "12"}).vector)
    assert np.linalg.norm(late - early) < np.linalg.norm(late - noon)
    np.testing.assert_allclose(block(encoder, "hour", encoder.encode({"hour": 24 * 1000 + 6}).vector), [1, 0], atol=1e-9)
    for bad in (float("nan"), float("inf"), "noon", [1]):
        encoded = encoder.encode({"hour": bad})
        assert list(block(encoder, "hour", encoded.vector)) == [0, 0]
        assert encoded.invalid == ("hour",)


def test_numeric_clipping_strings_and_missing_indicator(encoder):
    def visits(value):
        return list(block(encoder, "visits", encoder.encode({"visits": value}).vector))

    assert visits(-5) == [0.0, 0.0]
    assert visits(1e308) == [1.0, 0.0]
    assert visits(10**400) == [1.0, 0.0]  # does not fit a float: clipped, not a crash
    assert visits(-(10**400)) == [0.0, 0.0]
    assert visits("50") == [0.5, 0.0]
    assert visits(" 75.0 ") == [0.75, 0.0]
    assert visits(True) == [0.01, 0.0]
    assert visits(None) == [0.0, 1.0]
    assert visits("many") == [0.0, 1.0]
    assert visits(float("nan")) == [0.0, 1.0]
    assert visits(float("-inf")) == [0.0, 0.0]


def test_numeric_min():
    enc = ContextEncoder.from_schema([{"name": "temp", "type": "numeric", "min": -10, "max": 30}])
    assert enc.encode({"temp": 10}).vector[1] == pytest.approx(0.5)


def test_hashed_is_stable_across_processes():
    # A fixed expected bucket: Python's salted hash() would change it per process.
    assert stable_bucket("referrer", "google.com", 64) == stable_bucket("referrer", "google.com", 64)
    import hashlib

    digest = hashlib.sha256(b"referrer\x00google.com").digest()
    assert stable_bucket("referrer", "google.com", 64) == int.from_bytes(digest[:8], "big") % 64
    enc = ContextEncoder.from_schema([{"name": "ref", "type": "hashed", "buckets": 8}])
    assert enc.encode({"ref": 42}).vector.sum() == 2.0  # numbers are hashed by their spelling
    assert enc.encode({"ref": None}).vector.sum() == 1.0


def test_boolean_spellings(encoder):
    def returning(value):
        return list(block(encoder, "returning", encoder.encode({"returning": value}).vector))

    for yes in (True, 1, "true", "YES", "1"):
        assert returning(yes) == [1, 0]
    for no in (False, 0, "false", "no", "0"):
        assert returning(no) == [0, 1]
    for unknown in (None, "maybe", 2, [True]):
        assert returning(unknown) == [0, 0]


def test_unknown_keys_reported_and_ignored(encoder):
    encoded = encoder.encode({"device": "mobile", "colour": "red", "zz": {"a": 1}})
    assert encoded.unknown_keys == ("colour", "zz")
    np.testing.assert_array_equal(encoded.vector, encoder.encode({"device": "mobile"}).vector)


def test_not_a_mapping_encodes_as_all_missing(encoder):
    for context in (None, [], "device=mobile", 3):
        encoded = encoder.encode(context)  # type: ignore[arg-type]
        assert encoded.vector[0] == 1.0 and np.isfinite(encoded.vector).all()
        assert set(encoded.missing) == {f["name"] for f in SCHEMA}


def test_segment_levels(encoder):
    assert encoder.segment_levels({"device": "mobile", "returning": "yes"}) == {"device": "mobile", "returning": "true"}
    assert encoder.segment_levels({"device": "tv"}) == {"device": "(other)", "returning": "(missing)"}
    assert encoder.segment_levels(None) == {"device": "(missing)", "returning": "(missing)"}


def test_describe_is_plain_data_and_schema_round_trips(encoder):
    import json

    described = encoder.describe()
    assert json.loads(json.dumps(described)) == described
    assert described["width"] == encoder.width
    assert [f["name"] for f in described["features"]] == [f["name"] for f in SCHEMA]
    assert described["features"][2] == {
        "name": "visits",
        "type": "numeric",
        "min": 0.0,
        "max": 100.0,
        "columns": ["visits", "visits=(missing)"],
    }
    rebuilt = ContextEncoder.from_schema(encoder.schema())
    assert rebuilt.columns() == encoder.columns()


def test_registry_lists_every_type():
    assert set(FEATURE_TYPES) == {"categorical", "boolean", "numeric", "cyclic", "hashed"}


@pytest.mark.parametrize(
    "schema, message",
    [
        ("device", "list"),
        ([{"name": "x", "type": "colour"}], "'x': unknown type 'colour'"),
        ([{"type": "boolean"}], "needs a non-empty string 'name'"),
        ([{"name": "1st", "type": "boolean"}], "'1st'"),
        ([{"name": "a b", "type": "boolean"}], "'a b'"),
        (["device"], "must be an object"),
        ([{"name": "x", "type": "boolean"}, {"name": "x", "type": "boolean"}], "'x' is declared twice"),
        ([{"name": "d", "type": "categorical"}], "'d' (categorical) needs 'levels'"),
        ([{"name": "d", "type": "categorical", "levels": []}], "'d'"),
        ([{"name": "d", "type": "categorical", "levels": ["a", "a"]}], "'d': duplicate levels"),
        ([{"name": "d", "type": "categorical", "levels": ["a", 3]}], "'d': level 3"),
        ([{"name": "d", "type": "categorical", "levels": [str(i) for i in range(65)]}], "'d': 65 levels"),
        ([{"name": "h", "type": "cyclic"}], "'h' (cyclic) needs 'period'"),
        ([{"name": "h", "type": "cyclic", "period": 0}], "'h': 'period' must be positive"),
        ([{"name": "h", "type": "cyclic", "period": float("inf")}], "'h': 'period' must be a finite number"),
        ([{"name": "v", "type": "numeric"}], "'v' (numeric) needs 'max'"),
        ([{"name": "v", "type": "numeric", "max": "100"}], "'v': 'max' must be a finite number"),
        ([{"name": "v", "type": "numeric", "min": 5, "max": 5}], "'v': 'max' (5.0) must be greater"),
        ([{"name": "r", "type": "hashed", "buckets": 1}], "'r': 'buckets'"),
        ([{"name": "r", "type": "hashed", "buckets": 10.5}], "'r': 'buckets'"),
        ([{"name": "r", "type": "hashed"}], "'r' (hashed) needs 'buckets'"),
        ([{"name": "b", "type": "boolean", "levels": ["x"]}], "'b': unknown parameter(s) levels"),
        ([{"name": f"f{i}", "type": "boolean"} for i in range(MAX_FEATURES + 1)], f"at most {MAX_FEATURES}"),
        (
            [{"name": f"r{i}", "type": "hashed", "buckets": 100} for i in range(3)],
            f"301 columns, at most {MAX_WIDTH}",
        ),
    ],
)
def test_schema_validation_errors(schema, message):
    with pytest.raises(PolicyConfigError) as error:
        ContextEncoder.from_schema(schema)
    assert message in str(error.value)


def test_empty_schema_is_intercept_only():
    enc = ContextEncoder.from_schema([])
    assert enc.width == 1
    assert enc.encode({"anything": 1}).unknown_keys == ("anything",)


# -- property: any JSON-ish context encodes to a finite vector of the declared width ----
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**500), max_value=10**500)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
    | st.sampled_from(["mobile", "desktop", "12", "1e400", "-inf", "nan", "true"])
)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4), max_leaves=10)
keys = st.sampled_from([f["name"] for f in SCHEMA]) | st.text(max_size=10)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(keys, json_values, max_size=8))
def test_any_json_context_encodes_to_finite_vector(context):
    encoder = ContextEncoder.from_schema(SCHEMA)
    encoded = encoder.encode(context)
    assert encoded.vector.shape == (encoder.width,)
    assert encoded.vector.dtype == np.float64
    assert np.isfinite(encoded.vector).all()
    assert encoded.vector[0] == 1.0
    assert np.all(np.abs(encoded.vector) <= 1.0)
    declared = {f["name"] for f in SCHEMA}
    assert set(encoded.unknown_keys) == {k for k in context if k not in declared}
    assert set(encoded.missing).isdisjoint(encoded.invalid)
    levels = encoder.segment_levels(context)
    assert set(levels) == {"device", "returning"} and all(isinstance(v, str) for v in levels.values())


feature_specs = st.one_of(
    st.builds(lambda n: {"type": "categorical", "levels": [f"l{i}" for i in range(n)]}, st.integers(1, 10)),
    st.builds(lambda p: {"type": "cyclic", "period": p}, st.floats(0.5, 1e6)),
    st.builds(lambda lo, span: {"type": "numeric", "min": lo, "max": lo + span}, st.floats(-1e6, 1e6), st.floats(1e-3, 1e6)),
    st.builds(lambda b: {"type": "hashed", "buckets": b}, st.integers(2, 32)),
    st.just({"type": "boolean"}),
)


@settings(max_examples=100, deadline=None)
@given(st.lists(feature_specs, min_size=0, max_size=6), st.lists(json_values, min_size=6, max_size=6))
def test_random_schemas_encode_random_values(specs, values):
    schema = [{"name": f"f{i}", **spec} for i, spec in enumerate(specs)]
    encoder = ContextEncoder.from_schema(schema)
    context = {f"f{i}": values[i] for i in range(len(specs))}
    vector = encoder.encode(context).vector
    assert vector.shape == (encoder.width,) and np.isfinite(vector).all()
    assert encoder.width == 1 + sum(len(f["columns"]) for f in encoder.describe()["features"])
    assert math.isclose(vector[0], 1.0)
