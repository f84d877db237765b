"""lever.js in a real browser: headless Chromium (Playwright) against gunicorn on loopback,
with the test pages served from a second origin (SiteServer on another port), so every
call to the service is cross-origin, as on a customer's site.

If Chromium or Playwright is missing these tests fail (tests/browser.py), never skip.
"""
from __future__ import annotations

import json
import sqlite3
import time
from contextlib import closing
from pathlib import Path

import pytest
import requests

from app.service.demo import DEMO_EXPERIMENT

from .browser import SiteServer, browser_page, chromium  # noqa: F401  (pytest fixtures)
from .conftest import ADMIN_TOKEN, SECRET_KEY, experiment_body
from .servers import free_port, gunicorn

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
CONTROL, B = "Project tracking, simply", "Ship on time, every week"
CONTEXT_KEYS = {"device", "hour", "weekday", "tz_offset", "language", "referrer", "landing_path", "path",
                "visits", "returning"}


class Lever:
    def __init__(self, base: str, db: Path) -> None:
        self.base, self.db = base, db

    def create(self, key: str, **overrides) -> None:
        body = experiment_body(key, variants=[{"key": "control", "payload": {"headline": CONTROL}},
                                              {"key": "b", "payload": {"headline": B}}], **overrides)
        response = requests.post(f"{self.base}/api/v1/experiments", json=body, headers=ADMIN, timeout=10)
        assert response.status_code == 201, response.text

    def query(self, sql: str, *params) -> list[tuple]:
        with closing(sqlite3.connect(self.db)) as conn:
            return conn.execute(sql, params).fetchall()

    def assignments(self, key: str) -> list[tuple]:
        return self.query("SELECT a.id, v.key FROM assignments a JOIN experiments e ON e.id = a.experiment_id "
                          "JOIN variants v ON v.id = a.variant_id WHERE e.key = ?", key)

    def rewards(self, key: str) -> list[float]:
        return [value for (value,) in self.query(
            "SELECT r.value FROM rewards r JOIN experiments e ON e.id = r.experiment_id WHERE e.key = ?", key)]


@pytest.fixture(scope="module")
def lever(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("snippet-browser")
    env = {"LEVER_ADMIN_TOKEN": ADMIN_TOKEN, "LEVER_SECRET_KEY": SECRET_KEY, "LEVER_REFRESH_MS": "200"}
    # one worker starts in a third of the time of two; the concurrency tests cover several
    with gunicorn(f"sqlite:///{tmp / 'lever.db'}", workers=1, env=env, log_path=tmp / "gunicorn.log") as base:
        yield Lever(base, tmp / "lever.db")


@pytest.fixture(scope="module")
def site():
    with SiteServer() as server:
        yield server


def page(base: str, body: str, *, script_attrs: str = "async", head: str = "") -> str:
    """A customer's page on the second origin: lever.js from the service, async, in the head."""
    return (f'<!doctype html><html><head><meta charset="utf-8"><title>shop</title><link rel="icon" href="data:,">'
            f'<script>window.__events = []; window.lever = [function (l) {{'
            f'["assign", "fallback", "reward"].forEach(function (t) {{ l.on(t, function (r) {{'
            f'window.__events.push([t, r, performance.now()]); }}); }}); }}];</script>{head}'
            f'<script src="{base}/lever.js" {script_attrs}></script></head><body>{body}</body></html>')


def hero(key: str, extra: str = "") -> str:
    return (f'<section data-lever-experiment="{key}"><h1 data-lever-variant="control">Control</h1>'
            f'<h1 data-lever-variant="b" hidden>Variant B</h1><p data-lever-field="headline">{CONTROL}</p>'
            f'{extra}</section>')


def settled(watch, count: int = 1) -> None:
    watch.page.wait_for_function(
        "n => document.querySelectorAll('[data-lever-experiment][data-lever-state]').length >= n", arg=count)


def shown(watch, key: str) -> list[str]:
    """The variant elements of the experiment a person can see."""
    return watch.page.evaluate(
        """key => Array.from(document.querySelectorAll(`[data-lever-experiment="${key}"] [data-lever-variant]`))
             .filter(e => e.checkVisibility({visibilityProperty: true}))
             .map(e => e.getAttribute('data-lever-variant'))""", key)


def state(watch, key: str) -> dict:
    return watch.page.evaluate(
        """key => { const el = document.querySelector(`[data-lever-experiment="${key}"]`);
                    return {state: el.getAttribute('data-lever-state'), served: el.getAttribute('data-lever-served'),
                            field: (el.querySelector('[data-lever-field]') || {}).textContent}; }""", key)


def stored(watch) -> dict:
    return watch.page.evaluate("() => ({local: {...localStorage}, cookie: document.cookie})")


def events(watch, kind: str | None = None) -> list:
    return [e for e in watch.page.evaluate("window.__events") if kind is None or e[0] == kind]


def api_calls(watch, lever: Lever, path: str = "/api/") -> list:
    return watch.requests_to(lever.base + path)


def wait_for(condition, timeout_s: float = 5.0, interval_s: float = 0.05):
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval_s)


