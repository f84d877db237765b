"""Opt-in cyclic shapes: ``harmonics`` (a Fourier series) and declared ``parts`` (day parts).

The default cyclic encoding must not change (stored model widths of existing experiments
depend on it); the richer ones must make a step in the hour effect linear in the columns.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from bandits import ContextEncoder, PolicyConfigError
from bandits.describe import segment_label

HOUR = {"name": "hour", "type": "cyclic", "period": 24}


def test_default_cyclic_encoding_and_schema_are_unchanged():
    encoder = ContextEncoder.from_schema([HOUR])
    assert encoder.width == 3 and encoder.columns() == ["intercept", "hour:sin", "hour:cos"]
    assert encoder.schema() == [{"name": "hour", "type": "cyclic", "period": 24.0}]  # no new keys stored
    np.testing.assert_array_equal(encoder.encode({"hour": 6}).vector, [1.0, math.sin(math.pi / 2), math.cos(math.pi / 2)])
    np.testing.assert_array_equal(encoder.encode({"hour": -18}).vector, encoder.encode({"hour": -18}).vector)


def test_harmonics_add_sin_cos_pairs():
    encoder = ContextEncoder.from_schema([{**HOUR, "harmonics": 3}])
    assert encoder.columns()[1:] == ["hour:sin", "hour:cos", "hour:sin2", "hour:cos2", "hour:sin3", "hour:cos3"]
    x = encoder.encode({"hour": 3}).vector
    angle = 2 * math.pi * 3 / 24
    np.testing.assert_allclose(x[1:], [math.sin(angle), math.cos(angle), math.sin(2 * angle), math.cos(2 * angle),
                                       math.sin(3 * angle), math.cos(3 * angle)])
    assert ContextEncoder.from_schema(encoder.schema()).columns() == encoder.columns()  # stored schema reads back


@pytest.mark.parametrize("hour, part", [(0, 0), (8.99, 0), (9, 1), (17, 1), (18, 2), (23.5, 2), (24, 0), (-1, 2),
                                        (48 + 10, 1)])
def test_parts_one_hot_the_declared_part_with_wrap_around(hour, part):
    encoder = ContextEncoder.from_schema([{**HOUR, "parts": [0, 9, 18]}])
    assert encoder.columns()[3:] == ["hour@0-9", "hour@9-18", "hour@18-0"]
    indicators = encoder.encode({"hour": hour}).vector[3:]
    assert indicators.tolist() == [1.0 if i == part else 0.0 for i in range(3)]


def test_parts_not_starting_at_zero_wrap_the_last_part():
    encoder = ContextEncoder.from_schema([{**HOUR, "parts": [6, 12, 18]}])  # 18-6 is the night
    assert encoder.columns()[3:] == ["hour@6-12", "hour@12-18", "hour@18-6"]
    assert encoder.encode({"hour": 3}).vector[3:].tolist() == [0.0, 0.0, 1.0]
    assert encoder.encode({"hour": None}).vector[1:].tolist() == [0.0] * 5  # missing: all zeros
    feature = encoder.features[0]
    assert segment_label(feature, 3) == "hour 18–6" and segment_label(feature, 7) == "hour 6–12"


def test_a_step_in_the_hour_is_linear_in_the_parts_not_in_one_sinusoid():
    """The planted effect +1 for 18-23h: least squares on the parts is exact, on sin/cos it is not."""
    hours = np.arange(24)
    step = (hours >= 18).astype(float)
    for spec, exact in (({}, False), ({"harmonics": 2}, False), ({"parts": [0, 9, 18]}, True)):
        encoder = ContextEncoder.from_schema([{**HOUR, **spec}])
        xs = np.stack([encoder.encode({"hour": int(h)}).vector for h in hours])
        fitted = xs @ np.linalg.lstsq(xs, step, rcond=None)[0]
        assert (np.abs(fitted - step).max() < 1e-9) == exact, spec


def test_crosses_of_a_rich_cyclic_feature_have_the_product_width():
    schema = [{"name": "device", "type": "categorical", "levels": ["mobile", "desktop"]},
              {**HOUR, "harmonics": 2, "parts": [0, 9, 18]}]
    encoder = ContextEncoder.from_schema(schema, [["device", "hour"]])
    assert encoder.main_width == 1 + 3 + 7 and encoder.width == encoder.main_width + 3 * 7
    x = encoder.encode({"device": "mobile", "hour": 20}).vector
    assert x[encoder.columns().index("device=mobile*hour@18-0")] == 1.0
    assert x[encoder.columns().index("device=desktop*hour@18-0")] == 0.0


@pytest.mark.parametrize("extra, word", [
    ({"harmonics": 0}, "harmonics"), ({"harmonics": 5}, "harmonics"), ({"harmonics": 1.5}, "harmonics"),
    ({"harmonics": True}, "harmonics"), ({"parts": [0]}, "parts"), ({"parts": "0,9"}, "parts"),
    ({"parts": [9, 0]}, "parts"), ({"parts": [0, 0, 9]}, "parts"), ({"parts": [0, 24]}, "parts"),
    ({"parts": [-1, 9]}, "parts"), ({"parts": [0, "9"]}, "parts"), ({"parts": [0, float("nan")]}, "parts"),
    ({"parts": list(range(13))}, "parts"), ({"shape": "step"}, "shape"),
])
def test_bad_cyclic_shapes_are_refused_naming_the_field(extra, word):
    with pytest.raises(PolicyConfigError, match=word):
        ContextEncoder.from_schema([{**HOUR, **extra}])
