"""The report's metric parts: the metric verdict (pure, from hard-coded stats dicts), the uplift CI
bar geometry, and on both backends a page with declared metrics — the metric table primary first with
every number from the stats JSON, a planted failing guardrail shown red with its action, and the
"not a clear win" sentence — while an implicit-reward experiment keeps today's verdict."""
from __future__ import annotations

import html as html_lib
import re
import time

import pytest

from app.reporting import verdict as words
from app.storage import NewAssignment, NewEvent

from .conftest import experiment_body
from .test_report_pages import data_values, resolve, session  # noqa: F401  (session is a fixture)


# -- pure: hard-coded stats dicts -------------------------------------------------------------------

def _up(decision, relative, ci_relative, ci_always_valid=(0.01, 0.05), p=0.01, p_av=0.02):
    return {"absolute": relative / 10, "relative": relative, "ci_relative": list(ci_relative), "p_value": p,
            "p_value_adjusted": p, "always_valid_p_value": p_av, "ci_always_valid": list(ci_always_valid),
            "decision": decision, "relative_scale": "log", "test": "z_pooled", "reason": None}


def _metric(key, role, b_uplift, guardrail=None, kind="conversion"):
    return {"key": key, "role": role, "type": kind, "reason": None, "variants": [
        {"key": "control", "visitors": 1000, "value": 0.1, "ci": [0.08, 0.12], "reason": None, "uplift": None,
         "cuped": None, "cuped_reason": None, "guardrail": None},
        {"key": "b", "visitors": 1000, "value": 0.108, "ci": [0.09, 0.13], "reason": None, "uplift": b_uplift,
         "cuped": None, "cuped_reason": None, "guardrail": guardrail}]}


def _guard(status, bound=-0.12, threshold=-0.02, p=0.003, action="alert"):
    return {"status": status, "always_valid_p_value": p, "bound": bound, "threshold": threshold,
            "action": action, "reason": None}


def _stats(*metrics, stopped=(), personalisation=()):
    return {"metrics": list(metrics), "stopped_variants": list(stopped),
            "personalisation_guardrails": list(personalisation), "guardrail_actions": []}


CONVERSION_WIN = _metric("conversion", "primary", _up("better", 0.08, (0.02, 0.14)))


def test_implicit_reward_metric_has_no_metric_verdict():
    reward = _metric("reward", "primary", _up("better", 0.08, (0.02, 0.14)))
    assert words.metric_verdict(_stats(reward)) is None
    assert words.metric_verdict({"metrics": []}) is None
    assert words.declared_metrics(_stats(CONVERSION_WIN)) is True


def test_primary_winner_with_secondary_worse_is_not_a_clear_win():
    revenue = _metric("revenue_per_visitor", "secondary", _up("worse", -0.05, (-0.09, -0.01)), kind="sum")
    result = words.metric_verdict(_stats(CONVERSION_WIN, revenue))
    assert result.tone == "mixed"
    assert result.headline == ("Variant b lifts conversion +8.0% (95% CI +2.0% to +14.0%) but lowers "
                               "revenue_per_visitor −5.0% (95% CI −9.0% to −1.0%): not a clear win.")


def test_list_badge_follows_the_weighed_metric_verdict():
    """With declared metrics the list badge comes from the metric verdict, not the reward counters
    (which an A/B experiment measured by events leaves empty)."""
    revenue_worse = _metric("revenue", "secondary", _up("worse", -0.05, (-0.09, -0.01)), kind="sum")
    clean = words.summary(_stats(CONVERSION_WIN))
    assert (clean.badge, clean.badge_text) == ("winner", "Decided: b wins")
    assert words.metric_verdict(_stats(CONVERSION_WIN)).winner == "b"
    mixed = words.summary(_stats(CONVERSION_WIN, revenue_worse))
    assert (mixed.badge, mixed.badge_text) == ("no_difference", "Mixed: not a clear win")
    assert words.metric_verdict(_stats(CONVERSION_WIN, revenue_worse)).winner is None
    worse = _metric("conversion", "primary", _up("worse", -0.08, (-0.14, -0.02)))
    assert words.summary(_stats(worse)).badge == "loser"
    open_ = _metric("conversion", "primary", _up("inconclusive", 0.01, (-0.03, 0.05)))
    assert words.summary(_stats(open_)).badge == "no_difference"