# -- assignment ---------------------------------------------------------------------------

def test_served_variant_shown_others_hidden_and_the_same_after_reload(lever, site, browser_page):
    lever.create("hero-sticky")
    url = site.page("/landing.html", page(lever.base, hero("hero-sticky")))
    watch = browser_page(locale="de-DE", timezone_id="Asia/Kolkata")
    watch.page.goto(url + "?utm_source=newsletter&utm_campaign=spring")
    settled(watch)

    first = state(watch, "hero-sticky")
    assert first["state"] == "assigned" and first["served"] in ("control", "b")
    assert shown(watch, "hero-sticky") == [first["served"]]
    assert first["field"] == (B if first["served"] == "b" else CONTROL)  # payload fills data-lever-field
    assert lever.assignments("hero-sticky") == [(lever.assignments("hero-sticky")[0][0], first["served"])]

    # one simple cross-origin POST (text/plain: no preflight) with the collected context
    calls = api_calls(watch, lever)
    assert [(r.method, r.url) for r in calls] == [("POST", f"{lever.base}/api/v1/assign")]
    assert calls[0].headers["content-type"].startswith("text/plain")
    body = calls[0].post_data_json
    visitor = json.loads(stored(watch)["local"]["lever"])["id"]
    assert body["experiments"] == ["hero-sticky"] and body["visitor"] == visitor
    context = body["context"]
    assert CONTEXT_KEYS <= set(context)
    assert context["tz_offset"] == -330 and context["language"] == "de-DE" and context["device"] == "desktop"
    assert context["utm_source"] == "newsletter" and context["utm_campaign"] == "spring"
    assert context["landing_path"] == "/landing.html" and context["visits"] == 0 and context["returning"] is False
    assert 0 <= context["hour"] <= 23 and 0 <= context["weekday"] <= 6
    assert [e[1]["variant"] for e in events(watch, "assign")] == [first["served"]]

    # a later visit (the last one ended over 30 minutes ago): same variant, counted as returning
    watch.page.evaluate("""() => { const r = JSON.parse(localStorage.lever); r.t -= 3600e3;
                                   localStorage.lever = JSON.stringify(r); }""")
    watch.page.reload()
    settled(watch)
    assert state(watch, "hero-sticky")["served"] == first["served"]
    assert shown(watch, "hero-sticky") == [first["served"]]
    again = api_calls(watch, lever)[-1].post_data_json
    assert again["visitor"] == visitor and again["context"]["visits"] == 1 and again["context"]["returning"] is True
    assert events(watch, "assign")[0][1]["sticky"] is True
    assert len(lever.assignments("hero-sticky")) == 1  # sticky: no second assignment
    watch.assert_clean()


