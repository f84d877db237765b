"""Schema migrations, shared by the backends as plain table definitions.

``MIGRATIONS[n]`` upgrades a database from version n-1 to n; a fresh database runs all
of them in order. Never edit a released migration: add the next one.
"""
from __future__ import annotations

from typing import Callable

import sqlite_utils


def _v1(db: sqlite_utils.Database) -> None:
    db["experiments"].create(
        {
            "id": int, "key": str, "name": str, "mode": str, "reward": str, "control": str, "holdout": float,
            "min_share": float, "reward_window_s": int, "sticky": int, "context": str, "options": str,
            "status": str, "winner": str, "created_at": float, "updated_at": float,
        },
        pk="id", not_null={"key", "name", "mode", "reward", "control", "status"},
    )
    db["experiments"].create_index(["key"], unique=True)
    db["variants"].create(
        {"id": int, "experiment_id": int, "key": str, "position": int, "payload": str, "weight": float},
        pk="id", foreign_keys=[("experiment_id", "experiments", "id")], not_null={"experiment_id", "key"},
    )
    db["variants"].create_index(["experiment_id", "key"], unique=True)
    db["assignments"].create(
        {
            "id": int, "experiment_id": int, "variant_id": int, "visitor": str, "sticky_key": str,
            "context": str, "probabilities": str, "propensity": float, "holdout": int, "model_version": int,
            "created_at": float, "reward_total": float, "reward_count": int, "segments": str,
        },
        pk="id",
        foreign_keys=[("experiment_id", "experiments", "id"), ("variant_id", "variants", "id")],
        not_null={"experiment_id", "variant_id", "visitor", "propensity", "holdout", "created_at",
                  "reward_total", "reward_count"},
        defaults={"reward_total": 0.0, "reward_count": 0},
    )
    # sticky_key is the visitor for sticky experiments and NULL otherwise (NULLs never collide)
    db["assignments"].create_index(["experiment_id", "sticky_key"], unique=True)
    db["assignments"].create_index(["experiment_id", "visitor"])
    db["assignments"].create_index(["visitor"])
    db["rewards"].create(
        {"id": int, "assignment_id": int, "experiment_id": int, "value": float, "event_id": str, "created_at": float},
        pk="id", foreign_keys=[("assignment_id", "assignments", "id")],
        not_null={"assignment_id", "experiment_id", "value", "created_at"},
    )
    db["rewards"].create_index(["assignment_id", "event_id"], unique=True)
    db["rewards"].create_index(["experiment_id"])
    counters = {
        "assignments": int, "conversions": int, "reward_events": int, "reward_sum": float, "reward_sumsq": float,
        "expected_assignments": float, "inv_propensity_sum": float, "inv_propensity_sumsq": float,
        "ips_reward_sum": float, "ips_reward_sumsq": float, "ips_cross_sum": float,
    }
    # period: the hour (epoch seconds) of the assignments counted, so the counters double
    # as the report's time series; rewards count in the period of their assignment.
    db["arm_stats"].create(
        {"experiment_id": int, "variant_id": int, "holdout": int, "period": int, "shard": int, **counters},
        pk=("experiment_id", "variant_id", "holdout", "period", "shard"),
        not_null=set(counters) | {"experiment_id", "variant_id", "holdout", "period", "shard"},
        defaults={name: 0 for name in counters},
    )
    segment_counters = {"assignments": int, "conversions": int, "reward_sum": float, "reward_sumsq": float}
    db["segment_stats"].create(
        {"experiment_id": int, "feature": str, "level": str, "variant_id": int, "holdout": int, "shard": int,
         **segment_counters},
        pk=("experiment_id", "feature", "level", "variant_id", "holdout", "shard"),
        not_null=set(segment_counters) | {"experiment_id", "feature", "level", "variant_id", "holdout", "shard"},
        defaults={name: 0 for name in segment_counters},
    )
    db["model_state"].create(
        {"experiment_id": int, "variant_id": int, "state": bytes},
        pk=("experiment_id", "variant_id"),
    )


