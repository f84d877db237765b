"""Report pages through the Flask test client: login, redirects, CSRF, admin actions, the
create form, and a report whose every number and chart comes from the stats JSON."""
from __future__ import annotations

import json
import re

import pytest

from app import create_app

from .conftest import ADMIN_TOKEN, SECRET_KEY

PROTECTED = ("/", "/experiments/hero", "/experiments/new", "/experiments/hero/stats.json",
             "/experiments/hero/events.csv")
CHARTS = ("cumulative", "allocation", "posterior", "uplift")


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def log_in(client, token: str = ADMIN_TOKEN, next_url: str | None = None):
    page = client.get("/login").get_data(as_text=True)
    data = {"token": token, "csrf_token": csrf_of(page)}
    if next_url is not None:
        data["next"] = next_url
    return client.post("/login", data=data)


@pytest.fixture
def session(client):
    """A logged-in test client and the CSRF token of its session."""
    assert log_in(client).status_code == 303
    return client, csrf_of(client.get("/experiments/new").get_data(as_text=True))


def data_values(html: str) -> list[tuple[list, object, str]]:
    """(path, value, text) of every number the page marks with data-path/data-value."""
    found = re.findall(r"<span class=\"(?:num|ci)\" data-path='([^']*)' data-value='([^']*)'>([^<]*)</span>", html)
    return [(json.loads(p), json.loads(v), t) for p, v, t in found]


def resolve(stats: dict, path: list):
    node = stats
    if path[0] == "variants":
        node, path = next(v for v in stats["variants"] if v["key"] == path[1]), path[2:]
    elif path[0] == "segments":
        segment = next(s for s in stats["segments"] if (s["feature"], s["level"]) == (path[1], path[2]))
        node, path = next(v for v in segment["variants"] if v["key"] == path[3]), path[4:]
    for part in path:
        node = node[part]
    return node


# -- login and redirects ---------------------------------------------------------------------------

@pytest.mark.parametrize("path", PROTECTED)
def test_pages_without_a_session_redirect_to_login(client, make_experiment, path):
    make_experiment()
    response = client.get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


def test_login_form_and_flow(client):
    page = client.get("/login")
    assert page.status_code == 200
    assert re.search(r'<input[^>]+name="token"', page.get_data(as_text=True))
    wrong = log_in(client, "not-the-token")
    assert wrong.status_code == 401 and "not the admin token" in wrong.get_data(as_text=True)
    assert client.get("/").status_code == 302
    response = log_in(client, next_url="/experiments/new")
    assert response.status_code == 303 and response.headers["Location"] == "/experiments/new"
    cookie = response.headers["Set-Cookie"]
    assert "lever_session=" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # test/development: plain http on loopback
    assert ADMIN_TOKEN not in cookie
    assert client.get("/").status_code == 200
    assert client.get("/login").status_code == 302  # already logged in


def test_login_refuses_open_redirects_and_missing_csrf(client):
    assert log_in(client, next_url="//evil.example/x").headers["Location"] == "/"
    client.post("/logout", data={"csrf_token": csrf_of(client.get("/").get_data(as_text=True))})
    assert client.post("/login", data={"token": ADMIN_TOKEN}).status_code == 400
    assert client.get("/").status_code == 302


def test_logout_needs_csrf_and_ends_the_session(session):
    client, csrf = session
    assert client.post("/logout").status_code == 400
    assert client.get("/").status_code == 200
    assert client.post("/logout", data={"csrf_token": csrf}).status_code == 303
    assert client.get("/").status_code == 302


def test_session_cookie_is_secure_in_production(tmp_path):
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'p.db'}", "LEVER_ADMIN_TOKEN": ADMIN_TOKEN,
                      "LEVER_SECRET_KEY": SECRET_KEY, "LEVER_ENV": "production"})
    try:
        assert app.config["SESSION_COOKIE_SECURE"] is True
        assert app.config["SESSION_COOKIE_HTTPONLY"] is True and app.config["SESSION_COOKIE_SAMESITE"] == "Lax"
    finally:
        app.extensions["lever.storage"].close()


def test_rotating_the_admin_token_ends_sessions(app, session):
    client, _ = session
    app.config["LEVER_ADMIN_TOKEN"] = "a-brand-new-admin-token-0123456789abcdef"
    assert client.get("/").status_code == 302


