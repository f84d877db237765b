"""Webhook subscriptions: what an admin may register, and the rules it is checked against.

A subscription is a URL, the event types it wants, a secret that signs every delivery and
a payload format. The parser refuses anything else with a ``ValidationError`` (a 400 that
names the field), so nothing half-valid reaches storage. Lever calls whatever URL an admin
configures; ``allowed_hosts`` (``LEVER_WEBHOOK_ALLOWED_HOSTS``) narrows that when set.
"""
from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from typing import Any

from .errors import ValidationError

#: every event a webhook may subscribe to (the monitor and the operator actions raise them)
EVENT_TYPES: tuple[str, ...] = (
    "guardrail.failing",
    "srm.detected",
    "experiment.significant",
    "experiment.stopped",
    "personalisation.hurting",
)
#: payload formats: Lever's signed JSON event, or a Slack incoming-webhook message
FORMATS: tuple[str, ...] = ("json", "slack")
URL_SCHEMES: tuple[str, ...] = ("http", "https")
MAX_URL_CHARS = 2000
MIN_SECRET_CHARS, MAX_SECRET_CHARS = 16, 200
#: how many leading characters of the secret the API shows (never the rest)
SECRET_PREFIX_CHARS = 4
FIELDS = ("url", "events", "secret", "format")


@dataclass(frozen=True)
class WebhookSpec:
    url: str
    events: tuple[str, ...]
    secret: str
    format: str = "json"


def parse_allowed_hosts(text: str) -> frozenset[str]:
    """``LEVER_WEBHOOK_ALLOWED_HOSTS``: comma-separated host names; empty allows any host."""
    return frozenset(host.strip().lower() for host in text.split(",") if host.strip())


def url_problem(url: str, allowed_hosts: frozenset[str]) -> str | None:
    """Why Lever must not call ``url`` (None: it may). Checked at registration and at each delivery."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname
        _ = parts.port  # raises on a malformed port
    except ValueError:
        return "url is not a valid URL"
    if parts.scheme not in URL_SCHEMES:
        return "url must be an http:// or https:// URL"
    if not host:
        return "url must name a host"
    if parts.username is not None or parts.password is not None:
        return "url must not carry credentials (sign with the secret instead)"
    if allowed_hosts and host.lower() not in allowed_hosts:
        return f"host {host!r} is not in LEVER_WEBHOOK_ALLOWED_HOSTS"
    return None


def parse_webhook(body: Any, allowed_hosts: frozenset[str]) -> WebhookSpec:
    if not isinstance(body, dict):
        raise ValidationError("the body must be a JSON object with url, events and secret")
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        raise ValidationError(f"unknown field(s): {', '.join(unknown)}; a webhook takes {', '.join(FIELDS)}")
    url = body.get("url")
    if not isinstance(url, str) or not url or len(url) > MAX_URL_CHARS or not url.isprintable():
        raise ValidationError(f"url must be a string of 1 to {MAX_URL_CHARS} printable characters")
    problem = url_problem(url, allowed_hosts)
    if problem:
        raise ValidationError(problem)
    events = body.get("events")
    if (not isinstance(events, list) or not events or not all(isinstance(e, str) for e in events)
            or len(set(events)) != len(events)):
        raise ValidationError(f"events must be a non-empty list of distinct event types: {', '.join(EVENT_TYPES)}")
    unknown_events = [e for e in events if e not in EVENT_TYPES]
    if unknown_events:
        raise ValidationError(f"unknown event type(s) {', '.join(map(repr, unknown_events))}; "
                              f"known: {', '.join(EVENT_TYPES)}")
    secret = body.get("secret")
    if (not isinstance(secret, str) or not MIN_SECRET_CHARS <= len(secret) <= MAX_SECRET_CHARS
            or not secret.isprintable()):
        raise ValidationError(f"secret must be a string of {MIN_SECRET_CHARS} to {MAX_SECRET_CHARS} "
                              "printable characters")
    fmt = body.get("format", "json")
    if fmt not in FORMATS:
        raise ValidationError(f"format must be one of {', '.join(FORMATS)}")
    return WebhookSpec(url=url, events=tuple(events), secret=secret, format=fmt)