#: meta key: assignments with an id up to this one are counted in arm_stats and segment_stats
FOLDED_THROUGH_KEY = "counters_folded_through"


def _v2(db: sqlite_utils.Database) -> None:
    """Decision counters are folded in batches (``SQLiteStorage``), no longer per assign.

    v1 counted every assignment in its own transaction, so the watermark starts at the
    newest one. The (experiment_id, visitor) index goes: the (visitor) index serves the
    same lookups (a visitor has a handful of rows) and each index costs every insert a
    page write.
    """
    db.execute("DROP INDEX IF EXISTS idx_assignments_experiment_id_visitor")
    db.execute("INSERT INTO meta (key, value) SELECT ?, COALESCE(MAX(id), 0) FROM assignments",
               [FOLDED_THROUGH_KEY])


#: SQL both databases run to keep audit entries as written (no edits, no deletions)
AUDIT_IMMUTABLE_MESSAGE = "audit entries are never edited or deleted"


def _v3(db: sqlite_utils.Database) -> None:
    """Teams: accounts, invitations, API keys and the audit log.

    Secrets are stored as hashes only: passwords as argon2 strings, invitation tokens and
    API keys as SHA-256 hex (unique: the lookup index). ``audit_log`` refuses UPDATE and
    DELETE by trigger, so no code path can rewrite history.
    """
    db["accounts"].create(
        {"id": int, "email": str, "role": str, "password_hash": str, "active": int, "session_generation": int,
         "created_at": float, "updated_at": float, "last_login_at": float},
        pk="id", not_null={"email", "role", "password_hash", "active", "session_generation", "created_at",
                           "updated_at"},
        defaults={"active": 1, "session_generation": 0},
    )
    db["accounts"].create_index(["email"], unique=True)
    db["invitations"].create(
        {"id": int, "token_hash": str, "email": str, "role": str, "created_by": str, "created_at": float,
         "expires_at": float, "accepted_at": float},
        pk="id", not_null={"token_hash", "email", "role", "created_by", "created_at", "expires_at"},
    )
    db["invitations"].create_index(["token_hash"], unique=True)
    db["api_keys"].create(
        {"id": int, "name": str, "role": str, "prefix": str, "secret_hash": str, "created_by": str,
         "created_at": float, "last_used_at": float, "revoked_at": float},
        pk="id", not_null={"name", "role", "prefix", "secret_hash", "created_by", "created_at"},
    )
    db["api_keys"].create_index(["secret_hash"], unique=True)
    db["audit_log"].create(
        {"id": int, "at": float, "actor": str, "action": str, "experiment_key": str, "target": str,
         "before_json": str, "after_json": str},
        pk="id", not_null={"at", "actor", "action"},
    )
    db["audit_log"].create_index(["experiment_key", "id"])
    for event in ("UPDATE", "DELETE"):
        db.execute(f"CREATE TRIGGER audit_log_no_{event.lower()} BEFORE {event} ON audit_log "
                   f"BEGIN SELECT RAISE(ABORT, '{AUDIT_IMMUTABLE_MESSAGE}'); END")


def _v5(db: sqlite_utils.Database) -> None:
    """Webhooks: subscriptions, the outbox of events, one delivery row per (event, webhook),
    and the monitor's last known state per (experiment, condition, subject)."""
    db["webhooks"].create(
        {"id": int, "url": str, "secret": str, "format": str, "created_at": float},
        pk="id", not_null={"url", "secret", "format", "created_at"},
    )
    db["webhook_subscriptions"].create(
        {"webhook_id": int, "event_type": str}, pk=("webhook_id", "event_type"),
        foreign_keys=[("webhook_id", "webhooks", "id")],
    )
    db["webhook_subscriptions"].create_index(["event_type"])
    db["webhook_events"].create(
        {"id": int, "event_id": str, "type": str, "experiment_key": str, "payload": str, "created_at": float},
        pk="id", not_null={"event_id", "type", "payload", "created_at"},
    )
    db["webhook_events"].create_index(["event_id"], unique=True)
    db["webhook_deliveries"].create(
        {"id": int, "event_id": int, "webhook_id": int, "status": str, "attempts": int, "next_attempt_at": float,
         "last_status": int, "last_error": str, "claimed_by": str, "claimed_until": float, "created_at": float,
         "last_attempt_at": float, "delivered_at": float},
        pk="id", foreign_keys=[("event_id", "webhook_events", "id"), ("webhook_id", "webhooks", "id")],
        not_null={"event_id", "webhook_id", "status", "attempts", "next_attempt_at", "created_at"},
        defaults={"attempts": 0},
    )
    db["webhook_deliveries"].create_index(["event_id", "webhook_id"], unique=True)
    db["webhook_deliveries"].create_index(["status", "next_attempt_at"])
    db["webhook_deliveries"].create_index(["webhook_id"])
    db["monitor_state"].create(
        {"experiment_id": int, "condition": str, "subject": str, "state": str, "updated_at": float},
        pk=("experiment_id", "condition", "subject"), not_null={"state", "updated_at"},
    )


