"""Command-line interface: ``flask --app app <command>`` (or the ``lever`` console script)."""
from __future__ import annotations

import json
import logging
import os
import random
import signal
import socket
import sys
import threading
import time

import click
import numpy as np
from flask import Flask, current_app
from flask.cli import with_appcontext

from ..domain.errors import LeverError
from ..domain.experiments import parse_experiment, value_bound
from ..domain.webhooks import parse_allowed_hosts
from ..service import accounts
from ..service.demo import DEMO_EXPERIMENT
from ..service.experiments import create_experiment as create
from ..service.metric_upkeep import fold_all, fold_experiment
from ..service.modes import MODES
from ..service.monitor import evaluate
from ..service.permissions import ACCOUNT_ROLES
from ..service.privacy import retention_cutoff
from ..service.repair import repair_values as repair
from ..service.webhooks import CLAIM_BATCH, HttpSender, deliver_due, prune_log
from ..storage import PrunedLog
from .db import get_storage

#: how the audit log names changes made from the command line
CLI_ACTOR = "cli"


def _admin_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {current_app.config['LEVER_ADMIN_TOKEN']}"}


@click.command("init-db")
@with_appcontext
def init_db() -> None:
    """Create or migrate the schema (idempotent)."""
    version = get_storage().migrate()
    click.echo(f"database ready (schema version {version}): {current_app.config['DATABASE_URL']}")


@click.command("create-experiment")
@with_appcontext
@click.argument("file", type=click.File("r"))
def create_experiment(file) -> None:
    """Create an experiment from a JSON definition file (same body as POST /api/v1/experiments)."""
    try:
        experiment = create(get_storage(), parse_experiment(json.load(file)), time.time(), actor=CLI_ACTOR)
    except json.JSONDecodeError as error:
        raise click.ClickException(f"not valid JSON: {error}") from None
    except LeverError as error:
        raise click.ClickException(error.message) from None
    click.echo(json.dumps(experiment.to_dict(), indent=2))


@click.command("create-user")
@with_appcontext
@click.argument("email")
@click.option("--role", type=click.Choice(ACCOUNT_ROLES), default="viewer", show_default=True)
@click.password_option(help="the account's password (asked for when not given; at least 12 characters)")
def create_user(email: str, role: str, password: str) -> None:
    """Create an account (e.g. the first admin) that logs in to the report pages with email and password."""
    try:
        account = accounts.create_account(get_storage(), email, role, password, CLI_ACTOR, time.time())
    except LeverError as error:
        raise click.ClickException(error.message) from None
    click.echo(f"created {account.role} account {account.email} (id {account.id})")


@click.command("seed-demo")
@with_appcontext
def seed_demo() -> None:
    """Create the demo experiment when the database has no experiment yet."""
    store = get_storage()
    if store.list_experiments():
        click.echo("experiments exist; demo not seeded")
        return
    create(store, parse_experiment(DEMO_EXPERIMENT), time.time(), actor=CLI_ACTOR)
    click.echo(f"seeded demo experiment {DEMO_EXPERIMENT['key']!r}")


@click.command("show-urls")
@with_appcontext
@click.option("--base-url", default="http://127.0.0.1:8000")
def show_urls(base_url: str) -> None:
    """Print the admin token and the URLs a new user needs."""
    click.echo(f"Lever admin token: {current_app.config['LEVER_ADMIN_TOKEN']}")
    for label, path in (("Health", "/healthz"), ("Experiments API", "/api/v1/experiments"),
                        ("Reports", "/"), ("Demo", "/demo"), ("Snippet", "/lever.js")):
        click.echo(f"  {label:16} {base_url}{path}")


def _planted_rates(experiment, rates: str | None) -> np.ndarray:
    if rates:
        table = dict(item.split("=") for item in rates.split(","))
        return np.array([float(table[v.key]) for v in experiment.variants])
    # default: control 3%, each further variant a little better, the last one best
    return np.array([0.03 * (1 + 0.25 * i) for i in range(len(experiment.variants))])


