"""The report's words and numbers as pure functions of the stats dict: formats, sample
sizes (hard-coded textbook values), verdict sentences, summaries. The verdict follows
``uplift.decision`` only: a small fixed-horizon p without a decision is never a winner."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from app.reporting import verdict as v
from stats import power


def variant(key, visitors, conversions, *, uplift=None, total=None, ci=None, chance=None):
    return {"key": key, "visitors": visitors, "conversions": conversions, "rate": conversions / visitors if visitors else None,
            "mean": None, "ci": ci, "uplift": uplift, "chance_to_be_best": chance,
            "visitors_total": total if total is not None else visitors, "conversions_total": conversions}


def uplift(relative, ci_relative, p_adj, absolute=None, p=None, always_valid=None, reason=None,
           decision="inconclusive", rule="anytime_valid", adaptive=None):
    return {"absolute": absolute if absolute is not None else relative / 100, "ci_absolute": [-0.01, 0.03],
            "relative": relative, "ci_relative": ci_relative, "p_value": p if p is not None else p_adj,
            "p_value_adjusted": p_adj, "always_valid_p_value": always_valid if always_valid is not None else p_adj,
            "reason": reason, "decision": decision, "decision_rule": rule, "adaptive": adaptive}


def stats(variants, mode="ab", reward="binary", **extra):
    body = {"experiment": "hero", "mode": mode, "reward": reward, "control": "control", "status": "running",
            "analysis_slice": "holdout" if mode != "ab" else "all", "variants": variants,
            "srm": {"ok": True, "p_value": 0.5}, "personalisation": None, "segments": [], "warnings": []}
    body.update(extra)
    return body


# -- formats ------------------------------------------------------------------------------------

@pytest.mark.parametrize("function, value, text", [
    (v.fmt_int, 1234567, "1,234,567"),
    (v.fmt_int, None, "—"),
    (v.fmt_pct, 0.011494252873563218, "1.15%"),
    (v.fmt_pct, 0.5, "50.00%"),
    (v.fmt_rel, 0.123, "+12.3%"),
    (v.fmt_rel, -0.05, "−5.0%"),
    (v.fmt_rel, 4.1785714, "+417.9%"),
    (v.fmt_rel, 0.0, "0.0%"),
    (v.fmt_pp, 0.0048, "+0.48 pp"),
    (v.fmt_pp, -0.0310491636, "−3.10 pp"),
    (v.fmt_p, 0.0042, "0.004"),
    (v.fmt_p, 0.00002, "< 0.001"),
    (v.fmt_p, 1.0, "1.000"),
    (v.fmt_p, None, "—"),
    (v.fmt_num, -1234.5, "−1,234.50"),
])
def test_formats(function, value, text):
    assert function(value) == text


def test_fmt_range_and_signed_numbers():
    assert v.fmt_range([0.0020319, 0.0622719]) == "0.20% to 6.23%"
    assert v.fmt_range([-2.44228, 2.08379], v.fmt_rel) == "−244.2% to +208.4%"
    assert v.fmt_range(None) == "—"
    assert v.fmt_num(12.5, signed=True) == "+12.50"


# -- sample sizes --------------------------------------------------------------------------------

def test_two_proportion_sample_size_textbook_values():
    # 10% vs 12%, two-sided α = 0.05, 80% power (Fleiss, no continuity correction): 3,841 per group
    assert v.two_proportion_sample_size(0.10, 0.12) == 3841
    assert v.two_proportion_sample_size(0.12, 0.10) == 3841
    # 5% vs 6%: 8,158 per group; at α = 0.025 (two comparisons, Bonferroni) more are needed
    assert v.two_proportion_sample_size(0.05, 0.06) == 8158
    assert v.two_proportion_sample_size(0.05, 0.06, alpha=0.025) == 9880
    with pytest.raises(ValueError):
        v.two_proportion_sample_size(0.1, 0.1)


def test_two_mean_sample_size_textbook_value():
    # Cohen's d = 0.5 at α = 0.05 and 80% power: 63 per group with the z approximation
    assert v.two_mean_sample_size(1.0, 1.0, 0.5) == 63
    assert v.sd_from_interval([10 - 1.959964, 10 + 1.959964], 100) == pytest.approx(10.0, rel=1e-6)


def test_sample_size_needed_from_observed_rates():
    body = stats([variant("control", 1000, 100), variant("b", 1000, 120, uplift=uplift(0.2, [-0.05, 0.45], 0.16))])
    need = v.sample_size_needed(body)
    assert (need.variant, need.basis, need.per_arm, need.more_per_arm) == ("b", "observed", 3841, 2841)
    assert need.more_analysed_visitors == 5682 and need.more_total_visitors == 5682
    assert need.more_conversions == 626  # ⌈5,682 × 220 / 2,000⌉
    text = v.verdict(body).sentences[0]
    assert text == ("To detect the observed difference (b +20.0% vs control) with 80% power, each variant needs "
                    "about 3,841 visitors: roughly 5,682 more visitors and about 626 more conversions.")


def test_sample_size_under_the_always_valid_rule():
    body = stats([variant("control", 1000, 100), variant("b", 1000, 120, uplift=uplift(0.2, [-0.05, 0.45], 0.16))],
                 decision_rule="anytime_valid")
    need = v.sample_size_needed(body)
    expected = power.required_visitors(0.02, baseline_rate=0.10, rule="anytime_valid", relative=False).per_variant
    assert need.per_arm == expected and expected > 3841  # the fixed test needs 3,841 per arm


def test_sample_size_scales_up_from_the_holdout_and_uses_a_minimum_effect():
    # bandit: only the holdout (10% of traffic) is analysed; a 1% observed difference is sized as 5%
    body = stats([variant("control", 100, 10, total=1000), variant("b", 100, 10, total=1000,
                                                                  uplift=uplift(0.0, [-0.5, 0.5], 1.0))],
                 mode="bandit")
    need = v.sample_size_needed(body, daily_visitors=2000)
    assert need.basis == "minimum" and need.effect_relative == pytest.approx(0.05)
    assert need.per_arm == v.two_proportion_sample_size(0.10, 0.105)
    assert need.more_total_visitors == (need.per_arm - 100) * 2 * 10
    assert need.days == pytest.approx(need.more_total_visitors / 2000)
    assert "in the random holdout" in v.verdict(body, 2000).sentences[0]


def test_no_sample_size_without_conversions():
    body = stats([variant("control", 50, 0), variant("b", 50, 0, uplift=uplift(None, None, None, absolute=0.0,
                                                                                reason="zero_variance"))])
    assert v.sample_size_needed(body) is None
    assert v.verdict(body).headline == "No verdict yet: no conversions yet (every outcome is the same)."


# -- verdicts ------------------------------------------------------------------------------------

def test_verdict_names_the_winner_the_always_valid_rule_decided():
    body = stats([variant("control", 5000, 500),
                  variant("b", 5000, 560, uplift=uplift(0.12, [0.03, 0.21], 0.004, always_valid=0.01,
                                                        decision="better"))],
                 personalisation={"vs_holdout": {"relative": 0.08, "ci_relative": [0.02, 0.14], "p_value": 0.01,
                                                 "reason": None, "decision": "better"}}, mode="bandit")
    result = v.verdict(body)
    assert result.tone == "positive" and result.winner == "b"
    assert result.headline == ("Variant b converts 12.0% better than control (95% CI +3.0% to +21.0%; "
                               "always-valid test, safe to check any time).")
    assert result.sentences == ("Personalisation earns +8.0% over the random holdout (95% CI +2.0% to +14.0%, p = 0.010).",)
    assert result.cautions == ()


def test_bandit_verdict_quotes_the_all_traffic_estimate_it_decided_on():
    adaptive = {"absolute": 0.012, "ci_always_valid": [0.003, 0.021]}
    body = stats([variant("control", 500, 50, total=5000),
                  variant("b", 500, 56, total=5000, uplift=uplift(0.12, [-0.2, 0.5], 0.6, decision="better",
                                                                  rule="adaptive_anytime_valid", adaptive=adaptive))],
                 mode="bandit")
    result = v.verdict(body)
    assert result.winner == "b"
    assert result.headline == ("Variant b converts 1.20 pp better than control (every visitor counted; always-valid "
                               "95% CI +0.30 pp to +2.10 pp, safe to check any time).")


def test_fixed_horizon_rule_decides_only_at_the_planned_size():
    decided = stats([variant("control", 5000, 500),
                     variant("b", 5000, 560, uplift=uplift(0.12, [0.03, 0.21], 0.004, decision="better",
                                                           rule="fixed_horizon"))],
                    decision_rule="fixed_horizon", horizon_reached=True)
    assert v.verdict(decided).headline == ("Variant b converts 12.0% better than control (95% CI +3.0% to +21.0%, "
                                           "p = 0.004 at the planned sample size).")
    waiting = stats([variant("control", 500, 50),
                     variant("b", 500, 80, uplift=uplift(0.6, [0.1, 1.1], 0.004, rule="fixed_horizon"))],
                    decision_rule="fixed_horizon", horizon_reached=False)
    result = v.verdict(waiting)
    assert result.winner is None
    assert result.headline.startswith("No decision yet: the planned sample size has not been reached")


def test_personalisation_sentence_when_the_policy_loses():
    body = stats([variant("control", 100, 10), variant("b", 100, 10)], mode="bandit",
                 personalisation={"vs_holdout": {"relative": -0.012, "ci_relative": [-0.607, 0.584], "p_value": 0.97,
                                                 "reason": None, "decision": "inconclusive"}})
    assert v.verdict(body).sentences[-1] == ("Personalisation does 1.2% worse than the random holdout "
                                              "(95% CI −60.7% to +58.4%, p = 0.970, not decided yet).")


def test_a_small_fixed_p_alone_is_no_winner_while_watching():
    # what peeking at a fixed-horizon p would call significant: the always-valid rule has not decided
    body = stats([variant("control", 5000, 500),
                  variant("b", 5000, 560, uplift=uplift(0.12, [0.03, 0.21], 0.0004, always_valid=0.2))],
                 srm={"ok": False, "p_value": 0.00001})
    result = v.verdict(body)
    assert result.winner is None and result.tone in ("waiting", "neutral")
    assert result.headline == "No decided difference between the variants yet."
    assert result.sentences[0].startswith("Variant b looks better (p < 0.001 at a single look), but that is not yet "
                                          "safe to call")
    assert result.cautions[0].startswith("Sample-ratio mismatch (p < 0.001)")
    assert v.summary(body).badge == "no_difference"


def test_verdict_for_a_losing_variant_and_numeric_rewards():
    body = stats([variant("control", 5000, 500),
                  variant("b", 5000, 400, uplift=uplift(-0.2, [-0.3, -0.1], 0.001, decision="worse"))],
                 reward="numeric")
    result = v.verdict(body)
    assert result.tone == "negative" and result.winner is None
    assert result.headline == ("Variant b earns 20.0% less per visitor than control "
                               "(95% CI −30.0% to −10.0%; always-valid test, safe to check any time).")
    assert result.sentences[0] == "Keep the control: every variant does worse."


def test_verdict_without_data():
    assert v.verdict(stats([variant("control", 0, 0), variant("b", 0, 0)])).headline == \
        "No verdict yet: no visitors so far."
    holdout_empty = stats([variant("control", 0, 0, total=40), variant("b", 0, 0, total=60)], mode="bandit")
    assert v.verdict(holdout_empty).headline.startswith("No verdict yet: no visitor has reached the random holdout")
    assert v.verdict(holdout_empty).sentences == ("Personalisation vs the random holdout: not enough data yet.",)


def test_summary_and_leader():
    body = stats([variant("control", 5000, 500, chance=0.01),
                  variant("b", 5000, 560, chance=0.99, uplift=uplift(0.12, [0.03, 0.21], 0.004, decision="better"))])
    summary = v.summary(body)
    assert (summary.visitors, summary.leader, summary.badge, summary.srm_ok) == (10000, "b", "winner", True)
    assert summary.badge_text == "Decided: b wins"
    assert v.summary(stats([variant("control", 0, 0), variant("b", 0, 0)])).badge == "no_data"


def test_segment_winners_ignore_ties():
    body = stats([], segments=[
        {"feature": "device", "level": "mobile", "variants": [
            {"key": "control", "visitors": 50, "rate": 0.02, "uplift": None},
            {"key": "b", "visitors": 50, "rate": 0.08, "uplift": uplift(3.0, [0.5, 5.5], 0.01, absolute=0.06)}]},
        {"feature": "device", "level": "desktop", "variants": [
            {"key": "control", "visitors": 40, "rate": 0.0, "uplift": None},
            {"key": "b", "visitors": 40, "rate": 0.0, "uplift": None}]},
    ])
    mobile, desktop = v.segment_winners(body)
    assert (mobile.variant, mobile.value, mobile.visitors, mobile.significant) == ("b", 0.08, 100, True)
    assert desktop.variant is None and desktop.significant is False


def test_recent_daily_visitors():
    buckets = [SimpleNamespace(bucket_start=t, assignments=n) for t, n in ((0, 5), (90_000, 10), (95_000, 30))]
    assert v.recent_daily_visitors(buckets, now=100_000) == 40
    assert v.recent_daily_visitors(buckets, now=10**7) is None
