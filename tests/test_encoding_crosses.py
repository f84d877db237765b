"""Declared crosses and the short form of a context schema."""
from __future__ import annotations

import numpy as np
import pytest

from bandits import ContextEncoder, PolicyConfigError
from bandits.encoding import MAX_CROSSES, MAX_WIDTH
from bandits.schema import KNOWN_FEATURES, normalise_schema

SCHEMA = [
    {"name": "device", "type": "categorical", "levels": ["mobile", "desktop"]},
    {"name": "hour", "type": "cyclic", "period": 24},
    {"name": "returning", "type": "boolean"},
    {"name": "source", "type": "categorical", "levels": ["search", "social"]},
]


def test_cross_columns_are_the_outer_product_of_the_two_blocks():
    encoder = ContextEncoder.from_schema(SCHEMA, crosses=[["device", "hour"], ["returning", "source"]])
    plain = ContextEncoder.from_schema(SCHEMA)
    assert encoder.main_width == plain.width == 1 + 3 + 2 + 2 + 3
    assert encoder.width == plain.width + 3 * 2 + 2 * 3
    columns = encoder.columns()
    assert columns[: plain.width] == plain.columns()
    assert columns[plain.width : plain.width + 2] == ["device=mobile*hour:sin", "device=mobile*hour:cos"]
    assert columns[-1] == "returning=false*source=(other)"
    context = {"device": "mobile", "hour": 6, "returning": False, "source": "social"}
    x = encoder.encode(context).vector
    np.testing.assert_array_equal(x[: plain.width], plain.encode(context).vector)
    cross = dict(zip(columns, x))
    assert cross["device=mobile*hour:sin"] == pytest.approx(1.0)  # sin(2 pi 6/24)
    assert cross["device=desktop*hour:sin"] == 0.0
    assert cross["returning=false*source=social"] == 1.0
    assert sum(v for c, v in cross.items() if c.startswith("returning=") and "*" in c) == 1.0


def test_missing_value_zeroes_its_crosses():
    encoder = ContextEncoder.from_schema(SCHEMA, crosses=[["device", "hour"]])
    x = encoder.encode({"hour": 20}).vector
    assert np.all(x[encoder.main_width :] == 0.0)
    assert encoder.describe()["crosses"] == [["device", "hour"]]


def test_column_groups_and_blocks():
    encoder = ContextEncoder.from_schema(SCHEMA, crosses=[["device", "hour"]])
    groups = encoder.column_groups()
    assert len(groups) == encoder.width and groups[0] == 0
    assert groups[1:4] == [1, 1, 1] and groups[-6:] == [5] * 6
    labels = [label for label, _, _ in encoder.column_blocks()]
    assert labels == ["device", "hour", "returning", "source", "device*hour"]


@pytest.mark.parametrize(
    "crosses, message",
    [
        ("device", "list of feature-name pairs"),
        ([["device"]], "cross #0 must be a pair"),
        ([["device", 3]], "cross #0 must be a pair"),
        ([["device", "plan"]], "'plan' is not a declared feature"),
        ([["device", "device"]], "crosses 'device' with itself"),
        ([["device", "hour"], ["hour", "device"]], r"cross #1 \('hour', 'device'\) is declared twice"),
        ([["device", "hour"]] * (MAX_CROSSES + 1), f"at most {MAX_CROSSES}"),
    ],
)
def test_bad_crosses_are_refused_by_name(crosses, message):
    with pytest.raises(PolicyConfigError, match=message):
        ContextEncoder.from_schema(SCHEMA, crosses=crosses)


def test_crosses_count_towards_the_width_limit():
    schema = [{"name": "a", "type": "hashed", "buckets": 20}, {"name": "b", "type": "hashed", "buckets": 20}]
    ContextEncoder.from_schema(schema)
    with pytest.raises(PolicyConfigError, match=f"at most {MAX_WIDTH} allowed.*crosses add 400"):
        ContextEncoder.from_schema(schema, crosses=[["a", "b"]])


def test_short_form_infers_known_names_and_hashes_the_rest():
    features = normalise_schema(["device", "hour", "weekday", "returning", "visits", "source", "campaign"])
    by_name = {f["name"]: f for f in features}
    assert by_name["hour"] == {"name": "hour", "type": "cyclic", "period": 24}
    assert by_name["returning"] == {"name": "returning", "type": "boolean"}
    assert by_name["device"]["levels"] == ["mobile", "desktop", "tablet", "bot"]
    assert by_name["campaign"] == {"name": "campaign", "type": "hashed", "buckets": 16}
    assert set(KNOWN_FEATURES) <= set(by_name)
    encoder = ContextEncoder.from_schema(features, crosses=[["device", "hour"]])
    x = encoder.encode({"device": "mobile", "hour": 21, "source": "social", "campaign": "x"}).vector
    assert np.isfinite(x).all() and x[0] == 1.0
    # the normalised schema is plain data that rebuilds the same encoder
    assert ContextEncoder.from_schema(encoder.schema()).columns() == ContextEncoder.from_schema(features).columns()


def test_short_and_full_forms_mix():
    full = {"name": "plan", "type": "categorical", "levels": ["free", "pro"]}
    features = normalise_schema(["device", full, {"name": "hour"}, {"name": "source", "levels": ["ads"]}])
    assert features[1] == full
    assert features[2] == {"name": "hour", "type": "cyclic", "period": 24}
    assert features[3]["levels"] == ["ads"] and features[3]["type"] == "categorical"
    assert normalise_schema(None) == []


@pytest.mark.parametrize(
    "raw, message",
    [
        ("device", "must be a list"),
        ({"device": 1}, "must be a list"),
        (["device", 3], r"context item #1 \(3\)"),
        (["device", ""], "context item #1 is an empty name"),
        ([{"type": "boolean"}], "context item #0 needs a non-empty string 'name'"),
        ([None], r"context item #0 \(None\)"),
    ],
)
def test_short_form_errors_name_the_item(raw, message):
    with pytest.raises(PolicyConfigError, match=message):
        normalise_schema(raw)


def test_short_form_bad_names_are_refused_by_the_encoder():
    with pytest.raises(PolicyConfigError, match="feature name '1x'"):
        ContextEncoder.from_schema(normalise_schema(["1x"]))
    with pytest.raises(PolicyConfigError, match="declared twice"):
        ContextEncoder.from_schema(normalise_schema(["device", "device"]))
