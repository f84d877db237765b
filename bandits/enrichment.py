"""Context the server can fill in itself: local hour and weekday, device class, visits.

Pure functions: the caller passes the request's timestamp, time-zone offset, user
agent and visit count, so a test or a replay gets the same context every time.
"""
from __future__ import annotations

import math
import re
from typing import Any, Collection, Mapping

#: |offset| beyond 14 hours exists in no time zone (UTC-12 .. UTC+14).
MAX_TZ_OFFSET_MINUTES = 14 * 60

#: 1970-01-01 was a Thursday: weekday 3 when Monday is 0.
_EPOCH_WEEKDAY = 3

#: Keys :func:`enrich` may fill, each only when the experiment declares it.
ENRICHED_KEYS = ("hour", "weekday", "device", "returning", "visits")


def hour_and_weekday(epoch_seconds: float, tz_offset_minutes: int | None = None) -> tuple[int, int]:
    """Local hour (0-23) and weekday (0 = Monday ... 6 = Sunday) of a UNIX timestamp.

    ``tz_offset_minutes`` follows JavaScript's ``Date.getTimezoneOffset()``: minutes the
    browser's zone is *behind* UTC, i.e. UTC - local. Paris in summer (UTC+2) sends
    -120, New York in winter (UTC-5) sends 300, so local time = UTC - offset. ``None``
    means UTC. Raises ``ValueError`` for a non-finite timestamp or an offset outside
    +/- 14 hours.
    """
    if not math.isfinite(epoch_seconds):
        raise ValueError(f"timestamp must be finite, got {epoch_seconds!r}")
    offset = 0 if tz_offset_minutes is None else tz_offset_minutes
    if isinstance(offset, bool) or not isinstance(offset, (int, float)) or not abs(offset) <= MAX_TZ_OFFSET_MINUTES:
        raise ValueError(f"time-zone offset must be within +/-{MAX_TZ_OFFSET_MINUTES} minutes, got {offset!r}")
    local = math.floor(epoch_seconds - 60.0 * offset)
    days, seconds_of_day = divmod(local, 86400)
    return int(seconds_of_day // 3600), int((days + _EPOCH_WEEKDAY) % 7)


# Ordered: the first matching row wins. Bots first (crawlers often claim to be
# Mozilla on Android), then unambiguous phones (Windows Phone also says "Android"),
# then tablets (Android tablets omit "Mobile"; iPads say iPad), then other phones.
# Anything else is a desktop browser. iPadOS >= 13 sends a desktop Safari user agent
# and is classed "desktop": the string cannot tell.
_DEVICE_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "bot",
        re.compile(
            r"bot\b|bot/|crawl|spider|slurp|archiver|facebookexternalhit|embedly|preview|lighthouse|headless"
            r"|phantomjs|python-requests|python-urllib|aiohttp|httpx|curl/|wget/|go-http-client|java/|okhttp"
            r"|libwww|apache-httpclient|scrapy|node-fetch|axios/|postman",
            re.IGNORECASE,
        ),
    ),
    ("mobile", re.compile(r"iphone|ipod|windows phone|iemobile|blackberry|bb10|opera mini", re.IGNORECASE)),
    ("tablet", re.compile(r"ipad|tablet|kindle|silk/|playbook|nexus (7|9|10)\b|sm-t\d|android(?!.*mobile)", re.IGNORECASE)),
    ("mobile", re.compile(r"mobi|android|webos", re.IGNORECASE)),
)


def device_class(user_agent: str | None) -> str:
    """"mobile", "tablet", "desktop" or "bot" for a User-Agent header.

    An empty or absent user agent is "bot": every browser sends one.
    """
    if not isinstance(user_agent, str) or not user_agent.strip():
        return "bot"
    for label, pattern in _DEVICE_PATTERNS:
        if pattern.search(user_agent):
            return label
    return "desktop"


def _absent(context: Mapping[str, Any], key: str) -> bool:
    return context.get(key) is None


def enrich(
    context: Mapping[str, Any] | None,
    declared_names: Collection[str],
    *,
    epoch_seconds: float | None = None,
    tz_offset_minutes: int | None = None,
    user_agent: str | None = None,
    visit_count: int | None = None,
) -> dict:
    """A copy of ``context`` with server-known features filled in.

    Fills ``hour`` and ``weekday`` (from ``epoch_seconds`` and the browser's
    ``tz_offset_minutes``, see :func:`hour_and_weekday`), ``device`` (from
    ``user_agent``, see :func:`device_class`), and ``visits`` / ``returning`` from
    ``visit_count`` = the number of *earlier* visits the server has seen from this
    visitor (so ``returning`` is ``visit_count > 0``). A key is filled only when the
    experiment declares it and the client did not send it (absent or null); what the
    client sent always wins. An invalid offset falls back to UTC, and an input that is
    None leaves its keys alone.
    """
    enriched = dict(context) if isinstance(context, Mapping) else {}
    declared = set(declared_names)

    def wanted(key: str) -> bool:
        return key in declared and _absent(enriched, key)

    if epoch_seconds is not None and (wanted("hour") or wanted("weekday")):
        try:
            hour, weekday = hour_and_weekday(epoch_seconds, tz_offset_minutes)
        except (TypeError, ValueError):
            try:
                hour, weekday = hour_and_weekday(epoch_seconds, None)
            except (TypeError, ValueError):
                hour = weekday = None
        if hour is not None:
            if wanted("hour"):
                enriched["hour"] = hour
            if wanted("weekday"):
                enriched["weekday"] = weekday
    if user_agent is not None and wanted("device"):
        enriched["device"] = device_class(user_agent)
    if visit_count is not None and not isinstance(visit_count, bool) and visit_count >= 0:
        if wanted("visits"):
            enriched["visits"] = int(visit_count)
        if wanted("returning"):
            enriched["returning"] = visit_count > 0
    return enriched
