"""The application factory: settings, storage, services, blueprints, error handling, CLI.

``create_app`` reads the settings (environment or ``test_config``), opens the storage,
migrates the schema, resolves the admin token and secret key, builds the per-process
services (policy cache, token signer, visitor ids, random generator) and registers
the blueprints, the error handlers, the rate limits and the CLI commands.
"""
from __future__ import annotations

import logging
import os
import secrets
from typing import Any, Mapping

import numpy as np
from flask import Flask, jsonify
from flask.json.provider import DefaultJSONProvider
from werkzeug.middleware.proxy_fix import ProxyFix

from ..domain.requests import Limits
from ..service.decisions import Services
from ..service.events import EventRoutes
from ..service.guardrails import GuardrailMonitor
from ..service.policy_cache import LearningCache
from ..service.privacy import VisitorIds
from ..service.tokens import TokenSigner
from ..settings import SETTINGS_BY_NAME, SettingsError, load_settings
from ..storage import Storage
from . import (
    admin_api,
    db,
    events_api,
    fast_path,
    metrics_api,
    openapi,
    public_api,
    public_calls,
    report,
    snippet,
    team_api,
    team_pages,
    webhooks_api,
)
from .auth import KEY_RESOLVER, init_auth
from .cli import register_cli
from .db import get_storage
from .errors import error_response, register_error_handlers
from .limits import init_rate_limits
from .public_calls import PublicSetup

log = logging.getLogger("lever")

#: Flask's own config keys a test may set besides Lever's settings.
FLASK_TEST_KEYS = {"TESTING", "DEBUG", "SERVER_NAME"}


class StrictJSONProvider(DefaultJSONProvider):
    """Standard JSON only: a NaN or an infinity raises ValueError instead of being written as
    the ``NaN`` / ``Infinity`` strict parsers reject. Nothing should ever hand one over (the
    values are bounded, the counters checked, the cores return reason codes); if something
    does, the request becomes a logged 500 JSON error rather than an unparseable answer."""

    sort_keys = False

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        kwargs.setdefault("allow_nan", False)
        try:
            return super().dumps(obj, **kwargs)
        except ValueError:
            log.error("refused to write NaN or Infinity as JSON (counters holding values an older version "
                      "recorded? see flask repair-values)")
            raise


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    test_config = dict(test_config or {})
    unknown = set(test_config) - set(SETTINGS_BY_NAME) - FLASK_TEST_KEYS
    if unknown:
        raise SettingsError(f"unknown setting(s) in test_config: {', '.join(sorted(unknown))}")
    settings = load_settings(overrides={k: v for k, v in test_config.items() if k in SETTINGS_BY_NAME})

    app = Flask("app.web")  # templates and static files live beside this module
    app.json = StrictJSONProvider(app)
    app.config.update(settings)
    app.config.update({k: v for k, v in test_config.items() if k in FLASK_TEST_KEYS})
    app.config["MAX_CONTENT_LENGTH"] = settings["LEVER_MAX_BODY_BYTES"]

    store = db.init_app(app)
    store.migrate()
    _resolve_secrets(app, store)
    _warn_ephemeral(app)

    app.extensions["lever.limits"] = Limits.from_config(app.config)
    app.extensions["lever.services"] = Services(
        storage=store,
        cache=LearningCache(settings["LEVER_REFRESH_MS"], settings["LEVER_POLICY_DRAWS"]),
        signer=TokenSigner(app.config["LEVER_SECRET_KEY"]),
        visitor_ids=VisitorIds(app.config["LEVER_SECRET_KEY"], app.config["LEVER_HASH_VISITORS"]),
        # One generator per worker process, seeded from OS entropy; policies receive it.
        rng=np.random.default_rng(),
    )
    services = app.extensions["lever.services"]
    app.extensions[events_api.ROUTES] = EventRoutes(settings["LEVER_REFRESH_MS"] / 1000.0)
    # guardrails on a schedule: a daemon thread per worker, started by its first request (after
    # gunicorn's fork); a database lease lets one process evaluate per interval. Not in tests.
    monitor = GuardrailMonitor(store, services.cache, 0 if app.testing else settings["LEVER_GUARDRAIL_INTERVAL_S"])
    app.extensions["lever.guardrails"] = monitor
    store.on_close(monitor.stop)  # its thread must not outlive the storage it reads
    app.before_request(monitor.ensure_started)
    register_error_handlers(app)
    init_auth(app)  # API keys: the per-worker resolver
    app.extensions[public_calls.SETUP] = PublicSetup(services, app.extensions["lever.limits"],
                                                     app.extensions[events_api.ROUTES], app.extensions[KEY_RESOLVER],
                                                     app.config)
    app.register_blueprint(public_api.bp, url_prefix="/api/v1")  # assign, reward
    app.register_blueprint(admin_api.bp, url_prefix="/api/v1")  # experiments, stats, visitors
    app.register_blueprint(webhooks_api.bp, url_prefix="/api/v1")  # webhooks and their delivery logs
    app.register_blueprint(metrics_api.bp, url_prefix="/api/v1")  # the metric catalogue
    app.register_blueprint(events_api.bp, url_prefix="/api/v1")  # events
    app.register_blueprint(openapi.bp)  # GET /api/v1/openapi.json
    app.register_blueprint(snippet.bp)  # GET /lever.js, GET /demo
    app.register_blueprint(report.bp)  # report pages: /, /login, /experiments/<key>
    app.register_blueprint(team_api.bp, url_prefix="/api/v1")  # api-keys, users, audit
    app.register_blueprint(team_pages.bp)  # /team, /account, /invite/<token>
    init_rate_limits(app)
    register_cli(app)

    @app.get("/healthz")
    def healthz():
        if not get_storage().healthy():
            return error_response(503, "database_unavailable", "the database does not answer")
        return jsonify({"status": "ok", "worker": os.getpid()})

    if settings["LEVER_FAST_PATH"]:
        fast_path.install(app)  # after every hook and route: it serves the public routes the way they do
    if app.config["LEVER_PROXY_COUNT"]:  # outermost: both paths see the client's address
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=app.config["LEVER_PROXY_COUNT"],
                                x_proto=app.config["LEVER_PROXY_COUNT"])
    return app


def _resolve_secrets(app: Flask, store: Storage) -> None:
    """Admin token and secret key: from settings, else generated once and kept in the database."""
    production = app.config["LEVER_ENV"] == "production"
    for name, meta_key in (("LEVER_ADMIN_TOKEN", "admin_token"), ("LEVER_SECRET_KEY", "secret_key")):
        value = app.config[name]
        if production and len(value) < 32:
            raise SettingsError(f"{name} must be set to at least 32 random characters when LEVER_ENV=production")
        if not value:
            app.config[name] = store.set_meta_default(meta_key, secrets.token_urlsafe(32))
    app.config["SECRET_KEY"] = app.config["LEVER_SECRET_KEY"]


def _warn_ephemeral(app: Flask) -> None:
    if os.environ.get("DYNO") and app.config["DATABASE_URL"].startswith("sqlite"):
        log.warning("LEVER: SQLite on an ephemeral filesystem (DYNO is set): ALL DATA WILL BE LOST on restart. "
                    "Set DATABASE_URL to a PostgreSQL database.")