def test_primary_winner_with_failing_guardrail_is_not_a_clear_win_and_says_stopped():
    bounce = _metric("bounce", "guardrail", _up("inconclusive", 0.3, (0.1, 0.5)),
                     guardrail=_guard("failing", action="stop_variant"))
    result = words.metric_verdict(_stats(bounce, CONVERSION_WIN, stopped=["b"]))  # primary found by role
    assert result.tone == "mixed"
    assert result.headline == ("Variant b lifts conversion +8.0% (95% CI +2.0% to +14.0%) but fails the bounce "
                               "guardrail (bound −12.0%, tolerated −2.0%, always-valid p = 0.003) and was "
                               "stopped: not a clear win.")


def test_clean_winner_ignores_a_secondary_that_only_looks_worse():
    revenue = _metric("revenue", "secondary", _up("inconclusive", -0.05, (-0.12, 0.02)))
    bounce = _metric("bounce", "guardrail", _up("inconclusive", 0.0, (-0.1, 0.1)), guardrail=_guard("ok"))
    result = words.metric_verdict(_stats(CONVERSION_WIN, revenue, bounce))
    assert result.tone == "positive"
    assert result.headline.endswith("with no guardrail failing and no secondary metric worse: a clear win.")


def test_undecided_primary_with_failing_guardrail_says_keep_the_control_and_personalisation_hurts():
    primary = _metric("conversion", "primary", _up("inconclusive", 0.01, (-0.03, 0.05)))
    bounce = _metric("bounce", "guardrail", None, guardrail=_guard("failing"))
    hurting = {"metric": "conversion", "role": "primary", **_guard("failing", p=0.0004)}
    result = words.metric_verdict(_stats(primary, bounce, personalisation=[hurting]))
    assert result.tone == "negative"
    assert result.headline.startswith("Variant b has no decision on conversion yet but fails the bounce guardrail")
    assert result.headline.endswith(": keep the control.")
    assert result.sentences == ("Personalisation is hurting: the policy's traffic does worse than the random "
                                "holdout on conversion (always-valid p < 0.001).",)


def test_thin_primary_waits_and_an_unanalysable_one_gives_its_reason():
    thin = _metric("conversion", "primary", {**_up("inconclusive", 0.0, (-0.1, 0.1)), "reason": "not_enough_data"})
    result = words.metric_verdict(_stats(thin))
    assert (result.tone, result.headline) == ("waiting", "No decision on conversion yet for variant b.")
    failed = {"key": "conversion", "role": "primary", "type": "conversion", "reason": "no_control_data",
              "variants": []}
    assert words.metric_verdict(_stats(failed)).headline == "No metric verdict yet: no control data."


def test_ordered_metrics_put_the_primary_first_and_keep_indices():
    g = _metric("bounce", "guardrail", None)
    s = _metric("revenue", "secondary", None)
    p = _metric("conversion", "primary", None)
    assert [(i, m["key"]) for i, m in words.ordered_metrics(_stats(g, s, p))] == \
        [(2, "conversion"), (1, "revenue"), (0, "bounce")]


@pytest.mark.parametrize("interval, expected", [
    ((-0.5, 0.5), words.CiBar(0, 100, "none")),
    ((0.02, 0.14), words.CiBar(50, 15, "pos")),  # axis shares 0.52 → 50, 0.64 → 65 in 5% steps
    ((-0.09, -0.01), words.CiBar(40, 10, "neg")),
    ((-3.0, -2.0), words.CiBar(0, 5, "neg")),  # beyond the axis: clamped, still visible
    ((0.001, 0.002), words.CiBar(50, 5, "pos")),
])
def test_ci_bar_geometry(interval, expected):
    assert words.ci_bar(list(interval)) == expected


def test_ci_bar_without_a_finite_interval_is_none():
    assert words.ci_bar(None) is None
    assert words.ci_bar([0.1, float("nan")]) is None


# -- pages on both backends ------------------------------------------------------------------------------

def _define(client, admin, **body):
    assert client.post("/api/v1/metrics", json=body, headers=admin).status_code == 201, body