@pytest.mark.parametrize("loading", ["async", "blocking"])
def test_experiments_on_a_page_are_assigned_in_one_request_and_refresh_finds_new_ones(lever, site, browser_page,
                                                                                        loading):
    keys = [f"batch-{loading}-{name}" for name in "abcd"]
    for key in keys:
        lever.create(key)
    a, b, c, d = keys
    # c is asked for by code (queued before lever.js loaded); a blocking script runs before the body exists
    head = f"<script>window.lever.push(function (l) {{ window.__c = l.assign('{c}'); }});</script>"
    url = site.page(f"/two-{loading}.html", page(lever.base, hero(a) + hero(b), head=head,
                                                 script_attrs="async" if loading == "async" else ""))
    watch = browser_page()
    watch.page.goto(url)
    settled(watch, 2)
    calls = api_calls(watch, lever)
    assert len(calls) == 1
    assert sorted(calls[0].post_data_json["experiments"]) == [a, b, c]
    result = watch.page.evaluate("window.__c")
    assert result["experiment"] == c and result["variant"] in ("control", "b") and not result["fallback"]
    assert "assignment" not in result or result["assignment"] is None  # the token stays inside the snippet
    for key in (a, b):
        assert shown(watch, key) == [state(watch, key)["served"]]

    # a single-page app renders a new experiment: refresh() assigns it, once
    watch.page.evaluate("""html => { document.body.insertAdjacentHTML('beforeend', html); return lever.refresh(); }""",
                        hero(d))
    assert state(watch, d)["state"] == "assigned"
    assert len(api_calls(watch, lever)) == 2
    assert watch.page.evaluate("lever.refresh().then(() => 'done')") == "done"
    assert len(api_calls(watch, lever)) == 2  # nothing new to assign
    watch.assert_clean()


def test_an_unknown_experiment_does_not_spoil_the_others(lever, site, browser_page):
    lever.create("known-one")
    url = site.page("/unknown.html", page(lever.base, hero("known-one") + hero("no-such-experiment")))
    watch = browser_page()
    watch.page.goto(url)
    settled(watch, 2)
    assert state(watch, "known-one")["state"] == "assigned"
    assert state(watch, "no-such-experiment")["state"] == "fallback"
    assert shown(watch, "no-such-experiment") == ["control"]
    watch.assert_clean(allow_network=True)  # Chromium itself logs the 404 of the first attempt


# -- goals -----------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["link", "form"])
def test_a_goal_counts_exactly_once_when_the_page_navigates_away(lever, site, browser_page, kind):
    key = f"goal-{kind}"
    lever.create(key, reward="numeric")
    goal = (f'<a id="go" href="/thanks.html" data-lever-goal="{key}" data-lever-value="12.5">Buy</a>' if kind == "link"
            else f'<form action="/thanks.html" data-lever-goal="{key}" data-lever-value="12.5">'
                 f'<button id="go">Buy</button></form>')
    url = site.page(f"/{kind}.html", page(lever.base, hero(key, goal)))
    site.page("/thanks.html", page(lever.base, "<p>Thank you</p>"))
    watch = browser_page()
    watch.page.goto(url)
    settled(watch)
    watch.page.click("#go")
    watch.page.wait_for_url("**/thanks.html*")
    assert wait_for(lambda: lever.rewards(key)), "the conversion never arrived"
    time.sleep(0.5)  # a duplicate would have arrived by now
    assert lever.rewards(key) == [12.5]
    beacons = [r for r in api_calls(watch, lever, "/api/v1/reward")]
    assert len(beacons) == 1
    body = json.loads(beacons[0].post_data)
    assert set(body) == {"assignment", "value", "event_id"} and body["value"] == 12.5 and len(body["event_id"]) == 32

    # on a later page without the experiment, a goal is credited to the visitor's assignment
    assert watch.page.evaluate(f"lever.reward('{key}', 5)") is True
    assert wait_for(lambda: len(lever.rewards(key)) == 2)
    assert sorted(lever.rewards(key)) == [5.0, 12.5]
    watch.assert_clean()


# -- the service down, failing or slow ----------------------------------------------------------

def _failing(handler) -> None:
    handler.respond(500, "application/json", b'{"error": {"code": "internal_error", "message": "boom"}}',
                    {"Access-Control-Allow-Origin": "*"})


def _slow(handler) -> None:
    time.sleep(1.5)  # then a valid-looking answer that must be ignored
    answer = {"visitor": "x", "assignments": [{"assignment": "t", "experiment": "slow-hero", "variant": "b",
                                               "payload": {"headline": B}, "status": "running"}]}
    handler.respond(200, "application/json", json.dumps(answer).encode(), {"Access-Control-Allow-Origin": "*"})