def _v4(db: sqlite_utils.Database) -> None:
    """Metrics and events: the metric catalogue, the site's events (one row per event, kept as
    history even for unexposed visitors), guardrail actions, stopped variants, and leases.

    events: unique (visitor, event_id) makes a retried event count once (NULL ids never
    collide); (visitor, name, ts, value) covers the metric aggregate, which seeks each exposed
    visitor's events of the metric's names in a time range.
    """
    db["metrics"].create({"key": str, "definition": str, "created_at": float, "updated_at": float},
                         pk="key", not_null={"definition"})
    db["events"].create(
        {"id": int, "visitor": str, "name": str, "value": float, "event_id": str, "ts": float, "created_at": float},
        pk="id", not_null={"visitor", "name", "value", "ts", "created_at"},
    )
    db["events"].create_index(["visitor", "event_id"], unique=True)
    db["events"].create_index(["visitor", "name", "ts", "value"])
    db["guardrail_actions"].create(
        {"id": int, "experiment_id": int, "metric": str, "variant": str, "action": str, "at": float,
         "evidence": str},
        pk="id", foreign_keys=[("experiment_id", "experiments", "id")],
        not_null={"experiment_id", "metric", "variant", "action", "at"},
    )
    db["guardrail_actions"].create_index(["experiment_id", "metric", "variant", "action"], unique=True)
    db["leases"].create({"name": str, "holder": str, "expires_at": float}, pk="name", not_null={"expires_at"})
    db.execute("ALTER TABLE experiments ADD COLUMN stopped_variants TEXT")


#: v7: the materialised per-visitor metric values (``metric_fold``), the same DDL on both backends
#: (SQLite reads DOUBLE PRECISION as REAL). metric_values is keyed by (experiment,
#: metric, variant, slice, exposure) so the per-slice GROUP BY of a rebuild reads it in key
#: order; (assignment_id) serves erasure.
METRIC_VALUES_DDL = (
    """CREATE TABLE metric_state (
        experiment_id BIGINT NOT NULL, metric_key TEXT NOT NULL, fingerprint TEXT NOT NULL,
        events_through BIGINT NOT NULL, assignments_through BIGINT NOT NULL,
        shift_y DOUBLE PRECISION NOT NULL, shift_x DOUBLE PRECISION NOT NULL, PRIMARY KEY (experiment_id, metric_key))""",
    """CREATE TABLE metric_values (
        experiment_id BIGINT NOT NULL, metric_key TEXT NOT NULL, variant_id BIGINT NOT NULL,
        holdout INTEGER NOT NULL, assignment_id BIGINT NOT NULL, t0 DOUBLE PRECISION NOT NULL, propensity DOUBLE PRECISION NOT NULL,
        y DOUBLE PRECISION NOT NULL, x DOUBLE PRECISION NOT NULL, fy DOUBLE PRECISION NOT NULL, fx DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (experiment_id, metric_key, variant_id, holdout, assignment_id))""",
    "CREATE INDEX idx_metric_values_assignment_id ON metric_values (assignment_id)",
    """CREATE TABLE metric_slices (
        experiment_id BIGINT NOT NULL, metric_key TEXT NOT NULL, variant_id BIGINT NOT NULL,
        holdout INTEGER NOT NULL, visitors BIGINT NOT NULL, s_y DOUBLE PRECISION NOT NULL, s_yy DOUBLE PRECISION NOT NULL,
        s_x DOUBLE PRECISION NOT NULL, s_xx DOUBLE PRECISION NOT NULL, s_xy DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (experiment_id, metric_key, variant_id, holdout))""",
)