def _plant(storage, experiment, cells, pre=()):
    """Per variant: n assignments, and the first round(n * rate) of them get each event."""
    ids = {v.key: v.id for v in experiment.variants}
    now = time.time()
    for variant, (n, rates) in cells.items():
        storage.record_assignments([
            NewAssignment(experiment_id=experiment.id, variant_id=ids[variant], visitor=f"{variant}-{i}", sticky=True,
                          context={}, propensity=0.5, probabilities={ids[variant]: 1.0}, holdout=False,
                          model_version=0, created_at=now - 100) for i in range(n)])
        for event, rate in rates.items():
            for i in range(int(round(n * rate))):
                storage.record_events(f"{variant}-{i}", [NewEvent(event, 1.0, None, now - 50)], now)
                if event in pre:  # two in three of them acted before exposure too: a CUPED covariate
                    before = f"{variant}-{i if i % 3 else n - 1 - i}"
                    storage.record_events(before, [NewEvent(event, 1.0, None, now - 150)], now)


@pytest.fixture
def declared(app, client, admin):
    """An A/B test whose b lifts purchases but fails the bounce guardrail (alert)."""
    _define(client, admin, key="purchase_rate", type="conversion", event="purchase")
    _define(client, admin, key="clicks", type="count", event="click")
    _define(client, admin, key="bounce", type="conversion", event="bounce", higher_is_better=False)
    body = experiment_body(mode="ab", holdout=0.0, metrics={
        "primary": "purchase_rate", "secondary": ["clicks"],
        "guardrails": [{"metric": "bounce", "max_regression": 0.0, "action": "alert"}]})
    assert client.post("/api/v1/experiments", json=body, headers=admin).status_code == 201
    storage = app.extensions["lever.services"].storage
    _plant(storage, storage.get_experiment("hero"), {
        "control": (200, {"purchase": 0.1, "click": 0.3, "bounce": 0.1}),
        "b": (200, {"purchase": 0.6, "click": 0.4, "bounce": 0.7})}, pre=("click",))
    return client.get("/api/v1/experiments/hero/stats", headers=admin).get_json()


def _section(html: str, section_id: str) -> str:
    match = re.search(rf'<section class="[^"]*" id="{section_id}".*?</section>', html, re.S)
    assert match, section_id
    return match.group(0)


def test_page_shows_metric_table_primary_first_and_numbers_from_the_stats(session, declared):  # noqa: F811
    client, _ = session
    html = client.get("/experiments/hero").get_data(as_text=True)
    table = _section(html, "metrics-table")
    assert re.findall(r'<tbody class="metric" data-metric="([^"]+)" data-role="([^"]+)"', table) == \
        [("purchase_rate", "primary"), ("clicks", "secondary"), ("bounce", "guardrail")]
    values = [(p, v) for p, v, _ in data_values(html) if p[0] in ("metrics", "personalisation_guardrails")]
    assert len(values) >= 20
    for path, value in values:
        assert resolve(declared, path) == value, path
    shown = {tuple(p) for p, _ in values}
    index = {m["key"]: i for i, m in enumerate(declared["metrics"])}
    assert ("metrics", index["purchase_rate"], "variants", 1, "uplift", "always_valid_p_value") in shown
    assert ("metrics", index["bounce"], "variants", 1, "guardrail", "bound") in shown
    assert 'class="ci-bar-fill ci-pos l-' in table  # b's purchase uplift is wholly above zero
    assert "style=" not in table
    clicks_b = declared["metrics"][index["clicks"]]["variants"][1]
    assert clicks_b["cuped"]["variance_reduction"] > 0.1, clicks_b["cuped"]
    badge = re.search(r'<span class="badge badge-cuped"[^>]*>([^<]+)</span>', table).group(1)
    assert badge == f"CUPED {words.fmt_rel(-clicks_b['cuped']['variance_reduction'], 0)} variance"