# -- actions and CSRF ---------------------------------------------------------------------------------

def status_of(client, admin) -> tuple[str, str | None]:
    body = client.get("/api/v1/experiments/hero", headers=admin).get_json()
    return body["status"], body["winner"]


@pytest.mark.parametrize("token", [None, "", "wrong-token"])
def test_actions_reject_missing_or_wrong_csrf(session, make_experiment, admin, token):
    client, _ = session
    make_experiment()
    data = {"action": "pause"} if token is None else {"action": "pause", "csrf_token": token}
    response = client.post("/experiments/hero/status", data=data)
    assert response.status_code == 400
    assert "security token" in response.get_data(as_text=True)
    assert status_of(client, admin) == ("running", None)


def test_pause_resume_and_stop_with_a_winner(session, make_experiment, admin):
    client, csrf = session
    make_experiment()
    response = client.post("/experiments/hero/status", data={"action": "pause", "csrf_token": csrf})
    assert response.status_code == 303 and response.headers["Location"] == "/experiments/hero"
    assert status_of(client, admin) == ("paused", None)
    assert "Paused: everyone sees the control" in client.get("/experiments/hero").get_data(as_text=True)
    client.post("/experiments/hero/status", data={"action": "resume", "csrf_token": csrf})
    assert status_of(client, admin) == ("running", None)
    assert client.post("/experiments/hero/status", data={"action": "stop", "csrf_token": csrf}).status_code == 400
    assert client.post("/experiments/hero/status",
                       data={"action": "stop", "winner": "zzz", "csrf_token": csrf}).status_code == 400
    client.post("/experiments/hero/status", data={"action": "stop", "winner": "b", "csrf_token": csrf})
    assert status_of(client, admin) == ("stopped", "b")
    assigned = client.post("/api/v1/assign", json={"experiment": "hero", "visitor": "v1"}).get_json()
    assert assigned["variant"] == "b"  # the worker's policy cache was invalidated
    assert client.post("/experiments/hero/status", data={"action": "explode", "csrf_token": csrf}).status_code == 400


# -- the create form ------------------------------------------------------------------------------------

def test_create_form_creates_an_experiment(session, admin):
    client, csrf = session
    page = client.get("/experiments/new").get_data(as_text=True)
    for field in ("key", "name", "variants", "mode", "reward", "holdout", "context"):
        assert f'name="{field}"' in page
    response = client.post("/experiments/new", data={
        "csrf_token": csrf, "key": "pricing-cta", "name": "Pricing CTA", "variants": "control\nb\nc",
        "mode": "contextual", "reward": "binary", "holdout": "0.2",
        "context": '[{"name": "device", "type": "categorical", "levels": ["mobile", "desktop"]}]'})
    assert response.status_code == 303 and response.headers["Location"] == "/experiments/pricing-cta"
    body = client.get("/api/v1/experiments/pricing-cta", headers=admin).get_json()
    assert [v["key"] for v in body["variants"]] == ["control", "b", "c"]
    assert (body["mode"], body["holdout"], body["name"]) == ("contextual", 0.2, "Pricing CTA")
    assert body["context"][0]["name"] == "device"
    assert "Created experiment pricing-cta" in client.get("/experiments/pricing-cta").get_data(as_text=True)


def test_create_form_plans_the_sample_size_and_declares_it(session, admin):
    client, csrf = session
    page = client.get("/experiments/new?baseline_rate=0.1&mde=0.1&variants=2").get_data(as_text=True)
    assert 'id="sample-size-result"' in page and "14,749" in page and "29,498" in page  # fixed: per arm, total
    assert "is out of range" in client.get("/experiments/new?baseline_rate=2&mde=0.1").get_data(as_text=True)
    response = client.post("/experiments/new", data={
        "csrf_token": csrf, "key": "planned", "variants": "control\nb", "mode": "ab", "reward": "binary",
        "holdout": "0", "planned_visitors": "29498"})
    assert response.status_code == 303
    assert client.get("/api/v1/experiments/planned", headers=admin).get_json()["planned_visitors"] == 29498
    refused = client.post("/experiments/new", data={
        "csrf_token": csrf, "key": "planned-bandit", "variants": "control\nb", "mode": "bandit", "reward": "binary",
        "holdout": "0.1", "planned_visitors": "1000"})
    assert refused.status_code == 400 and "applies only to mode ab" in refused.get_data(as_text=True)


