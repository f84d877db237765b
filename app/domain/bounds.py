"""What any number or identifier a request carries may be: the |value| bound and the characters.

Numbers: every value is bounded at the edge by ``LEVER_MAX_ABS_VALUE`` (default
``DEFAULT_MAX_ABS_VALUE``), which an experiment may tighten with ``max_abs_value``. The
counters sum y, y² and y²/p² (p the propensity, at least 1/draws of the allocation
estimate, 1e-4 by default): with |y| <= 1e15 (the ceiling of every bound) one event adds
at most 1e30/p², 1e38 by default, so no realistic number of events takes a counter near
the float range (1.8e308) or the statistics' refusal threshold
(``stats.validation.MAX_MAGNITUDE``, 1e100). Sums are still checked finite before they are
written (``app.storage.records``): values older versions let in must not spread.

Identifiers and stored strings: control characters (C0 U+0000–U+001F, DEL U+007F, C1
U+0080–U+009F) and lone surrogates (U+D800–U+DFFF) are refused. PostgreSQL's text cannot
hold NUL and UTF-8 has no form for a lone surrogate; the rest are refused on both backends
alike so that one id means the same in logs, CSV exports and either database.
"""
from __future__ import annotations

import math
import re
from typing import Any

from ..settings import DEFAULT_MAX_ABS_VALUE, MAX_ABS_VALUE_CEILING
from .errors import ValidationError

__all__ = ["DEFAULT_MAX_ABS_VALUE", "MAX_ABS_VALUE_CEILING", "bounded", "identifier", "valid_bound"]

_REFUSED = re.compile("[\u0000-\u001f\u007f-\u009f\ud800-\udfff]")


def identifier(value: Any, name: str) -> str:
    """``value`` if it is a string without control characters or lone surrogates; else a 400
    ``invalid_characters`` (``invalid_request`` when it is not a string) naming ``name``."""
    if not isinstance(value, str):
        raise ValidationError(f"{name} must be a string")
    found = _REFUSED.search(value)
    if found is not None:
        raise ValidationError(f"{name} must not contain control characters or lone surrogates "
                              f"(U+{ord(found.group()):04X} at position {found.start()})", code="invalid_characters")
    return value


def bounded(number: float, bound: float, name: str) -> float:
    """``number`` if |number| <= ``bound``, else a 400 ``value_out_of_range`` naming ``name``."""
    if not abs(number) <= bound:
        raise ValidationError(f"{name} must be between {-bound:g} and {bound:g}", code="value_out_of_range")
    return number


def valid_bound(value: Any) -> bool:
    """Whether ``value`` can be a |value| bound: a positive finite number up to the ceiling."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        number = float(value)
    except OverflowError:  # an int beyond the float range
        return False
    return math.isfinite(number) and 0 < number <= MAX_ABS_VALUE_CEILING
