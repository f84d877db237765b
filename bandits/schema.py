"""The short form of a context schema: ``"context": ["device", "hour", "source"]``.

A new user writes the names of the context keys they send (or that the server fills
in, see :mod:`bandits.enrichment`); :func:`normalise_schema` turns that into the full
feature definitions :meth:`~bandits.encoding.ContextEncoder.from_schema` validates.
Names the service knows get the encoding that fits them:

===========  ===================================================================
name         inferred feature
===========  ===================================================================
device       categorical: mobile, desktop, tablet, bot (what ``device_class`` says)
hour         cyclic, period 24 (23h and 0h are neighbours)
weekday      cyclic, period 7
returning    boolean
visits       numeric in [0, 20] (clipped: 20 earlier visits or more look alike)
source       categorical: search, social, email, direct, referral, paid
(any other)  hashed into 16 buckets (any string; no levels to declare)
===========  ===================================================================

Items may mix both forms: a string, an object with only a ``name`` (inferred as
above), or a full feature object (kept as it is). The result is plain data, so it is
what the service should store: the stored schema then never depends on this table.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from .base import PolicyConfigError

#: Inferred feature definitions of the names the service knows (see module doc).
KNOWN_FEATURES: dict[str, dict[str, Any]] = {
    "device": {"type": "categorical", "levels": ["mobile", "desktop", "tablet", "bot"]},
    "hour": {"type": "cyclic", "period": 24},
    "weekday": {"type": "cyclic", "period": 7},
    "returning": {"type": "boolean"},
    "visits": {"type": "numeric", "min": 0, "max": 20},
    "source": {"type": "categorical", "levels": ["search", "social", "email", "direct", "referral", "paid"]},
}

#: How a name the service does not know is encoded: any string value, no levels needed.
DEFAULT_FEATURE: dict[str, Any] = {"type": "hashed", "buckets": 16}


def infer_feature(name: str) -> dict[str, Any]:
    """The full definition the short form gives ``name``."""
    return {"name": name, **KNOWN_FEATURES.get(name, DEFAULT_FEATURE)}


def normalise_schema(raw: Any) -> list[dict[str, Any]]:
    """Full feature definitions for a schema in short, full or mixed form.

    Raises :class:`PolicyConfigError` naming the item (position and value) that is
    neither a name nor an object with a string ``name``. The definitions themselves are
    validated by ``ContextEncoder.from_schema``, which names the feature at fault.
    """
    if raw is None:
        return []
    if isinstance(raw, (str, bytes)) or not isinstance(raw, Sequence):
        raise PolicyConfigError(
            'context must be a list of feature names or feature objects, e.g. ["device", "hour", "source"]'
        )
    features: list[dict[str, Any]] = []
    for position, item in enumerate(raw):
        if isinstance(item, str):
            if not item.strip():
                raise PolicyConfigError(f"context item #{position} is an empty name")
            features.append(infer_feature(item))
        elif isinstance(item, Mapping):
            name = item.get("name")
            if not isinstance(name, str) or not name:
                raise PolicyConfigError(f"context item #{position} needs a non-empty string 'name', got {item!r:.80}")
            features.append(dict(item) if "type" in item else {**infer_feature(name), **item})
        else:
            raise PolicyConfigError(
                f"context item #{position} ({item!r:.40}) must be a feature name or an object with a 'name'"
            )
    return features