def test_create_form_accepts_variants_as_json_with_payloads(session, admin):
    client, csrf = session
    variants = '[{"key": "control", "payload": {"cta": "Sign up"}}, {"key": "b", "payload": {"cta": "Go"}}]'
    response = client.post("/experiments/new", data={"csrf_token": csrf, "key": "cta", "variants": variants,
                                                     "mode": "ab", "reward": "numeric", "holdout": ""})
    assert response.status_code == 303
    body = client.get("/api/v1/experiments/cta", headers=admin).get_json()
    assert body["variants"][1]["payload"] == {"cta": "Go"} and body["reward"] == "numeric"


@pytest.mark.parametrize("fields, message", [
    ({"key": "Bad Key"}, "key must match"),
    ({"variants": "only-one"}, "an experiment needs 2 to 50 variants"),
    ({"variants": "a\na"}, "variant keys must be unique"),
    ({"holdout": "0.9"}, "holdout must be between 0.0 and 0.5"),
    ({"holdout": "ten percent"}, "holdout must be a number"),
    ({"mode": "contextual"}, "a contextual experiment must declare at least one context feature"),
    ({"mode": "contextual", "context": "[{"}, "context is not valid JSON"),
    ({"mode": "contextual", "context": '[{"name": "x", "type": "nope"}]'}, "unknown type"),
    ({"key": "new"}, "reserved"),
])
def test_create_form_shows_validation_messages(session, fields, message):
    client, csrf = session
    data = {"csrf_token": csrf, "key": "ok-key", "variants": "control\nb", "mode": "bandit", "reward": "binary",
            "holdout": "0.1", "context": "", **fields}
    response = client.post("/experiments/new", data=data)
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    error = re.search(r'id="form-error">([^<]*)<', page).group(1)
    assert message in error.replace("&#39;", "'").replace("&#34;", '"')
    assert f'value="{data["key"]}"' in page  # what was typed is kept


def test_create_form_refuses_duplicates_and_missing_csrf(session, make_experiment):
    client, csrf = session
    make_experiment()
    response = client.post("/experiments/new", data={"csrf_token": csrf, "key": "hero", "variants": "a\nb"})
    assert response.status_code == 400 and "exists already" in response.get_data(as_text=True)
    assert client.post("/experiments/new", data={"key": "other", "variants": "a\nb"}).status_code == 400


# -- the report --------------------------------------------------------------------------------------------

@pytest.fixture
def simulated(runner, make_experiment):
    make_experiment(holdout=0.3)
    result = runner.invoke(args=["simulate", "hero", "--visitors", "600", "--rates", "control=0.05,b=0.10"])
    assert result.exit_code == 0, result.output


def test_report_shows_every_number_of_the_stats_json(session, simulated, admin):
    client, _ = session
    response = client.get("/experiments/hero")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    stats = client.get("/api/v1/experiments/hero/stats", headers=admin).get_json()
    values = data_values(html)
    assert len(values) > 60
    for path, value, _text in values:
        assert resolve(stats, path) == value, path
    shown = {tuple(p) for p, _, _ in values}
    for v in stats["variants"]:
        for field in ("visitors", "conversions", "rate", "ci", "chance_to_be_best", "expected_loss", "allocation",
                      "visitors_total", "conversions_total", "credible_interval_relative"):
            assert ("variants", v["key"], field) in shown
        for estimate in ("ips", "snips", "dr"):
            assert ("variants", v["key"], estimate, "value") in shown
    b = next(v for v in stats["variants"] if v["key"] == "b")
    for field in ("relative", "ci_relative", "absolute", "ci_absolute", "p_value", "p_value_adjusted",
                  "always_valid_p_value", "se_absolute", "se_relative"):
        assert ("variants", "b", "uplift", field) in shown
    text_of = {tuple(p): t for p, _, t in values}
    assert text_of[("variants", "b", "rate")] == f"{b['rate'] * 100:.2f}%"
    assert text_of[("variants", "b", "visitors_total")] == f"{b['visitors_total']:,}"
    assert ("personalisation", "vs_holdout", "relative") in shown and ("srm", "p_value") in shown
    assert any(p[0] == "segments" for p in shown) and ("off_policy", "current_policy", "value") in shown


