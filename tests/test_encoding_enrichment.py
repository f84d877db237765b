"""Server-side enrichment of contexts: local time, device class, visit counts."""
from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bandits import device_class, enrich, hour_and_weekday

NEW_YEAR_2024 = 1704067200  # 2024-01-01 00:00:00 UTC, a Monday


def test_hour_and_weekday_utc():
    assert hour_and_weekday(NEW_YEAR_2024) == (0, 0)
    assert hour_and_weekday(NEW_YEAR_2024 + 13 * 3600 + 59 * 60, None) == (13, 0)
    assert hour_and_weekday(0) == (0, 3)  # 1970-01-01 was a Thursday


def test_js_offset_convention():
    # getTimezoneOffset() is minutes *behind* UTC: UTC+2 (Paris, summer) sends -120.
    assert hour_and_weekday(NEW_YEAR_2024, -120) == (2, 0)
    # UTC-5 (New York, winter) sends 300: still Sunday 19h locally.
    assert hour_and_weekday(NEW_YEAR_2024, 300) == (19, 6)
    # Half-hour zones: India (UTC+5:30) sends -330.
    assert hour_and_weekday(NEW_YEAR_2024, -330) == (5, 0)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 4_000_000_000), st.integers(-840, 840))
def test_matches_datetime(epoch, offset):
    local = dt.datetime.fromtimestamp(epoch, dt.timezone(dt.timedelta(minutes=-offset)))
    assert hour_and_weekday(float(epoch), offset) == (local.hour, local.weekday())


@pytest.mark.parametrize("offset", [900, -900, True])
def test_bad_offsets_raise(offset):
    with pytest.raises(ValueError):
        hour_and_weekday(NEW_YEAR_2024, offset)


def test_non_finite_timestamp_raises():
    with pytest.raises(ValueError):
        hour_and_weekday(float("nan"), 0)


@pytest.mark.parametrize(
    "user_agent, expected",
    [
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1", "mobile"),
        ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Mobile Safari/537.36", "mobile"),
        ("Mozilla/5.0 (Windows Phone 10.0; Android 6.0.1; Microsoft; Lumia 950) Edge/15.15063", "mobile"),
        ("Opera/9.80 (J2ME/MIDP; Opera Mini/9.80 (S60; SymbOS; Opera Mobi/23.348; U; en) Presto/2.5.25 Version/10.54", "mobile"),
        ("Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1", "tablet"),
        ("Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36", "tablet"),
        ("Mozilla/5.0 (Linux; U; Android 4.0.3; en-us; KFTT Build/IML74K) AppleWebKit/535.19 (KHTML, like Gecko) Silk/3.4 Safari/535.19", "tablet"),
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36", "desktop"),
        ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_1) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15", "desktop"),
        ("Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0", "desktop"),
        ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "bot"),
        ("Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "bot"),
        ("Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", "bot"),
        ("facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)", "bot"),
        ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0 Safari/537.36", "bot"),
        ("curl/8.4.0", "bot"),
        ("python-requests/2.31.0", "bot"),
        ("", "bot"),
        (None, "bot"),
    ],
)
def test_device_class(user_agent, expected):
    assert device_class(user_agent) == expected


REQUEST = dict(epoch_seconds=NEW_YEAR_2024 + 9 * 3600, tz_offset_minutes=-60, user_agent="Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X)", visit_count=3)


def test_enrich_fills_only_declared_keys():
    out = enrich({"plan": "pro"}, ["hour", "device", "returning"], **REQUEST)
    assert out == {"plan": "pro", "hour": 10, "device": "tablet", "returning": True}


def test_enrich_fills_everything_declared():
    out = enrich({}, ["hour", "weekday", "device", "returning", "visits"], **REQUEST)
    assert out == {"hour": 10, "weekday": 0, "device": "tablet", "returning": True, "visits": 3}


def test_client_values_win_and_input_is_not_mutated():
    context = {"device": "desktop", "hour": 22, "visits": None}
    out = enrich(context, ["hour", "device", "visits"], **REQUEST)
    assert out == {"device": "desktop", "hour": 22, "visits": 3}  # null counts as not sent
    assert context == {"device": "desktop", "hour": 22, "visits": None}


def test_enrich_skips_unknown_inputs_and_tolerates_bad_offset():
    assert enrich(None, ["hour", "device", "returning"]) == {}
    first_visit = enrich({}, ["returning", "visits"], visit_count=0)
    assert first_visit == {"returning": False, "visits": 0}
    assert enrich({}, ["hour"], epoch_seconds=NEW_YEAR_2024, tz_offset_minutes=99999) == {"hour": 0}  # falls back to UTC
    assert enrich({}, ["hour"], epoch_seconds=float("inf")) == {}
