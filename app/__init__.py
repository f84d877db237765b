"""Lever's web layer: the application factory.

``create_app`` reads the settings (environment or ``test_config``), opens the storage,
migrates the schema, resolves the admin token and secret key, and registers the
blueprints, the error handlers and the CLI commands.
"""
from __future__ import annotations

import logging
import os
import secrets
from typing import Any, Mapping

import numpy as np
from flask import Flask, jsonify
from werkzeug.middleware.proxy_fix import ProxyFix

from . import storage
from .errors import error_response, register_error_handlers
from .learning import LearningCache
from .limits import init_rate_limits
from .privacy import VisitorIds
from .settings import SETTINGS_BY_NAME, SettingsError, load_settings
from .storage import StorageBusy, StorageOutcomeUnknown, get_storage
from .tokens import TokenSigner

log = logging.getLogger("lever")

#: Flask's own config keys a test may set besides Lever's settings.
FLASK_TEST_KEYS = {"TESTING", "DEBUG", "SERVER_NAME"}


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    test_config = dict(test_config or {})
    unknown = set(test_config) - set(SETTINGS_BY_NAME) - FLASK_TEST_KEYS
    if unknown:
        raise SettingsError(f"unknown setting(s) in test_config: {', '.join(sorted(unknown))}")
    settings = load_settings(overrides={k: v for k, v in test_config.items() if k in SETTINGS_BY_NAME})

    app = Flask(__name__)
    app.config.update(settings)
    app.config.update({k: v for k, v in test_config.items() if k in FLASK_TEST_KEYS})
    app.config["MAX_CONTENT_LENGTH"] = settings["LEVER_MAX_BODY_BYTES"]
    app.json.sort_keys = False

    storage.init_app(app)
    store = app.extensions["lever.storage"]
    store.migrate()
    _resolve_secrets(app, store)
    _warn_ephemeral(app)

    app.extensions["lever.learning"] = LearningCache(settings["LEVER_REFRESH_MS"], settings["LEVER_POLICY_DRAWS"])
    app.extensions["lever.signer"] = TokenSigner(app.config["LEVER_SECRET_KEY"])
    app.extensions["lever.visitor_ids"] = VisitorIds(app.config["LEVER_SECRET_KEY"], app.config["LEVER_HASH_VISITORS"])
    if app.config["LEVER_PROXY_COUNT"]:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=app.config["LEVER_PROXY_COUNT"],
                                x_proto=app.config["LEVER_PROXY_COUNT"])
    # One generator per worker process, seeded from OS entropy; policies receive it.
    app.extensions["lever.rng"] = np.random.default_rng()

    register_error_handlers(app)

    @app.errorhandler(StorageBusy)
    def storage_busy(_error: StorageBusy):
        return error_response(503, "service_unavailable", "the database is busy; retry shortly (nothing was written)")

    @app.errorhandler(StorageOutcomeUnknown)
    def storage_outcome_unknown(_error: StorageOutcomeUnknown):
        return error_response(503, "outcome_unknown",
                              "the database connection dropped while committing and the outcome could not be "
                              "checked: this request may or may not have been recorded")

    from .api import bp as api_bp
    from .cli import register_cli
    from .openapi import bp as openapi_bp
    from .report import bp as report_bp
    from .snippet import bp as snippet_bp

    app.register_blueprint(api_bp, url_prefix="/api/v1")
    app.register_blueprint(openapi_bp)  # GET /api/v1/openapi.json
    app.register_blueprint(snippet_bp)  # GET /lever.js, GET /demo
    app.register_blueprint(report_bp)  # report pages: /, /login, /experiments/<key>
    init_rate_limits(app)
    register_cli(app)

    @app.get("/healthz")
    def healthz():
        if not get_storage().healthy():
            return error_response(503, "database_unavailable", "the database does not answer")
        return jsonify({"status": "ok", "worker": os.getpid()})

    return app


def _resolve_secrets(app: Flask, store: storage.Storage) -> None:
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