def _v7(db: sqlite_utils.Database) -> None:
    """Materialised metric values (issue #15). Number 6 belongs to another branch: the
    migration loop runs every number above the stored version in order, so a gap is fine."""
    for statement in METRIC_VALUES_DDL:
        db.execute(statement)


#: v8: the reward counters' shift (issue #16), the same DDL on both backends. experiments.reward_shift
#: is K, set by the experiment's first numeric reward (its value) or by a rebuild (the mean of the
#: rewarded outcomes); NULL means 0 — no reward yet, or rewards counted before v8 as raw sums, which
#: are the sums about K = 0, so nothing is recounted on upgrade. arm_stats gains the inverse-propensity
#: sums over the rewarded assignments, which turn the rewarded-only IPS sums into sums over every
#: assignment (``stats.welford``); before v8 they are 0, which only ever meets K = 0.
REWARD_SHIFT_DDL = (
    "ALTER TABLE experiments ADD COLUMN reward_shift DOUBLE PRECISION",
    "ALTER TABLE arm_stats ADD COLUMN rewarded_inv_sum DOUBLE PRECISION NOT NULL DEFAULT 0",
    "ALTER TABLE arm_stats ADD COLUMN rewarded_inv_sumsq DOUBLE PRECISION NOT NULL DEFAULT 0",
)


def _v8(db: sqlite_utils.Database) -> None:
    """Shifted reward counters (issue #16; ``REWARD_SHIFT_DDL``)."""
    for statement in REWARD_SHIFT_DDL:
        db.execute(statement)


#: v9: metric_slices per hour of the exposure with the propensity sums of the adaptive estimators
#: (``metric_fold.SLICE_SUMS``), the same DDL on both backends. The folded metric state is forgotten:
#: every metric rebuilds at its next fold (``metric_fold.forget_all``'s effect).
METRIC_PERIOD_SLICES_DDL = (
    "DELETE FROM metric_state",
    "DELETE FROM metric_values",
    "DROP TABLE metric_slices",
    """CREATE TABLE metric_slices (
        experiment_id BIGINT NOT NULL, metric_key TEXT NOT NULL, variant_id BIGINT NOT NULL,
        holdout INTEGER NOT NULL, period BIGINT NOT NULL, visitors BIGINT NOT NULL,
        s_y DOUBLE PRECISION NOT NULL, s_yy DOUBLE PRECISION NOT NULL, s_x DOUBLE PRECISION NOT NULL,
        s_xx DOUBLE PRECISION NOT NULL, s_xy DOUBLE PRECISION NOT NULL, s_w DOUBLE PRECISION NOT NULL,
        s_ww DOUBLE PRECISION NOT NULL, s_yw DOUBLE PRECISION NOT NULL, s_yyww DOUBLE PRECISION NOT NULL,
        s_yww DOUBLE PRECISION NOT NULL, PRIMARY KEY (experiment_id, metric_key, variant_id, holdout, period))""",
)


def _v9(db: sqlite_utils.Database) -> None:
    """Per-hour metric slices (issue #15; ``METRIC_PERIOD_SLICES_DDL``)."""
    for statement in METRIC_PERIOD_SLICES_DDL:
        db.execute(statement)


# Number 6 is deliberately unused (it belonged to a branch that was not merged): the migration loop
# runs every number above the stored version in order, so the gap is harmless. Never reuse it.
MIGRATIONS: dict[int, Callable[[sqlite_utils.Database], None]] = {
    1: _v1, 2: _v2, 3: _v3, 4: _v4, 5: _v5, 7: _v7, 8: _v8, 9: _v9}
SCHEMA_VERSION = max(MIGRATIONS)