def test_planted_failing_guardrail_is_red_with_its_action(session, declared):  # noqa: F811
    client, _ = session
    bounce = next(m for m in declared["metrics"] if m["key"] == "bounce")
    assert next(v for v in bounce["variants"] if v["key"] == "b")["guardrail"]["status"] == "failing"
    html = client.get("/experiments/hero").get_data(as_text=True)
    panel = _section(html, "guardrails")
    assert re.search(r'<li class="guardrail guardrail-failing" data-metric="bounce" data-variant="b" '
                     r'data-status="failing">\s*<span class="badge badge-danger">Failing</span>', panel)
    assert [(a["variant"], a["action"]) for a in declared["guardrail_actions"]] == [("b", "alert")]
    actions = re.search(r'<table class="table compact" id="guardrail-actions">.*?</table>', panel, re.S).group(0)
    assert 'data-action="alert"' in actions and ">b</td>" in actions and "failing: bound +" in actions


def test_page_verdict_weighs_the_guardrail(session, declared):  # noqa: F811
    client, _ = session
    primary = next(m for m in declared["metrics"] if m["role"] == "primary")
    assert next(v for v in primary["variants"] if v["key"] == "b")["uplift"]["decision"] == "better"
    html = client.get("/experiments/hero").get_data(as_text=True)
    block = re.search(r'<div class="metric-verdict metric-verdict-mixed" id="metric-verdict">(.*?)</div>',
                      _section(html, "verdict"), re.S)
    assert block, "metric verdict missing"
    text = html_lib.unescape(block.group(1))
    expected = words.metric_verdict(declared)
    assert expected.headline in text
    assert re.search(r"Variant b lifts purchase_rate \+\d+\.\d% \(95% CI .+\) but fails the bounce guardrail "
                     r"\(bound \+[\d.]+%, tolerated 0\.0%, always-valid p [<=] [\d.]+\): not a clear win\.",
                     expected.headline), expected.headline
    # the weighed verdict is the page's headline: the reward-counter verdict is not shown beside it
    section = _section(html, "verdict")
    assert section.count('class="verdict-headline"') == 1
    assert html_lib.escape(words.verdict(declared).headline, quote=False) not in section.replace("&#39;", "'")


def test_implicit_reward_experiment_keeps_todays_verdict(session, make_experiment, runner, admin):  # noqa: F811
    client, _ = session
    make_experiment(mode="ab", holdout=0.0)
    assert runner.invoke(args=["simulate", "hero", "--visitors", "300", "--rates", "control=0.05,b=0.2"]).exit_code == 0
    stats = client.get("/api/v1/experiments/hero/stats", headers=admin).get_json()
    html = client.get("/experiments/hero").get_data(as_text=True)
    verdict_html = _section(html, "verdict")
    assert 'id="metric-verdict"' not in verdict_html
    assert html_lib.escape(words.verdict(stats).headline, quote=False) in verdict_html.replace("&#39;", "'")
    table = _section(html, "metrics-table")
    assert re.findall(r'data-metric="([^"]+)" data-role="([^"]+)"', table) == [("reward", "primary")]
    assert 'id="guardrails"' not in html  # an A/B test without guardrails has no panel


def test_bandit_page_shows_the_all_visitor_line_from_the_stats(app, session, admin):  # noqa: F811
    """Under a bandit the metric table adds "all visitors (AIPW)" with numbers from ``uplift.adaptive``,
    and a ratio metric says it is analysed on the holdout only."""
    client, _ = session
    _define(client, admin, key="purchase_rate", type="conversion", event="purchase")
    _define(client, admin, key="aov", type="ratio", numerator={"event": "purchase", "aggregate": "sum"},
            denominator={"event": "purchase", "aggregate": "count"})
    body = experiment_body(mode="bandit", holdout=0.5, metrics={"primary": "purchase_rate", "secondary": ["aov"]})
    assert client.post("/api/v1/experiments", json=body, headers=admin).status_code == 201
    storage = app.extensions["lever.services"].storage
    _plant(storage, storage.get_experiment("hero"), {"control": (120, {"purchase": 0.2}),
                                                      "b": (120, {"purchase": 0.5})})
    stats = client.get("/api/v1/experiments/hero/stats", headers=admin).get_json()
    html = client.get("/experiments/hero").get_data(as_text=True)
    table = _section(html, "metrics-table")
    assert "all visitors (AIPW)" in table and "holdout only" in table
    values = [(p, v) for p, v, _ in data_values(html) if p[0] == "metrics"]
    for path, value in values:
        assert resolve(stats, path) == value, path
    assert ("metrics", 0, "variants", 1, "uplift", "adaptive", "relative") in {tuple(p) for p, _ in values}
