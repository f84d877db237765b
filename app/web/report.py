"""Report pages for people: the experiment list, one experiment's report, admin actions.

Server-rendered HTML (no JavaScript needed to read anything), behind a session
(``session_auth``); each view declares its permission (``auth.require``) and the templates
show a viewer no action forms (``may``). The numbers come from the same stats dict as
``GET /api/v1/experiments/<key>/stats`` (``app.service.analysis``); the words from
``app.reporting.verdict``; the pictures from ``app.reporting.charts``. Views only fetch,
cache and render.

Caches (per worker): the stats dict per (experiment, model version, status), and the
rendered chart SVGs per (experiment, model version) — the same learning state always
gives the same numbers and pictures, so a repeated render costs a template only.
"""
from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from datetime import datetime, timezone
from typing import Any, Callable, Mapping

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)

from ..domain.errors import Conflict, NotFound, ValidationError
from ..domain.experiments import parse_experiment
from ..reporting import charts
from ..reporting import verdict as words
from ..service import accounts, audit
from ..service.analysis import experiment_stats
from ..service.experiments import create_experiment, set_status
from ..service.permissions import EVENTS_EXPORT, EXPERIMENTS_WRITE, REPORTS_READ
from ..service.planning import plan
from ..service.policy_cache import PolicyEntry
from ..storage import PERIOD_SECONDS
from . import session_auth
from .admin_api import describe_policy, events_csv_response, plan_request
from .auth import current_actor, current_principal, is_admin_token, public, require
from .db import get_storage
from .http import services

bp = Blueprint("report", __name__, template_folder="templates")

#: no scripts at all, styles and images from this origin (charts are inline SVG; the favicon a data: URL)
CSP = ("default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")
REFRESH_RANGE = (5, 3600)
MODE_LABELS = {"bandit": "Bandit (Thompson sampling)", "ab": "A/B test", "contextual": "Contextual bandit"}
STATUS_ACTIONS = {"pause": "paused", "resume": "running", "stop": "stopped"}
#: audit entries in the history section of an experiment's page
HISTORY_ENTRIES = 20


class LRU:
    """A small thread-safe least-recently-used cache: ``get(key, compute)``."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any, compute: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = compute()
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


@bp.record_once
def _setup(state) -> None:
    app = state.app
    session_auth.configure(app)
    app.extensions["lever.report.stats"] = LRU(256)
    app.extensions["lever.report.charts"] = LRU(64)


@bp.before_request
def check_form_csrf() -> None:
    """Every POST form of the pages echoes the session's CSRF token (team pages share this hook)."""
    if request.method == "POST":
        session_auth.check_csrf()


@bp.after_request
def security_headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers.setdefault("Cache-Control", "no-store")
    return response


# -- helpers ---------------------------------------------------------------------------------


def _stats(entry: PolicyEntry) -> dict[str, Any]:
    """The stats dict of the API, cached per learning state and status."""
    experiment = entry.experiment
    key = (experiment.id, entry.model_version, experiment.status, experiment.winner)
    return current_app.extensions["lever.report.stats"].get(key, lambda: experiment_stats(entry, get_storage()))


def _charts(entry: PolicyEntry, stats: Mapping[str, Any], buckets) -> dict[str, str]:
    experiment = entry.experiment

    def render() -> dict[str, str]:
        return charts.render_charts(stats, buckets, {v.id: v.key for v in experiment.variants}, PERIOD_SECONDS)

    return current_app.extensions["lever.report.charts"].get((experiment.id, entry.model_version), render)


def _entry(key: str, fresh: bool = True) -> PolicyEntry:
    entry = services().cache.get(get_storage(), key, fresh=fresh)
    if entry is None:
        raise NotFound(f"There is no experiment “{key}”.", code="experiment_not_found")
    return entry


def _refresh() -> int | None:
    seconds = request.args.get("refresh", type=int)
    if seconds is None:
        return None
    return min(max(seconds, REFRESH_RANGE[0]), REFRESH_RANGE[1])