@click.command("simulate")
@with_appcontext
@click.argument("key")
@click.option("--visitors", default=2000, show_default=True, type=click.IntRange(1, 1_000_000))
@click.option("--rates", default=None, help="true conversion rates, e.g. control=0.03,b=0.05")
@click.option("--seed", default=0, show_default=True, type=int)
def simulate(key: str, visitors: int, rates: str | None, seed: int) -> None:
    """Drive synthetic visitors through the real API (assign, then maybe convert)."""
    store = get_storage()
    experiment = store.get_experiment(key)
    if experiment is None:
        raise click.ClickException(f"no experiment {key!r}")
    truth = _planted_rates(experiment, rates)
    rng = np.random.default_rng(seed)
    client = current_app.test_client()
    current_app.extensions["lever.rate_limits"].enabled = False  # synthetic traffic from one address
    devices = ("mobile", "desktop", "tablet")
    served = np.zeros(len(truth), dtype=int)
    for i in range(visitors):
        device = devices[int(rng.integers(3))]
        context = {"device": device, "hour": int(rng.integers(24)), "returning": bool(rng.random() < 0.3)}
        response = client.post("/api/v1/assign", json={"experiment": key, "visitor": f"sim-{seed}-{i}",
                                                      "context": context})
        if response.status_code != 200:
            raise click.ClickException(f"assign failed: {response.get_json()}")
        body = response.get_json()
        arm = experiment.variant_keys.index(body["variant"])
        served[arm] += 1
        rate = truth[arm]
        if experiment.mode == "contextual":  # the best variant depends on the device
            rate = rate * (1.6 if arm % len(devices) == devices.index(device) else 0.7)
        if body["assignment"] and rng.random() < rate:
            value = 1 if experiment.reward == "binary" else round(float(rng.gamma(2.0, 20.0)), 2)
            client.post("/api/v1/reward", json={"assignment": body["assignment"], "value": value})
    shares = ", ".join(f"{v.key}={n}" for v, n in zip(experiment.variants, served))
    click.echo(f"simulated {visitors} visitors on {key}: {shares}")


@click.command("export")
@with_appcontext
@click.argument("key")
def export(key: str) -> None:
    """Write the experiment's events CSV to standard output."""
    client = current_app.test_client()
    response = client.get(f"/api/v1/experiments/{key}/events.csv", headers=_admin_headers())
    if response.status_code != 200:
        raise click.ClickException(response.get_json()["error"]["message"])
    for chunk in response.response:
        sys.stdout.write(chunk.decode() if isinstance(chunk, bytes) else chunk)


@click.command("rebuild-stats")
@with_appcontext
@click.argument("key")
def rebuild_stats(key: str) -> None:
    """Recompute an experiment's learning counters from its event log, and its materialised metric values."""
    store = get_storage()
    experiment = store.get_experiment(key)
    if experiment is None:
        raise click.ClickException(f"no experiment {key!r}")
    bad = store.repair_values(experiment.id, value_bound(experiment, current_app.config["LEVER_MAX_ABS_VALUE"]),
                              "clamp", dry_run=True)
    if bad.rewards or bad.assignments:  # the rebuild would sum them into the counters again
        raise click.ClickException(f"{bad.rewards} rewards and {bad.assignments} assignment totals of {key} are "
                                   f"beyond the value bound: run `flask repair-values {key}` (it rebuilds too)")
    try:
        store.rebuild_arm_stats(experiment, MODES[experiment.mode].rebuilder(experiment))
    except PrunedLog as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"rebuilt counters of {key}")
    report = fold_experiment(store, experiment, rebuild=True)
    if report is not None:
        click.echo(f"rebuilt metric values of {report.summary()}")


@click.command("fold-metrics")
@with_appcontext
@click.argument("key", required=False)
@click.option("--rebuild", is_flag=True, help="Build the materialised values again from scratch.")
def fold_metrics(key: str | None, rebuild: bool) -> None:
    """Build or bring up to date the materialised metric values of experiment KEY (default: every experiment
    with metrics, whatever its status), so stats requests find them current (e.g. after an upgrade)."""
    store = get_storage()
    if key is None:
        experiments = store.list_experiments()
    else:
        found = store.get_experiment(key)
        if found is None:
            raise click.ClickException(f"no experiment {key!r}")
        if found.metrics is None:
            raise click.ClickException(f"experiment {key!r} has no catalogue metrics")
        experiments = [found]
    reports = fold_all(store, experiments, rebuild=rebuild)
    for report in reports:
        click.echo(report.summary())
    click.echo(f"folded the metric values of {sum(r.folded for r in reports)} of {len(reports)} experiments")


@click.command("prune-events")
@with_appcontext
def prune_events() -> None:
    """Delete raw events older than LEVER_RETENTION_DAYS (never inside a reward window; totals are kept) and
    finished webhook events older than LEVER_WEBHOOK_RETENTION_DAYS."""
    store = get_storage()
    webhook_events = prune_log(store, time.time(), current_app.config["LEVER_WEBHOOK_RETENTION_DAYS"])
    click.echo(f"pruned {webhook_events} finished webhook events")
    cutoff = retention_cutoff(time.time(), current_app.config["LEVER_RETENTION_DAYS"], store.list_experiments())
    if cutoff is None:
        click.echo("LEVER_RETENTION_DAYS is 0: nothing pruned")
        return
    click.echo(f"pruned {store.prune_events(cutoff)} assignments made before {time.ctime(cutoff)}")


