"""Every setting Lever reads, declared once: name, default, parser and help text.

Settings come from environment variables (12-factor, Heroku style) or from the
``test_config`` mapping given to ``create_app``. An unknown ``LEVER_*`` variable or a
value that does not parse stops the service at start with a message naming it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Mapping


class SettingsError(ValueError):
    """A setting is unknown or has a value that cannot be used."""


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise ValueError("must be a positive integer")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError("must be zero or a positive integer")
    return value


#: default of LEVER_MAX_ABS_VALUE, and the ceiling of every |value| bound (app.domain.bounds says why)
DEFAULT_MAX_ABS_VALUE = 1e9
MAX_ABS_VALUE_CEILING = 1e15


def _value_bound(text: str) -> float:
    value = float(text)
    if not 0 < value <= MAX_ABS_VALUE_CEILING:  # NaN fails too; inf is beyond the ceiling
        raise ValueError(f"must be a number above 0 and at most {MAX_ABS_VALUE_CEILING:g}")
    return value


def _boolean(text: str) -> bool:
    lowered = str(text).strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError("must be true or false")


def _choice(*options: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in options:
            raise ValueError(f"must be one of {', '.join(options)}")
        return text

    return parse


def _rate_limit(text: str) -> str:
    if text.strip():
        from limits import parse_many  # the rate-limit library's own parser

        parse_many(text)
    return text.strip()


def _database_url(text: str) -> str:
    if not text.startswith(("sqlite:///", "postgres://", "postgresql://")):
        raise ValueError("must start with sqlite:///, postgres:// or postgresql://")
    return text


def _host_list(text: str) -> str:
    hosts = [host.strip().lower() for host in text.split(",") if host.strip()]
    if any(not host.replace("-", "").replace(".", "").replace(":", "").replace("[", "").replace("]", "").isalnum()
           for host in hosts):
        raise ValueError("must be comma-separated host names, e.g. hooks.slack.com,alerts.example.com")
    return ",".join(hosts)


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    parse: Callable[[str], Any]
    help: str


SETTINGS: tuple[Setting, ...] = (
    Setting("DATABASE_URL", "sqlite:///lever.db", _database_url,
            "Where the data lives: sqlite:///path.db (relative to the working directory; sqlite://// for an absolute path) or postgres://…"),
    Setting("LEVER_ADMIN_TOKEN", "", str,
            "Bearer token for admin endpoints. Empty: a random one is generated and stored in the database at init-db."),
    Setting("LEVER_SECRET_KEY", "", str,
            "Key that signs assignment tokens and session cookies. Empty: generated and stored in the database at init-db."),
    Setting("LEVER_REFRESH_MS", 1000, _positive_int,
            "How often (ms) each worker refreshes an experiment's posterior from the database."),
    Setting("LEVER_MAX_BODY_BYTES", 16384, _positive_int, "Largest accepted request body, in bytes."),
    Setting("LEVER_MAX_VISITOR_CHARS", 200, _positive_int, "Longest accepted visitor id."),
    Setting("LEVER_MAX_CONTEXT_KEYS", 50, _positive_int, "Most keys accepted in one context object."),
    Setting("LEVER_MAX_STRING_CHARS", 200, _positive_int, "Longest accepted string value in a context."),
    Setting("LEVER_MAX_BATCH", 20, _positive_int, "Most experiments assigned in one batched assign request."),
    Setting("LEVER_MAX_ABS_VALUE", DEFAULT_MAX_ABS_VALUE, _value_bound,
            "Largest accepted |number| of a reward value or context number (above 0, at most 1e15); beyond it a "
            "400 value_out_of_range. An experiment's max_abs_value can only tighten it."),
    Setting("LEVER_POLICY_DRAWS", 10000, _positive_int,
            "Posterior draws used to estimate Thompson-sampling allocation probabilities at each refresh."),
    Setting("LEVER_SQLITE_BUSY_TIMEOUT_MS", 5000, _positive_int,
            "How long a SQLite write waits for the database lock before answering 503 (nothing written)."),
    Setting("LEVER_SQLITE_SYNCHRONOUS", "NORMAL", _choice("NORMAL", "FULL"),
            "SQLite synchronous pragma: NORMAL (WAL, survives process crashes) or FULL (also survives power loss)."),
    Setting("LEVER_GROUP_COMMIT", True, _boolean,
            "Commit the assignments and rewards of concurrent requests together, one transaction per batch, "
            "from one writer thread per process; each request is answered after the commit that holds its row."),
    Setting("LEVER_GROUP_COMMIT_MAX_BATCH", 64, _positive_int, "Most requests' writes committed in one transaction."),
    Setting("LEVER_GROUP_COMMIT_WAIT_US", 0, _non_negative_int,
            "Microseconds the writer waits for a batch to fill once a write is pending (0: commit at once; "
            "writes that arrive meanwhile form the next batch)."),
    Setting("LEVER_GROUP_COMMIT_LEADER", True, _boolean,
            "Leader/follower group commit on SQLite: the request that finds no commit in progress commits the "
            "pending writes itself, on its own thread, while the others queue for the next batch (used when "
            "2 x LEVER_SQLITE_BUSY_TIMEOUT_MS <= LEVER_WRITE_TIMEOUT_MS; false, or PostgreSQL: a writer thread "
            "per process commits every batch)."),
    Setting("LEVER_FAST_PATH", True, _boolean,
            "Serve POST and OPTIONS of /api/v1/assign, /api/v1/reward and /api/v1/events from a plain WSGI "
            "callable in front of Flask (same answers, same checks, less CPU per request); false: Flask serves "
            "them too."),
    Setting("LEVER_WRITE_TIMEOUT_MS", 10000, _positive_int,
            "Longest a request waits for its group commit: after it, 503 (nothing written if the batch had not "
            "started, else outcome_unknown)."),
    Setting("LEVER_ENV", "development", _choice("development", "production", "test"),
            "Deployment mode; production refuses weak secrets."),
    Setting("LEVER_RATE_LIMIT", "100/second;3000/minute", _rate_limit,
            "Per-client limit on the public endpoints (assign and reward together), e.g. 100/second;3000/minute; empty disables."),
    Setting("LEVER_RATE_LIMIT_STORAGE", "memory://", str,
            "Where rate-limit counters live: memory:// (per worker) or redis://host:6379 (shared by all workers)."),
    Setting("LEVER_PROXY_COUNT", 0, _non_negative_int,
            "Number of trusted reverse proxies in front of Lever (Heroku: 1), for the client address."),
    Setting("LEVER_HASH_VISITORS", False, _boolean,
            "Store visitor ids as keyed hashes (HMAC with LEVER_SECRET_KEY) instead of as sent. Set before collecting data."),
    Setting("LEVER_GUARDRAIL_INTERVAL_S", 60, _non_negative_int,
            "How often (s) guardrails are evaluated in the background (one process per interval, by a database "
            "lease), after folding the metric values of running experiments; 0 turns the schedule off (stats "
            "requests still evaluate them and fold)."),
    Setting("LEVER_MAX_EVENTS", 100, _positive_int, "Most events accepted in one POST /api/v1/events request."),
    Setting("LEVER_RETENTION_DAYS", 0, _non_negative_int,
            "Prune raw events older than this many days (flask prune-events); 0 keeps them. Totals are kept."),
    Setting("LEVER_MONITOR_INTERVAL_S", 60, _positive_int,
            "How often (s) the webhook worker (flask deliver) evaluates running experiments for webhook events."),
    Setting("LEVER_WEBHOOK_RETENTION_DAYS", 30, _non_negative_int,
            "Delete webhook events whose deliveries all finished (delivered or given up) more than this many days "
            "ago (flask deliver, hourly, and flask prune-events); 0 keeps them. Pending deliveries are never deleted."),
    Setting("LEVER_WEBHOOK_ALLOWED_HOSTS", "", _host_list,
            "Comma-separated host names webhooks may call (checked at registration and at each delivery); empty allows any."),
)

SETTINGS_BY_NAME: dict[str, Setting] = {setting.name: setting for setting in SETTINGS}


def load_settings(environ: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Parse every declared setting; reject unknown ``LEVER_*`` names and bad values."""
    environ = os.environ if environ is None else environ
    overrides = overrides or {}
    unknown = sorted(name for name in environ if name.startswith("LEVER_") and name not in SETTINGS_BY_NAME)
    if unknown:
        raise SettingsError(f"unknown setting(s): {', '.join(unknown)}; see README 'Settings'")
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        if setting.name in overrides:
            values[setting.name] = overrides[setting.name]
            continue
        raw = environ.get(setting.name)
        if raw is None:
            values[setting.name] = setting.default
            continue
        try:
            values[setting.name] = setting.parse(raw)
        except ValueError as error:
            raise SettingsError(f"invalid {setting.name}={raw!r}: {error}") from None
    return values