def _utc(timestamp: float | None) -> str:
    if not timestamp:
        return words.DASH
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def render_page(template: str, status: int = 200, **context: Any) -> tuple[str, int]:
    """A page with what every template needs: the CSRF token, who is logged in and what they may do."""
    context.setdefault("refresh", None)
    principal = current_principal()
    return render_template(
        template,
        csrf_token=session_auth.csrf_token(),
        logged_in=principal is not None,
        principal=principal,
        may=lambda permission: principal is not None and principal.may(permission),
        mode_labels=MODE_LABELS,
        utc=_utc,
        fmt_int=words.fmt_int, fmt_pct=words.fmt_pct, fmt_rel=words.fmt_rel, fmt_pp=words.fmt_pp,
        fmt_num=words.fmt_num, fmt_p=words.fmt_p, fmt_range=words.fmt_range,
        **context,
    ), status


# -- login -----------------------------------------------------------------------------------


@bp.route("/login", methods=["GET", "POST"])
@public
def login():
    target = session_auth.safe_next(request.values.get("next")) or url_for("report.index")
    if request.method == "POST":
        if "token" in request.form:
            if is_admin_token(request.form.get("token", "")):
                session_auth.log_in_owner()
                return redirect(target, code=303)
            return render_page("report/login.html", 401, next=target, email="", error="That is not the admin token.")
        email = request.form.get("email", "").strip().lower()[:254]
        throttle = session_auth.login_throttle()
        if throttle.blocked(email):
            return render_page("report/login.html", 429, next=target, email=email,
                               error="Too many failed logins for this account: wait a few minutes and try again.")
        account = accounts.verify_password(get_storage(), email, request.form.get("password", ""), time.time())
        if account is None:
            throttle.failed(email)
            return render_page("report/login.html", 401, next=target, email=email,
                               error="That email and password do not match an active account.")
        session_auth.log_in_account(account)
        return redirect(target, code=303)
    if session_auth.is_logged_in():
        return redirect(target)
    return render_page("report/login.html", next=target, email="", error=None)


@bp.post("/logout")
@public
def logout():
    session_auth.log_out()
    return redirect(url_for("report.login"), code=303)


# -- pages -----------------------------------------------------------------------------------


@bp.get("/")
@require(REPORTS_READ)
def index():
    rows = []
    for experiment in get_storage().list_experiments():
        entry = services().cache.get(get_storage(), experiment.key, fresh=True)
        if entry is None:  # deleted meanwhile
            continue
        rows.append({"experiment": entry.experiment, "summary": words.summary(_stats(entry))})
    return render_page("report/index.html", rows=rows, refresh=_refresh())


@bp.get("/experiments/<key>")
@require(REPORTS_READ)
def experiment(key: str):
    entry = _entry(key)
    stats = _stats(entry)
    storage = get_storage()
    buckets = storage.time_series(entry.experiment.id)
    return render_page(
        "report/experiment.html",
        experiment=entry.experiment,
        stats=stats,
        verdict=words.verdict(stats, words.recent_daily_visitors(buckets, time.time())),
        charts=_charts(entry, stats, buckets),
        policy=describe_policy(entry),
        segment_winners=words.segment_winners(stats) if entry.experiment.mode == "contextual" else [],
        formats=words.value_formats(stats["reward"]),
        metric_verdict=words.metric_verdict(stats),
        metrics=words.ordered_metrics(stats),
        metric_format=words.metric_value_format,
        ci_bar=words.ci_bar,
        totals={
            "visitors": sum(v["visitors_total"] for v in stats["variants"]),
            "conversions": sum(v["conversions_total"] for v in stats["variants"]),
            "analysed": sum(v["visitors"] for v in stats["variants"]),
        },
        history=audit.history(storage, entry.experiment.key, limit=HISTORY_ENTRIES),
        action_labels=audit.ACTIONS,
        refresh=_refresh(),
    )