def test_report_has_every_chart_as_inline_svg_and_a_strict_csp(session, simulated):
    client, _ = session
    response = client.get("/experiments/hero")
    html = response.get_data(as_text=True)
    for name in CHARTS:
        assert re.search(rf'<figure class="card chart" id="chart-{name}">.*?<svg [^>]*data-chart="{name}"', html, re.S)
    assert html.count("<svg ") == 4 and html.count("</svg>") == 4
    assert "<script" not in html and " style=" not in html and "<style" not in html  # nothing the CSP would block
    assert "<text " in html  # real text in the charts (axis labels)
    csp = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "style-src 'self'" in csp and "img-src 'self' data:" in csp
    assert "unsafe-inline" not in csp and "script-src" not in csp  # default-src 'none': no scripts at all
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert 'id="verdict"' in html and 'id="learning"' in html and 'id="personalisation"' in html
    assert 'data-warning="adaptive_allocation"' in html


def test_charts_are_cached_per_model_version(session, simulated, monkeypatch):
    import app.reporting.charts

    client, _ = session
    calls = []
    real = app.reporting.charts.render_charts
    monkeypatch.setattr(app.reporting.charts, "render_charts", lambda *a: calls.append(1) or real(*a))
    first = client.get("/experiments/hero").get_data(as_text=True)
    second = client.get("/experiments/hero").get_data(as_text=True)
    assert len(calls) == 1
    assert re.findall(r"<svg .*?</svg>", first, re.S) == re.findall(r"<svg .*?</svg>", second, re.S)
    client.post("/api/v1/assign", json={"experiment": "hero", "visitor": "one-more"})
    client.get("/experiments/hero")
    assert len(calls) == 2  # a new model version draws new charts


def test_downloads_equal_the_api(session, simulated, admin):
    client, _ = session
    api_stats = client.get("/api/v1/experiments/hero/stats", headers=admin).get_json()
    assert client.get("/experiments/hero/stats.json").get_json() == api_stats
    api_csv = client.get("/api/v1/experiments/hero/events.csv", headers=admin).get_data()
    page_csv = client.get("/experiments/hero/events.csv")
    assert page_csv.mimetype == "text/csv" and page_csv.get_data() == api_csv


def test_index_lists_experiments_with_their_summary(session, simulated, make_experiment):
    client, _ = session
    make_experiment("empty-one")
    html = client.get("/").get_data(as_text=True)
    assert 'href="/experiments/hero"' in html and 'href="/experiments/empty-one"' in html
    row = re.search(r'<tr data-experiment="hero">.*?</tr>', html, re.S).group(0)
    assert '<td class="r" data-field="visitors">600</td>' in row
    assert "badge-" in row
    empty = re.search(r'<tr data-experiment="empty-one">.*?</tr>', html, re.S).group(0)
    assert "No data yet" in empty


def test_empty_numeric_and_contextual_reports_render(session, make_experiment, runner):
    client, _ = session
    make_experiment("empty")
    html = client.get("/experiments/empty").get_data(as_text=True)
    assert "No verdict yet" in html and html.count("<svg ") == 4
    make_experiment("revenue", reward="numeric", mode="ab")
    assert runner.invoke(args=["simulate", "revenue", "--visitors", "300"]).exit_code == 0
    html = client.get("/experiments/revenue").get_data(as_text=True)
    assert "Mean per visitor" in html and html.count("<svg ") == 4
    context = [{"name": "device", "type": "categorical", "levels": ["mobile", "desktop", "tablet"]}]
    make_experiment("ctx", mode="contextual", context=context, variants=["a", "b", "c"], control="a")
    assert runner.invoke(args=["simulate", "ctx", "--visitors", "300"]).exit_code == 0
    html = client.get("/experiments/ctx").get_data(as_text=True)
    assert 'id="segment-winners"' in html and "device = mobile" in html


def test_auto_refresh_and_unknown_experiments(session, make_experiment):
    client, _ = session
    make_experiment()
    assert '<meta http-equiv="refresh" content="30">' in client.get("/experiments/hero?refresh=30").get_data(as_text=True)
    assert 'content="5"' in client.get("/experiments/hero?refresh=1").get_data(as_text=True)
    assert "http-equiv" not in client.get("/experiments/hero").get_data(as_text=True)
    missing = client.get("/experiments/nope")
    assert missing.status_code == 404 and missing.mimetype == "text/html"