@pytest.mark.parametrize("failure", ["down", "error", "slow"])
def test_control_within_the_timeout_when_the_service_fails(lever, site, browser_page, failure):
    api = {"down": f"http://127.0.0.1:{free_port()}",
           "error": site.route("/failing", _failing),
           "slow": site.route("/slow", _slow)}[failure]
    goal = '<button id="go" data-lever-goal="slow-hero">Go</button>'
    timeout_ms = 800 if failure == "slow" else 400  # slow: the default timeout (no data-timeout)
    attrs = f'data-api="{api}" async' + ("" if failure == "slow" else f' data-timeout="{timeout_ms}"')
    url = site.page(f"/fail-{failure}.html", page(lever.base, hero("slow-hero", goal), script_attrs=attrs))
    watch = browser_page()
    watch.page.goto(url)
    if failure == "slow":  # hidden while waiting (no flash of the control before a variant)
        watch.page.wait_for_function("window.lever && !Array.isArray(window.lever)")
        assert watch.page.evaluate(
            "getComputedStyle(document.querySelector('[data-lever-experiment]')).visibility") == "hidden"
    settled(watch)
    assert state(watch, "slow-hero")["state"] == "fallback"
    assert shown(watch, "slow-hero") == ["control"]
    assert state(watch, "slow-hero")["field"] == CONTROL
    started = watch.page.evaluate(
        "performance.getEntriesByType('resource').find(e => e.name.endsWith('/lever.js')).responseEnd")
    (kind, result, at), = events(watch)
    assert kind == "fallback" and result["variant"] is None and result["fallback"] is True
    assert result["reason"] == ("timeout" if failure == "slow" else "error")
    assert at - started < timeout_ms + 400, f"control after {at - started:.0f} ms"
    if failure == "slow":
        assert at - started >= timeout_ms - 50  # it did wait for the service
    if failure == "slow":
        time.sleep(1.0)  # the late answer (at 1.5 s) would have arrived: the page keeps the control
        assert shown(watch, "slow-hero") == ["control"] and state(watch, "slow-hero")["state"] == "fallback"
    watch.page.click("#go")  # the visitor saw the control: nothing to credit
    time.sleep(0.2)
    assert watch.requests_to(api + "/api/v1/reward") == []
    watch.assert_clean(allow_network=True)


# -- privacy -------------------------------------------------------------------------------------

def test_consent_required_sends_and_stores_nothing_until_consent(lever, site, browser_page):
    lever.create("consent-hero")
    goal = '<button id="go" data-lever-goal="consent-hero">Go</button>'
    url = site.page("/consent.html",
                    page(lever.base, hero("consent-hero", goal), script_attrs='data-consent="required" async'))
    watch = browser_page()
    watch.page.goto(url)
    settled(watch)
    assert state(watch, "consent-hero")["state"] == "fallback" and shown(watch, "consent-hero") == ["control"]
    watch.page.click("#go")
    assert watch.page.evaluate("lever.reward('consent-hero')") is False
    time.sleep(0.2)
    assert api_calls(watch, lever) == []
    assert stored(watch) == {"local": {}, "cookie": ""}
    assert lever.assignments("consent-hero") == []

    assert watch.page.evaluate("lever.consent(true)") is True
    watch.page.wait_for_function("document.querySelector('[data-lever-experiment]').dataset.leverState === 'assigned'")
    served = state(watch, "consent-hero")["served"]
    assert shown(watch, "consent-hero") == [served]
    assert len(api_calls(watch, lever)) == 1 and "lever" in stored(watch)["local"]

    watch.page.reload()  # consent is remembered
    settled(watch)
    assert state(watch, "consent-hero")["served"] == served

    assert watch.page.evaluate("lever.consent(false)") is False  # withdrawn: the visitor is forgotten
    assert stored(watch) == {"local": {}, "cookie": ""}
    calls = len(api_calls(watch, lever))
    watch.page.reload()
    settled(watch)
    assert state(watch, "consent-hero")["state"] == "fallback" and len(api_calls(watch, lever)) == calls
    assert len(lever.assignments("consent-hero")) == 1
    watch.assert_clean()


def test_an_opt_out_is_remembered_without_keeping_the_visitor(lever, site, browser_page):
    lever.create("opt-out-hero")
    url = site.page("/opt-out.html", page(lever.base, hero("opt-out-hero")))
    watch = browser_page()
    watch.page.goto(url)
    settled(watch)
    assert state(watch, "opt-out-hero")["state"] == "assigned"
    assert watch.page.evaluate("lever.consent(false)") is False
    assert json.loads(stored(watch)["local"]["lever"]) == {"o": 1}  # the refusal only: no id
    calls = len(api_calls(watch, lever))
    watch.page.reload()
    settled(watch)
    assert state(watch, "opt-out-hero")["state"] == "fallback" and len(api_calls(watch, lever)) == calls
    assert watch.page.evaluate("lever.consent(true)") is True  # opting in again
    watch.page.wait_for_function("document.querySelector('[data-lever-experiment]').dataset.leverState === 'assigned'")
    watch.assert_clean()