@bp.post("/experiments/<key>/status")
@require(EXPERIMENTS_WRITE)
def change_status(key: str):
    experiment = _entry(key, fresh=False).experiment
    action = request.form.get("action")
    if action not in STATUS_ACTIONS:
        raise ValidationError("action must be pause, resume or stop")
    status = STATUS_ACTIONS[action]
    winner = request.form.get("winner") or None
    if action == "stop" and winner not in experiment.variant_keys:
        raise ValidationError("Choose the variant to serve to everyone when stopping.")
    svc = services()
    set_status(svc.storage, svc.cache, experiment, status, winner if action == "stop" else None, time.time(),
               actor=current_actor())
    flash({"pause": "Paused: everyone sees the control and nothing is logged.",
           "resume": "Resumed: the experiment is running again.",
           "stop": f"Stopped: everyone now sees {winner}."}[action], "success")
    return redirect(url_for("report.experiment", key=key), code=303)


# -- create form -------------------------------------------------------------------------------

FORM_DEFAULTS = {"key": "", "name": "", "variants": "control\nb", "mode": "bandit", "reward": "binary",
                 "holdout": "0.1", "context": "", "planned_visitors": ""}
PLAN_DEFAULTS = {"baseline_rate": "", "mde": "", "variants": "2"}


def form_to_body(form: Mapping[str, str]) -> dict[str, Any]:
    """The create form's fields as the JSON body of ``POST /api/v1/experiments``.

    ``variants`` is one key per line (the first is the control) or a JSON list of
    ``{"key", "payload"}``; ``context`` is a JSON list of feature definitions.
    """
    body: dict[str, Any] = {"key": form.get("key", "").strip(), "mode": form.get("mode", "bandit"),
                            "reward": form.get("reward", "binary")}
    if form.get("name", "").strip():
        body["name"] = form["name"].strip()
    raw_variants = form.get("variants", "").strip()
    if raw_variants.startswith("["):
        body["variants"] = _json_field(raw_variants, "variants")
    else:
        body["variants"] = [line.strip() for line in raw_variants.splitlines() if line.strip()]
    holdout = form.get("holdout", "").strip()
    if holdout:
        try:
            body["holdout"] = float(holdout)
        except ValueError:
            raise ValidationError("holdout must be a number between 0 and 0.5") from None
    if form.get("context", "").strip():
        body["context"] = _json_field(form["context"], "context")
    planned = form.get("planned_visitors", "").strip()
    if planned:
        if not planned.isdigit():
            raise ValidationError("planned visitors must be a whole number")
        body["planned_visitors"] = int(planned)
    return body


def _json_field(text: str, name: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ValidationError(f"{name} is not valid JSON: {error.msg} (line {error.lineno}, "
                              f"column {error.colno})") from None


@bp.route("/experiments/new", methods=["GET", "POST"])
@require(EXPERIMENTS_WRITE)
def new_experiment():
    form = dict(FORM_DEFAULTS)
    error = None
    if request.method == "POST":
        form.update({k: request.form.get(k, default) for k, default in FORM_DEFAULTS.items()})
        try:
            spec = parse_experiment(form_to_body(form))
            create_experiment(get_storage(), spec, time.time(), actor=current_actor())
        except ValidationError as failure:
            error = failure.message
        except Conflict:
            error = f"An experiment with key {form['key'].strip()!r} exists already."
        else:
            flash(f"Created experiment {spec.key}. Add the snippet to your page to start collecting data.", "success")
            return redirect(url_for("report.experiment", key=spec.key), code=303)
    plan_form = {k: request.args.get(k, default) for k, default in PLAN_DEFAULTS.items()}
    plan_result, plan_error = None, None
    if request.method == "GET" and plan_form["mde"].strip():
        try:
            plan_result = plan(plan_request(request.args))
        except ValidationError as failure:
            plan_error = failure.message
    return render_page("report/new.html", 400 if error else 200, form=form, error=error,
                       modes=MODE_LABELS, rewards=("binary", "numeric"), plan=plan_result, plan_form=plan_form,
                       plan_error=plan_error)


# -- downloads (session-authenticated twins of the admin API) ------------------------------------


@bp.get("/experiments/<key>/stats.json")
@require(REPORTS_READ)
def stats_json(key: str):
    response = jsonify(_stats(_entry(key)))
    response.headers["Content-Disposition"] = f'attachment; filename="{key}-stats.json"'
    return response


@bp.get("/experiments/<key>/events.csv")
@require(EVENTS_EXPORT)
def events_csv(key: str):
    return events_csv_response(key)  # the API's download, behind the session instead of the bearer token