@click.command("repair-values")
@with_appcontext
@click.argument("key")
@click.option("--max-abs", type=float, default=None,
              help="Bound on |reward value| (default: the experiment's, i.e. LEVER_MAX_ABS_VALUE or its max_abs_value).")
@click.option("--clamp", "action", flag_value="clamp", default=True, help="Clamp bad rewards to ±bound (default).")
@click.option("--exclude", "action", flag_value="exclude", help="Delete bad rewards from the log instead.")
@click.option("--dry-run", is_flag=True, help="Only count what would be repaired.")
def repair_values(key: str, max_abs: float | None, action: str, dry_run: bool) -> None:
    """Clamp or exclude rewards beyond the |value| bound that older versions recorded, then rebuild the counters."""
    store = get_storage()
    experiment = store.get_experiment(key)
    if experiment is None:
        raise click.ClickException(f"no experiment {key!r}")
    bound = value_bound(experiment, current_app.config["LEVER_MAX_ABS_VALUE"]) if max_abs is None else max_abs
    try:
        report = repair(store, experiment, bound, action, dry_run)
    except (LeverError, PrunedLog) as error:
        raise click.ClickException(str(error)) from None
    current_app.extensions["lever.services"].cache.invalidate(key)
    click.echo(f"repair-values {report.summary()}")


# -- the webhook worker ------------------------------------------------------------------------

log = logging.getLogger("lever.worker")
DELIVERY_POLL_S = 1.0  # how often the worker looks for due deliveries
WEBHOOK_PRUNE_S = 3600.0  # how often it drops finished outbox events past LEVER_WEBHOOK_RETENTION_DAYS


def _send_due(services, send: HttpSender, worker: str, rng: random.Random) -> int:
    """Send every delivery due now (batch after batch); returns how many were attempted."""
    attempted = 0
    while True:
        report = deliver_due(services.storage, send, time.time, worker, rng)
        attempted += report.attempted
        if report.attempted < CLAIM_BATCH:
            return attempted


def _guarded(step, *args):
    """One step of the worker loop; a failure is logged and the loop goes on (the database
    may be restarting, an experiment's stats may fail): the next tick tries again."""
    try:
        return step(*args)
    except Exception:  # the worker's last line of defence, like the web app's 500 handler
        log.exception("webhook worker: %s failed", step.__name__)
        return None


@click.command("deliver")
@with_appcontext
@click.option("--once", is_flag=True, help="Evaluate the monitor once, send what is due, and exit.")
def deliver(once: bool) -> None:
    """The webhook worker: evaluate running experiments every LEVER_MONITOR_INTERVAL_S, send due deliveries
    every second (retries with backoff for 24 h). Instances may run side by side: each delivery is leased
    to one of them."""
    services = current_app.extensions["lever.services"]
    send = HttpSender(parse_allowed_hosts(current_app.config["LEVER_WEBHOOK_ALLOWED_HOSTS"]))
    worker = f"{socket.gethostname()}:{os.getpid()}"
    rng = random.Random()
    if once:
        report = evaluate(services, time.time())
        sent = _send_due(services, send, worker, rng)
        click.echo(f"evaluated {report.experiments} experiments, raised {len(report.raised)} events, "
                   f"attempted {sent} deliveries")
        return
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    interval = current_app.config["LEVER_MONITOR_INTERVAL_S"]
    click.echo(f"webhook worker {worker}: monitor every {interval} s, deliveries every {DELIVERY_POLL_S:g} s")
    next_monitor = next_prune = 0.0
    retention_days = current_app.config["LEVER_WEBHOOK_RETENTION_DAYS"]
    while not stopping.is_set():
        if time.monotonic() >= next_prune:
            next_prune = time.monotonic() + WEBHOOK_PRUNE_S
            _guarded(prune_log, services.storage, time.time(), retention_days)
        if time.monotonic() >= next_monitor:
            next_monitor = time.monotonic() + interval
            report = _guarded(evaluate, services, time.time())
            if report is not None and report.raised:
                click.echo(f"monitor raised {', '.join(e.type for e in report.raised)}")
        _guarded(_send_due, services, send, worker, rng)
        stopping.wait(DELIVERY_POLL_S)
    click.echo(f"webhook worker {worker} stopped")


COMMANDS = (init_db, prune_events, create_experiment, create_user, seed_demo, show_urls, simulate, export, rebuild_stats,
            fold_metrics, repair_values, deliver)


def register_cli(app: Flask) -> None:
    for command in COMMANDS:
        app.cli.add_command(command)