@pytest.mark.parametrize("signal", ["globalPrivacyControl", "doNotTrack"])
def test_global_privacy_control_and_do_not_track_are_respected(lever, site, browser_page, signal):
    lever.create(f"gpc-{signal.lower()}")
    key = f"gpc-{signal.lower()}"
    value = "true" if signal == "globalPrivacyControl" else "'1'"
    goal = f'<button id="go" data-lever-goal="{key}">Go</button>'
    url = site.page(f"/{key}.html", page(lever.base, hero(key, goal)))
    watch = browser_page()
    watch.page.add_init_script(f"Object.defineProperty(Navigator.prototype, '{signal}', {{get: () => {value}}});")
    watch.page.goto(url)
    settled(watch)
    assert state(watch, key)["state"] == "fallback" and shown(watch, key) == ["control"]
    assert watch.page.evaluate("lever.consent(true)") is False  # the browser's signal wins
    assert watch.page.evaluate("lever.track('purchase', 5)") is False
    watch.page.click("#go")
    time.sleep(0.2)
    assert api_calls(watch, lever) == [] and stored(watch) == {"local": {}, "cookie": ""}
    watch.assert_clean()


BLOCK_LOCAL_STORAGE = ("Object.defineProperty(window, 'localStorage', "
                       "{get() { throw new DOMException('denied', 'SecurityError'); }});")
BLOCK_COOKIES = "Object.defineProperty(Document.prototype, 'cookie', {get() { return ''; }, set(v) {}});"


@pytest.mark.parametrize("blocked", ["all-storage", "local-storage-only"])
def test_blocked_storage(lever, site, browser_page, blocked):
    key = f"storage-{blocked}"
    lever.create(key)
    url = site.page(f"/{key}.html", page(lever.base, hero(key)))
    watch = browser_page()
    watch.page.add_init_script(BLOCK_LOCAL_STORAGE + (BLOCK_COOKIES if blocked == "all-storage" else ""))
    watch.page.goto(url)
    settled(watch)
    if blocked == "all-storage":  # the visitor cannot be kept: control, and nothing sent
        assert state(watch, key)["state"] == "fallback" and shown(watch, key) == ["control"]
        assert events(watch)[0][1]["reason"] == "storage"
        assert api_calls(watch, lever) == []
    else:  # a first-party cookie keeps the visitor instead
        served = state(watch, key)["served"]
        assert "lever=" in watch.page.evaluate("document.cookie")
        watch.page.reload()
        settled(watch)
        assert state(watch, key)["served"] == served and len(lever.assignments(key)) == 1
    watch.assert_clean()


# -- the demo page ---------------------------------------------------------------------------------

def test_demo_page_is_personalised_and_counts_the_sign_up(lever, browser_page):
    response = requests.post(f"{lever.base}/api/v1/experiments", json=DEMO_EXPERIMENT, headers=ADMIN, timeout=10)
    assert response.status_code == 201, response.text
    watch = browser_page()
    watch.page.goto(f"{lever.base}/demo")
    settled(watch)
    served = state(watch, "homepage-hero")["served"]
    payload = next(v["payload"] for v in DEMO_EXPERIMENT["variants"] if v["key"] == served)
    assert watch.page.inner_text("h1") == payload["headline"]
    assert watch.page.inner_text(".cta") == payload["cta"]
    assert served in watch.page.inner_text("#lever-status")
    watch.page.click(".cta")
    assert watch.page.is_visible("#thanks")
    assert wait_for(lambda: lever.rewards("homepage-hero")) == [1.0]
    assert watch.page.get_attribute("a[href='/experiments/homepage-hero']", "href")
    watch.assert_clean()  # includes CSP: the snippet's style carries the page's nonce


# -- events: lever.track and the automatic ones ---------------------------------------------------

def visitor_of(watch) -> str:
    return json.loads(stored(watch)["local"]["lever"])["id"]


