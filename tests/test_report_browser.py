"""The report in a real browser: headless Chromium (Playwright, tests/browser.py) against
gunicorn on loopback, with an experiment filled by ``flask simulate``.

Logs in through the form, then checks that every number the page marks (data-path /
data-value) equals the stats JSON of ``GET /api/v1/experiments/<key>/stats`` and is shown
with the report's format, that every chart is drawn, that admin actions work with the
page's CSRF token, and that the browser logged no error (the strict CSP would report any
inline style or script). If Chromium or Playwright is missing these tests fail, never skip.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import requests

from app.reporting import verdict as words
from app.service.demo import DEMO_EXPERIMENT

from .browser import ARTIFACTS, browser_page, chromium  # noqa: F401  (pytest fixtures)
from .test_report_pages import resolve
from .conftest import ADMIN_TOKEN, SECRET_KEY
from .servers import ROOT, gunicorn

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
KEY = DEMO_EXPERIMENT["key"]
CHARTS = ("cumulative", "allocation", "posterior", "uplift")
ENV = {"LEVER_ADMIN_TOKEN": ADMIN_TOKEN, "LEVER_SECRET_KEY": SECRET_KEY}


@pytest.fixture(scope="module")
def lever(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report-browser")
    database = f"sqlite:///{tmp / 'lever.db'}"
    with gunicorn(database, workers=2, env=ENV, log_path=tmp / "gunicorn.log") as base:
        response = requests.post(f"{base}/api/v1/experiments", json=DEMO_EXPERIMENT, headers=ADMIN, timeout=10)
        assert response.status_code == 201, response.text
        environment = {k: v for k, v in os.environ.items() if not k.startswith("LEVER_")}
        environment.update({"DATABASE_URL": database, **ENV})
        simulated = subprocess.run(
            [sys.executable, "-m", "flask", "--app", "app", "simulate", KEY, "--visitors", "1500", "--seed", "3",
             "--rates", "control=0.03,urgency=0.04,social=0.07"],
            cwd=ROOT, env=environment, capture_output=True, text=True, timeout=300)
        assert simulated.returncode == 0, simulated.stderr
        yield base


def expected_text(path: list, value) -> str:
    """How the report formats the number at ``path`` of a binary experiment's stats."""
    last = path[-1]
    if last == "decision":  # the badge of the always-valid rule
        return {"better": "Better", "worse": "Worse"}.get(value, "Not decided")
    if last in ("visitors", "conversions", "visitors_total", "conversions_total", "decisions") or \
            (path[0] == "srm" and path[1] in ("observed", "expected")):
        fmt = words.fmt_int
    elif last in ("p_value", "p_value_adjusted", "always_valid_p_value"):
        fmt = words.fmt_p
    elif last in ("relative", "ci_relative", "credible_interval_relative", "bound", "threshold"):
        fmt = words.fmt_rel
    elif last in ("absolute", "ci_absolute", "ci_always_valid"):
        fmt = words.fmt_pp
    elif last in ("expected_loss", "se_absolute"):
        fmt = words.value_formats("binary")["spread"]
    elif last == "statistic":
        fmt = words.fmt_num
    else:  # rates, intervals of rates, IPS values, shares, chances
        fmt = words.fmt_pct
    return words.fmt_range(value, fmt) if isinstance(value, list) or last.startswith("ci") or \
        last == "credible_interval_relative" else fmt(value)


def log_in(page, base: str, target: str) -> None:
    page.goto(base + target)
    assert page.url.startswith(base + "/login?next=")
    page.click("details.token-login summary")  # the owner key's form, beside the account login
    page.fill("input[name=token]", ADMIN_TOKEN)
    page.click("#token-login button[type=submit]")
    page.wait_for_url(base + target)


def test_report_numbers_equal_the_stats_json(lever, browser_page):
    watch = browser_page(viewport={"width": 1366, "height": 900})
    page = watch.page
    log_in(page, lever, f"/experiments/{KEY}")
    response = page.reload()
    headers = response.headers
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    stats = requests.get(f"{lever}/api/v1/experiments/{KEY}/stats", headers=ADMIN, timeout=30).json()

    marked = page.locator("[data-path]").evaluate_all(
        "els => els.map(e => [e.dataset.path, e.dataset.value, e.textContent.trim()])")
    assert len(marked) > 100
    for raw_path, raw_value, text in marked:
        path, value = json.loads(raw_path), json.loads(raw_value)
        assert value == resolve(stats, path), path
        assert text == expected_text(path, value), (path, value, text)
    paths = {tuple(json.loads(p)) for p, _, _ in marked}
    for variant in stats["variants"]:
        assert ("variants", variant["key"], "rate") in paths and ("variants", variant["key"], "ips", "value") in paths

    assert page.locator("#kpi-visitors").inner_text() == "1,500"
    assert page.locator("#verdict .verdict-headline").inner_text() == words.verdict(stats).headline
    for name in CHARTS:
        chart = page.locator(f"#chart-{name} svg[data-chart='{name}']")
        assert chart.count() == 1
        box = chart.bounding_box()
        assert box["width"] > 300 and box["height"] > 100, (name, box)
        assert chart.locator("text").count() > 3  # labelled axes
    watch.assert_clean()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "report-experiment.png"), full_page=True)


def test_actions_and_list_in_the_browser(lever, browser_page):
    watch = browser_page(viewport={"width": 1366, "height": 900})
    page = watch.page
    log_in(page, lever, "/")
    row = page.locator(f"tr[data-experiment='{KEY}']")
    assert row.locator("[data-field=visitors]").inner_text() == "1,500"
    page.screenshot(path=str(ARTIFACTS / "report-index.png"), full_page=True)

    row.locator("a").first.click()
    page.wait_for_url(f"{lever}/experiments/{KEY}")
    page.click("button[value=pause]")
    page.wait_for_url(f"{lever}/experiments/{KEY}")
    assert page.locator("#status").inner_text().lower() == "paused"
    assert requests.get(f"{lever}/api/v1/experiments/{KEY}", headers=ADMIN, timeout=10).json()["status"] == "paused"
    page.click("button[value=resume]")
    assert page.locator("#status").inner_text().lower() == "running"

    watch.assert_clean()

    page.goto(f"{lever}/experiments/new")
    page.fill("#key", "from-the-browser")
    page.fill("#variants", "only-one")
    page.click("form.form-grid button[type=submit]")
    assert page.locator("#form-error").inner_text() == "an experiment needs 2 to 50 variants"
    page.fill("#variants", "control\nb")
    page.click("form.form-grid button[type=submit]")
    page.wait_for_url(f"{lever}/experiments/from-the-browser")
    assert page.locator("svg[data-chart]").count() == 4
    page.click("nav button.linklike")  # log out
    page.wait_for_url(f"{lever}/login")
    # the only complaint: Chromium logs the invalid form's 400 answer
    assert watch.errors() == ["console.error: Failed to load resource: the server responded with a status of 400 "
                              "(BAD REQUEST)"]