def logged(lever: Lever, visitor: str) -> list[dict]:
    """The visitor's events as the service stored them (the admin's data export)."""
    response = requests.get(f"{lever.base}/api/v1/visitors/{visitor}", headers=ADMIN, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["events"]


def event_calls(watch, lever: Lever) -> list:
    watch.page.wait_for_timeout(20)  # the sync API hears of requests only while it is called
    return api_calls(watch, lever, "/api/v1/events")


def sent_events(watch, lever: Lever) -> list[dict]:
    return [json.loads(r.post_data) for r in event_calls(watch, lever)]


def test_tracked_events_wait_for_the_token_batch_and_count_a_repeated_event_id_once(lever, site, browser_page):
    lever.create("track-hero")
    # tracked before lever.js has even asked for a variant: held until the visitor_token is known
    head = ("<script>window.lever.push(function (l) { window.__early = "
            "l.track('purchase', 49.9, {event_id: 'order-991'}); });</script>")
    url = site.page("/track.html", page(lever.base, hero("track-hero"), head=head))
    watch = browser_page()
    watch.page.goto(url)
    settled(watch)
    assert watch.page.evaluate("window.__early") is True
    visitor = visitor_of(watch)
    assert wait_for(lambda: logged(lever, visitor)), "the early event never arrived"
    first = event_calls(watch, lever)
    assert len(first) == 1 and first[0].headers["content-type"].startswith("text/plain")  # no preflight
    body = first[0].post_data_json
    assert body["visitor"] == visitor and body["visitor_token"]
    assert body["events"] == [{"name": "purchase", "value": 49.9, "event_id": "order-991"}]

    # the same order again (a retry) and a new event: one request after 2 s
    assert watch.page.evaluate("lever.track('purchase', 49.9, {event_id: 'order-991'}) && lever.track('signup')")
    time.sleep(1.0)
    assert len(event_calls(watch, lever)) == 1  # still queued
    assert wait_for(lambda: len(event_calls(watch, lever)) == 2, timeout_s=3)
    second = sent_events(watch, lever)[1]["events"]
    assert [e["name"] for e in second] == ["purchase", "signup"]
    assert len(second[1]["event_id"]) == 32 and second[1]["value"] == 1  # a random id when none is given

    # 20 queued go at once, without waiting for the timer
    assert watch.page.evaluate("Array.from({length: 20}, (_, i) => lever.track('view_item', i)).every(Boolean)")
    assert wait_for(lambda: len(event_calls(watch, lever)) == 3, timeout_s=1)
    assert [e["value"] for e in sent_events(watch, lever)[2]["events"]] == list(range(20))

    # invalid names and values are refused in the page, not sent
    assert watch.page.evaluate("[lever.track('bad name'), lever.track('x', 'NaN'), lever.track(''), lever.track(null)]") == [False] * 4
    assert wait_for(lambda: len(logged(lever, visitor)) == 22)
    events_stored = logged(lever, visitor)
    assert [(e["name"], e["value"]) for e in events_stored if e["name"] != "view_item"] == [
        ("purchase", 49.9), ("signup", 1.0)]  # order-991 counted once
    watch.assert_clean()


def test_events_are_flushed_when_the_page_is_left_on_a_page_without_experiments(lever, site, browser_page):
    lever.create("track-leave")
    url = site.page("/leave-first.html", page(lever.base, hero("track-leave")))
    bare = site.page("/leave-bare.html", page(lever.base, '<a id="away" href="/leave-next.html">next</a>'))
    site.page("/leave-next.html", "<p>next</p>")
    watch = browser_page()
    watch.page.goto(url)
    settled(watch)
    visitor = visitor_of(watch)
    assert "k" in json.loads(stored(watch)["local"]["lever"])  # the token is kept with the visitor
    watch.page.goto(bare)  # no experiment here, so no assign: the kept token is used
    watch.page.wait_for_function("!!(window.lever && window.lever.track)")  # a function would be called
    assert watch.page.evaluate("lever.track('checkout', 3, {event_id: 'cart-7'})") is True
    watch.page.click("#away")  # well within the 2 s timer: only pagehide can send it
    watch.page.wait_for_url("**/leave-next.html")
    assert wait_for(lambda: logged(lever, visitor)), "the event was lost when the page was left"
    assert [(e["name"], e["value"], e["event_id"]) for e in logged(lever, visitor)] == [("checkout", 3.0, "cart-7")]
    assert len(api_calls(watch, lever, "/api/v1/assign")) == 1
    watch.assert_clean()


def test_no_events_without_consent_and_the_page_view_once_consent_is_given(lever, site, browser_page):
    lever.create("track-consent")
    url = site.page("/track-consent.html", page(
        lever.base, hero("track-consent", '<button id="cta" data-lever-track="cta_click">Go</button>'),
        script_attrs='data-consent="required" data-auto="pageview clicks dwell" async'))
    site.page("/track-consent-next.html", "<p>next</p>")
    watch = browser_page()
    watch.page.goto(url)
    settled(watch)
    assert watch.page.evaluate("lever.track('purchase', 5)") is False
    watch.page.click("#cta")
    watch.page.goto(site.base + "/track-consent-next.html")  # pagehide: a dwell would go now
    time.sleep(0.3)
    assert api_calls(watch, lever) == [] and watch.page.evaluate("localStorage.length") == 0

    watch.page.goto(url)
    settled(watch)
    assert watch.page.evaluate("lever.consent(true)") is True
    watch.page.wait_for_function("document.querySelector('[data-lever-experiment]').dataset.leverState === 'assigned'")
    visitor = visitor_of(watch)
    assert wait_for(lambda: logged(lever, visitor)), "the page view after consent never arrived"
    assert [e["name"] for e in logged(lever, visitor)] == ["page_view"]
    assert watch.page.evaluate("lever.consent(false)") is False  # withdrawn: queued events are dropped too
    assert watch.page.evaluate("lever.track('purchase', 5)") is False
    watch.assert_clean()


def test_automatic_page_views_clicks_and_visible_time(lever, site, browser_page):
    lever.create("track-auto")
    button = '<button id="cta" data-lever-track="cta_click" data-lever-value="2">Go</button><button id="plain">x</button>'
    url = site.page("/auto.html", page(lever.base, hero("track-auto", button),
                                       script_attrs='data-auto="pageview clicks dwell" async'))
    site.page("/auto-next.html", "<p>next</p>")
    watch = browser_page()
    watch.page.goto(url)
    settled(watch)
    visitor = visitor_of(watch)
    watch.page.click("#cta")
    watch.page.click("#plain")  # not marked: not tracked
    # a single-page app moves to another URL: one more page view; a refresh on the same URL adds none
    watch.page.evaluate("history.pushState({}, '', '/auto.html#step-2'); lever.refresh(); lever.refresh()")
    time.sleep(1.2)
    watch.page.goto(site.base + "/auto-next.html")
    assert wait_for(lambda: any(e["name"] == "dwell" for e in logged(lever, visitor))), "no dwell at pagehide"
    time.sleep(0.3)
    stored_events = logged(lever, visitor)
    names = sorted(e["name"] for e in stored_events)
    assert names == ["cta_click", "dwell", "page_view", "page_view"], names
    assert next(e["value"] for e in stored_events if e["name"] == "cta_click") == 2.0
    dwell = next(e["value"] for e in stored_events if e["name"] == "dwell")
    assert 1.2 <= dwell < 10, dwell  # visible seconds on the page
    watch.assert_clean()


def test_visible_time_stops_while_the_page_is_hidden(lever, site, browser_page):
    lever.create("track-hidden")
    url = site.page("/hidden.html", page(lever.base, hero("track-hidden"), script_attrs='data-auto="dwell" async'))
    watch = browser_page()
    watch.page.goto(url)
    settled(watch)
    visitor = visitor_of(watch)
    # the tab goes to the background: the visible stretch ends and is sent at once
    hide = """state => { Object.defineProperty(document, 'visibilityState', {value: state, configurable: true});
                         document.dispatchEvent(new Event('visibilitychange')); }"""
    time.sleep(0.5)
    watch.page.evaluate(hide, "hidden")
    assert wait_for(lambda: logged(lever, visitor)), "the dwell was not sent when the page was hidden"
    time.sleep(1.5)  # hidden time does not count
    watch.page.evaluate(hide, "visible")
    time.sleep(0.3)
    watch.page.evaluate(hide, "hidden")
    assert wait_for(lambda: len(logged(lever, visitor)) == 2)
    first, second = (e["value"] for e in logged(lever, visitor))
    assert 0.5 <= first < 5 and 0.3 <= second < 1.4, (first, second)  # the 1.5 s hidden are not in either
    watch.assert_clean()
