"""The report in words: a plain-language verdict, sample-size needs and number formats.

Everything here is a pure function of the stats dict (``GET /api/v1/experiments/<key>/stats``,
see README "Statistics") and plain numbers: no Flask, no storage, no clock. The report
templates only display what these functions return, so the sentences on the page and
the JSON never disagree.

Decision rule (README "Statistics"): a variant is called better or worse than control
only when the stats JSON says so in its ``uplift.decision`` — an always-valid confidence
sequence (safe to look at any time), in bandit modes on every visitor (adaptive
doubly-robust estimate), or, when a sample size was planned, the fixed-horizon test at
that horizon. The verdict, the list badges and the segment table never apply a p-value
threshold of their own.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any, Iterable, Mapping, Sequence

from stats import power as planning

ALPHA = 0.05
POWER = 0.8
#: below this observed relative difference, "how much more data" is sized for this effect instead
MIN_RELATIVE_EFFECT = 0.05
DASH = "—"
MINUS = "−"  # U+2212, typographic minus


# -- number formats -------------------------------------------------------------------------


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _signed(text: str, value: float) -> str:
    if text.startswith("-"):
        return MINUS + text[1:]
    return ("+" if value > 0 else "") + text if not text.startswith("+") else text


def fmt_int(value: Any) -> str:
    """1234567 → "1,234,567"."""
    return f"{int(round(value)):,}" if _finite(value) else DASH


def fmt_pct(value: Any, digits: int = 2) -> str:
    """A share or rate: 0.01149 → "1.15%" (a negative one, e.g. an interval's end, with a true minus)."""
    if not _finite(value):
        return DASH
    text = f"{value * 100:,.{digits}f}"
    if float(text.replace(",", "")) == 0:
        text = text.lstrip("-")
    return text.replace("-", MINUS) + "%"


def fmt_rel(value: Any, digits: int = 1) -> str:
    """A relative change, signed: 0.123 → "+12.3%", -0.05 → "−5.0%"."""
    if not _finite(value):
        return DASH
    text = f"{value * 100:,.{digits}f}"
    if float(text.replace(",", "")) == 0:
        return f"0.{'0' * digits}%" if digits else "0%"
    return _signed(text, value) + "%"


def fmt_pp(value: Any, digits: int = 2) -> str:
    """An absolute difference of rates in percentage points: 0.0048 → "+0.48 pp"."""
    if not _finite(value):
        return DASH
    text = f"{value * 100:,.{digits}f}"
    if float(text.replace(",", "")) == 0:
        return f"0.{'0' * digits} pp"
    return _signed(text, value) + " pp"


def fmt_num(value: Any, digits: int = 2, signed: bool = False) -> str:
    """A mean or an absolute difference of means: 1234.5 → "1,234.50"."""
    if not _finite(value):
        return DASH
    text = f"{value:,.{digits}f}"
    if signed and float(text.replace(",", "")) != 0:
        return _signed(text, value)
    return text.replace("-", MINUS)


def fmt_p(value: Any) -> str:
    """A p-value: 0.0042 → "0.004", 0.00002 → "< 0.001", 1 → "1.000"."""
    if not _finite(value):
        return DASH
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def fmt_range(ci: Any, fmt=fmt_pct, sep: str = " to ") -> str:
    """An interval: [0.012, 0.062] → "1.20% to 6.20%"."""
    if not isinstance(ci, (list, tuple)) or len(ci) != 2 or not all(_finite(x) for x in ci):
        return DASH
    return f"{fmt(ci[0])}{sep}{fmt(ci[1])}"


def value_formats(reward: str) -> dict[str, Any]:
    """Formatters of the outcome scale of an experiment (binary rates or numeric means)."""
    if reward == "numeric":
        return {"value": fmt_num, "diff": lambda v: fmt_num(v, signed=True), "loss": fmt_num, "spread": fmt_num}
    unsigned_pp = lambda v: fmt_pp(v).lstrip("+")  # noqa: E731
    return {"value": fmt_pct, "diff": fmt_pp, "loss": unsigned_pp, "spread": unsigned_pp}


# -- sample size ------------------------------------------------------------------------------


def two_proportion_sample_size(p1: float, p2: float, alpha: float = ALPHA, power: float = POWER) -> int:
    """Visitors per group for a two-sided two-proportion z-test to detect p1 vs p2.

    The standard normal approximation (Fleiss, without continuity correction):
    n = (z_{1-α/2} √(2 p̄ q̄) + z_{1-β} √(p1 q1 + p2 q2))² / (p1 − p2)².
    """
    if not (0 <= p1 <= 1 and 0 <= p2 <= 1) or p1 == p2:
        raise ValueError("rates must be in [0, 1] and differ")
    z_alpha = NormalDist().inv_cdf(1 - alpha / 2)
    z_beta = NormalDist().inv_cdf(power)
    p_bar = (p1 + p2) / 2
    numerator = z_alpha * math.sqrt(2 * p_bar * (1 - p_bar)) + z_beta * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    return math.ceil(numerator**2 / (p1 - p2) ** 2)


def two_mean_sample_size(sd1: float, sd2: float, delta: float, alpha: float = ALPHA, power: float = POWER) -> int:
    """Units per group for a two-sided two-sample z-test of means: (z_{1-α/2} + z_{1-β})² (σ1² + σ2²) / δ²."""
    if delta == 0 or sd1 < 0 or sd2 < 0:
        raise ValueError("delta must be non-zero and standard deviations non-negative")
    z = NormalDist().inv_cdf(1 - alpha / 2) + NormalDist().inv_cdf(power)
    return math.ceil(z**2 * (sd1**2 + sd2**2) / delta**2)


def sd_from_interval(ci: Sequence[float], n: int, alpha: float = ALPHA) -> float:
    """Standard deviation of single outcomes behind a symmetric (1 − α) interval of a mean of n."""
    z = NormalDist().inv_cdf(1 - alpha / 2)
    return (ci[1] - ci[0]) / (2 * z) * math.sqrt(n)


@dataclass(frozen=True)
class SampleSizeNeed:
    """Roughly how much more data the analysed comparison needs (80% power)."""

    variant: str  # the variant compared with control
    effect_relative: float | None  # the relative effect sized for (observed, or the minimum)
    effect_absolute: float
    basis: str  # "observed" | "minimum"
    per_arm: int  # visitors per arm in the analysed slice
    more_per_arm: int
    more_analysed_visitors: int  # over all arms of the analysed slice
    more_total_visitors: int  # over all traffic (bandits: the holdout is a share of it)
    more_conversions: int | None  # binary: conversions expected among those visitors
    alpha: float
    days: float | None = None  # at the recent pace of traffic, when given


def sample_size_needed(stats: Mapping[str, Any], daily_visitors: float | None = None) -> SampleSizeNeed | None:
    """How many more visitors the closest comparison with control needs, from the observed numbers.

    The candidate is the variant whose observed outcome differs most from control. Its
    observed difference (at least ``MIN_RELATIVE_EFFECT`` of control) is sized at
    α = 0.05 / (K − 1) (Bonferroni, a conservative stand-in for Holm) and 80% power, for the
    rule in force: the fixed-horizon test, or the always-valid confidence sequence
    (``stats.power``, rule ``anytime_valid``), which needs roughly twice the visitors.
    Arms grow together, so every arm of the analysed slice needs the per-arm count;
    the analysed slice is a share of all traffic (the holdout, for bandits).
    Returns None when nothing can be sized (no control data, no outcomes at all).
    """
    variants = list(stats.get("variants") or [])
    control = next((v for v in variants if v["key"] == stats.get("control")), None)
    others = [v for v in variants if v is not control]
    if control is None or not others or not control.get("visitors"):
        return None
    numeric = stats.get("reward") == "numeric"
    field_name = "mean" if numeric else "rate"
    base = control.get(field_name)
    candidates = [v for v in others if _finite(v.get(field_name)) and v.get("visitors")]
    if not _finite(base) or not candidates:
        return None
    candidate = max(candidates, key=lambda v: abs(v[field_name] - base))
    observed = candidate[field_name] - base
    alpha = ALPHA / max(1, len(variants) - 1)
    basis = "observed"
    if base != 0 and abs(observed) < MIN_RELATIVE_EFFECT * abs(base):
        observed = math.copysign(MIN_RELATIVE_EFFECT * abs(base), observed or 1.0)
        basis = "minimum"
    if observed == 0:
        return None
    rule = stats.get("decision_rule") or "fixed_horizon"
    anytime = rule != "fixed_horizon"
    if numeric:
        sds = [sd_from_interval(v["ci"], v["visitors"]) for v in (control, candidate)
               if v.get("ci") and v.get("visitors", 0) >= 2]
        if len(sds) < 2:
            return None
        if anytime:
            plan = planning.required_visitors(observed, baseline_mean=base, sd=math.sqrt((sds[0]**2 + sds[1]**2) / 2),
                                              alpha=alpha, rule="anytime_valid", relative=False)
            per_arm = plan.per_variant
        else:
            per_arm = two_mean_sample_size(sds[0], sds[1], observed, alpha)
    else:
        target = min(max(base + observed, 0.0), 1.0)
        if target == base:
            return None
        if anytime:
            plan = planning.required_visitors(observed, baseline_rate=base, alpha=alpha, rule="anytime_valid",
                                              relative=False)
            per_arm = plan.per_variant
        else:
            per_arm = two_proportion_sample_size(base, target, alpha)
    if per_arm is None:
        return None
    have = min(control["visitors"], candidate["visitors"])
    more_per_arm = max(0, per_arm - have)
    more_analysed = more_per_arm * len(variants)
    analysed = sum(v.get("visitors") or 0 for v in variants)
    total = sum(v.get("visitors_total") or 0 for v in variants)
    # the adaptive rule counts every visitor; the others test only the analysed slice (bandits: the holdout)
    share = analysed / total if total and analysed and rule != "adaptive_anytime_valid" else 1.0
    more_total = math.ceil(more_analysed / share)
    more_conversions = None
    if not numeric:
        pooled = sum(v.get("conversions") or 0 for v in variants) / analysed if analysed else base
        more_conversions = math.ceil(more_analysed * pooled)
    days = more_total / daily_visitors if daily_visitors and daily_visitors > 0 else None
    return SampleSizeNeed(
        variant=candidate["key"], effect_relative=observed / base if base else None, effect_absolute=observed,
        basis=basis, per_arm=per_arm, more_per_arm=more_per_arm, more_analysed_visitors=more_analysed,
        more_total_visitors=more_total, more_conversions=more_conversions, alpha=alpha, days=days,
    )


def recent_daily_visitors(buckets: Iterable[Any], now: float, window_s: float = 86400.0) -> float | None:
    """Assignments per day over the last ``window_s`` seconds of hourly buckets (``bucket_start``, ``assignments``)."""
    recent = sum(b.assignments for b in buckets if b.bucket_start >= now - window_s)
    return recent * 86400.0 / window_s if recent else None


# -- the verdict ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    tone: str  # "positive" | "negative" | "neutral" | "waiting"
    headline: str
    sentences: tuple[str, ...] = ()
    winner: str | None = None  # a variant significantly better than control
    sample_size: SampleSizeNeed | None = None
    cautions: tuple[str, ...] = field(default_factory=tuple)  # shown prominently (SRM, peeking)


DECIDED = ("better", "worse")


def decision(uplift: Mapping[str, Any] | None) -> str | None:
    """"better" / "worse" when the stats engine decided, else None (inconclusive, thin data)."""
    if not uplift or uplift.get("reason") is not None:
        return None
    return uplift.get("decision") if uplift.get("decision") in DECIDED else None


def _p_phrase(p: Any) -> str:
    text = fmt_p(p)
    return f"p {text}" if text.startswith("<") else f"p = {text}"


def _effect_phrase(variant: Mapping[str, Any], numeric: bool) -> str:
    """'converts 12.0% better than control (95% CI +3.0% to +21.0%; always-valid test, safe to check any time)'.

    The numbers are those the decision stood on: under a bandit the all-traffic adaptive
    estimate with its always-valid interval, otherwise the analysed slice's estimate."""
    up = variant["uplift"]
    better = up.get("decision") == "better"
    if numeric:
        verb = "earns {} more per visitor than" if better else "earns {} less per visitor than"
    else:
        verb = "converts {} better than" if better else "converts {} worse than"
    absolute_fmt = (lambda v: fmt_num(v, signed=True)) if numeric else fmt_pp
    adaptive = up.get("adaptive") or {}
    rule = up.get("decision_rule")
    if rule == "adaptive_anytime_valid" and _finite(adaptive.get("absolute")):
        size = fmt_num(abs(adaptive["absolute"])) if numeric else fmt_pp(abs(adaptive["absolute"])).lstrip("+")
        interval = fmt_range(adaptive.get("ci_always_valid"), absolute_fmt)
        return (f"{verb.format(size)} control (every visitor counted; always-valid 95% CI {interval}, "
                "safe to check any time)")
    if _finite(up.get("relative")):
        size = fmt_rel(abs(up["relative"])).lstrip("+")
        interval = fmt_range(up.get("ci_relative"), fmt_rel)
    else:  # control at zero: relative change undefined, say it in absolute terms
        size = (fmt_num(abs(up["absolute"])) if numeric else fmt_pp(abs(up["absolute"])).lstrip("+"))
        interval = fmt_range(up.get("ci_absolute"), absolute_fmt)
    if rule == "fixed_horizon":
        return f"{verb.format(size)} control (95% CI {interval}, {_p_phrase(up.get('p_value_adjusted'))} " \
               "at the planned sample size)"
    return f"{verb.format(size)} control (95% CI {interval}; always-valid test, safe to check any time)"


def _promising(variants: Sequence[Mapping[str, Any]]) -> str | None:
    """A fixed-horizon p below 0.05 that the always-valid rule has not confirmed: say so, plainly."""
    for v in variants:
        up = v.get("uplift") or {}
        if decision(up) is None and up.get("reason") is None and _finite(up.get("p_value_adjusted")) \
                and up["p_value_adjusted"] < ALPHA and up.get("decision_rule") != "fixed_horizon":
            return (f"Variant {v['key']} looks {'better' if (up.get('absolute') or 0) > 0 else 'worse'} "
                    f"({_p_phrase(up['p_value_adjusted'])} at a single look), but that is not yet safe to call "
                    "while the report is being watched: the always-valid test needs more data.")
    return None


def _personalisation_sentence(stats: Mapping[str, Any]) -> str | None:
    if stats.get("mode") not in ("bandit", "contextual"):
        return None
    block = stats.get("personalisation") or {}
    lift = block.get("vs_holdout") or {}
    if not lift or lift.get("reason") or not _finite(lift.get("relative")):
        return "Personalisation vs the random holdout: not enough data yet."
    rel = lift["relative"]
    interval = fmt_range(lift.get("ci_relative"), fmt_rel)
    tail = "" if decision(lift) else ", not decided yet"
    effect = f"earns {fmt_rel(rel)} over" if rel >= 0 else f"does {fmt_rel(abs(rel)).lstrip('+')} worse than"
    return f"Personalisation {effect} the random holdout " \
           f"(95% CI {interval}, {_p_phrase(lift.get('p_value'))}{tail})."


def _sample_size_sentence(need: SampleSizeNeed | None, stats: Mapping[str, Any]) -> str | None:
    if need is None:
        return None
    slice_word = "in the random holdout" if stats.get("analysis_slice") == "holdout" else ""
    effect = fmt_rel(need.effect_relative) if need.effect_relative is not None else fmt_pp(need.effect_absolute)
    if need.more_per_arm == 0:
        return (f"There is already enough data to detect a {effect} difference ({need.variant} vs control) "
                "with 80% power: the true difference is probably smaller than observed.")
    what = (f"the observed difference ({need.variant} {effect} vs control)" if need.basis == "observed"
            else f"a {effect} difference (the observed one is smaller)")
    conversions = f" and about {fmt_int(need.more_conversions)} more conversions" if need.more_conversions else ""
    pace = f", about {_days(need.days)} at the last day's pace" if need.days is not None else ""
    return (f"To detect {what} with 80% power, each variant needs about {fmt_int(need.per_arm)} visitors"
            f"{' ' + slice_word if slice_word else ''}: roughly {fmt_int(need.more_total_visitors)} more visitors"
            f"{conversions}{pace}.")


def _days(days: float) -> str:
    if days < 1:
        return "less than a day"
    if days < 60:
        return f"{math.ceil(days)} day{'s' if math.ceil(days) != 1 else ''}"
    return f"{days / 30:.0f} months"


def verdict(stats: Mapping[str, Any], daily_visitors: float | None = None) -> Verdict:
    """The headline of the report, from the stats dict alone."""
    numeric = stats.get("reward") == "numeric"
    variants = list(stats.get("variants") or [])
    cautions: list[str] = []
    srm = stats.get("srm") or {}
    if srm.get("ok") is False:
        cautions.append(f"Sample-ratio mismatch (p {fmt_p(srm.get('p_value'))}): the traffic split does not match "
                        "the design, so these numbers may be unreliable. Check the integration before deciding.")
    status_sentence = None
    if stats.get("status") == "paused":
        status_sentence = "Paused: everyone sees the control and nothing is logged."
    elif stats.get("status") == "stopped":
        status_sentence = "Stopped: visitors see the chosen winner (or the control) and nothing is logged."
    tail = [s for s in (_personalisation_sentence(stats), status_sentence) if s]

    if stats.get("reason"):
        return Verdict("waiting", f"No verdict: the statistics report “{stats['reason']}”.", tuple(tail),
                       cautions=tuple(cautions))
    analysed = sum(v.get("visitors") or 0 for v in variants)
    total = sum(v.get("visitors_total") or 0 for v in variants)
    if analysed == 0:
        if total and stats.get("analysis_slice") == "holdout":
            headline = ("No verdict yet: no visitor has reached the random holdout, and the tests use only "
                        "holdout traffic (bandit traffic is not a randomised experiment).")
        else:
            headline = "No verdict yet: no visitors so far."
        return Verdict("waiting", headline, tuple(tail), cautions=tuple(cautions))

    def effect(v: Mapping[str, Any]) -> float:
        up = v["uplift"]
        adaptive = up.get("adaptive") or {}
        return adaptive["absolute"] if _finite(adaptive.get("absolute")) else (up.get("absolute") or 0.0)

    winners = sorted((v for v in variants if decision(v.get("uplift")) == "better"), key=effect, reverse=True)
    losers = sorted((v for v in variants if decision(v.get("uplift")) == "worse"), key=effect)
    sentences: list[str] = []
    if winners or losers:
        for v in winners[1:] + losers[(0 if winners else 1):]:
            sentences.append(f"Variant {v['key']} {_effect_phrase(v, numeric)}.")
        if winners:
            top = winners[0]
            headline = f"Variant {top['key']} {_effect_phrase(top, numeric)}."
            tone, winner = "positive", top["key"]
        else:
            top = losers[0]
            headline = f"Variant {top['key']} {_effect_phrase(top, numeric)}."
            all_worse = len(losers) == len(variants) - 1
            if all_worse:
                sentences.insert(0, "Keep the control: every variant does worse.")
            tone, winner = "negative", None
        return Verdict(tone, headline, tuple(sentences + tail), winner=winner, cautions=tuple(cautions))

    need = sample_size_needed(stats, daily_visitors)
    reasons = {(v.get("uplift") or {}).get("reason") for v in variants if v.get("uplift")} - {None}
    if reasons and all(not _finite((v.get("uplift") or {}).get("p_value")) for v in variants if v.get("uplift")):
        why = {"not_enough_data": "too few visitors in an arm", "no_control_data": "no control visitors",
               "zero_variance": "no conversions yet (every outcome is the same)",
               "control_mean_zero": "the control has no conversions yet"}
        reason_text = ", ".join(why.get(r, r.replace("_", " ")) for r in sorted(reasons))
        headline = f"No verdict yet: {reason_text}."
    elif stats.get("decision_rule") == "fixed_horizon" and not stats.get("horizon_reached"):
        headline = ("No decision yet: the planned sample size has not been reached (the fixed-horizon test "
                    "decides once, at that size).")
    else:
        headline = "No decided difference between the variants yet."
    sentences = [s for s in (_promising(variants), _sample_size_sentence(need, stats)) if s]
    return Verdict("waiting" if need and need.more_per_arm else "neutral", headline, tuple(sentences + tail),
                   sample_size=need, cautions=tuple(cautions))


# -- summaries for the list page and the learning panel -----------------------------------------


@dataclass(frozen=True)
class Summary:
    visitors: int
    leader: str | None
    badge: str  # "winner" | "loser" | "no_difference" | "no_data"
    badge_text: str
    srm_ok: bool | None


def leader(stats: Mapping[str, Any]) -> str | None:
    """The variant most likely to be best (chance to be best, else the highest observed outcome)."""
    variants = [v for v in stats.get("variants") or [] if v.get("visitors")]
    if any(_finite(v.get("chance_to_be_best")) for v in variants):
        return max(variants, key=lambda v: v.get("chance_to_be_best") or 0.0)["key"]
    field_name = "mean" if stats.get("reward") == "numeric" else "rate"
    scored = [v for v in variants if _finite(v.get(field_name))]
    return max(scored, key=lambda v: v[field_name])["key"] if scored else None


#: list-page badge of an experiment with declared metrics, by the metric verdict's tone
_METRIC_BADGES = {"negative": ("loser", "Decided: control better"), "mixed": ("no_difference", "Mixed: not a clear win")}


def summary(stats: Mapping[str, Any]) -> Summary:
    """The list page's row: with declared metrics the badge follows ``metric_verdict`` (the
    primary metric's decision weighed against secondaries and guardrails), else ``verdict``."""
    visitors = sum(v.get("visitors_total") or 0 for v in stats.get("variants") or [])
    weighed = metric_verdict(stats)
    if weighed is not None:
        if weighed.winner:
            badge, text = "winner", f"Decided: {weighed.winner} wins"
        elif weighed.tone in _METRIC_BADGES:
            badge, text = _METRIC_BADGES[weighed.tone]
        elif not any(v.get("visitors") for _, m in ordered_metrics(stats)[:1] for v in m.get("variants") or []):
            badge, text = "no_data", "No data yet"
        else:
            badge, text = "no_difference", "Not decided yet"
        return Summary(visitors, leader(stats), badge, text, (stats.get("srm") or {}).get("ok"))
    result = verdict(stats)
    if result.winner:
        badge, text = "winner", f"Decided: {result.winner} wins"
    elif result.tone == "negative":
        badge, text = "loser", "Decided: control better"
    elif sum(v.get("visitors") or 0 for v in stats.get("variants") or []) == 0:
        badge, text = "no_data", "No data yet"
    else:
        badge, text = "no_difference", "Not decided yet"
    return Summary(visitors, leader(stats), badge, text, (stats.get("srm") or {}).get("ok"))


@dataclass(frozen=True)
class SegmentWinner:
    feature: str
    level: str
    variant: str | None
    value: float | None
    visitors: int
    significant: bool  # better than control in this segment (exploratory: BH-adjusted p < 0.05 across segments)


def segment_winners(stats: Mapping[str, Any]) -> list[SegmentWinner]:
    """Per segment, the variant with the best observed outcome and whether it beats control significantly."""
    field_name = "mean" if stats.get("reward") == "numeric" else "rate"
    rows = []
    for segment in stats.get("segments") or []:
        scored = [v for v in segment.get("variants", []) if _finite(v.get(field_name)) and v.get("visitors")]
        visitors = sum(v.get("visitors") or 0 for v in segment.get("variants", []))
        best = max(scored, key=lambda v: v[field_name]) if scored else None
        if best is not None and sum(v[field_name] == best[field_name] for v in scored) > 1:
            best = None  # a tie (e.g. no conversions anywhere yet): no winner
        up = (best or {}).get("uplift") or {}
        significant = bool(best) and up.get("reason") is None and _finite(up.get("p_value_adjusted")) \
            and up["p_value_adjusted"] < ALPHA and (up.get("absolute") or 0) > 0
        rows.append(SegmentWinner(segment["feature"], segment["level"], best["key"] if best else None,
                                  best[field_name] if best else None, visitors, significant))
    return rows


# -- declared metrics: the verdict across primary, secondary and guardrail metrics ---------------

#: the implicit metric of an experiment without declared metrics (``app.domain.metrics``)
IMPLICIT_METRIC = "reward"
ROLE_ORDER = {"primary": 0, "secondary": 1, "guardrail": 2}
#: half-width of the uplift CI bar's axis: relative changes beyond ±50% are drawn at the edge
BAR_SPAN = 0.5


@dataclass(frozen=True)
class MetricVerdict:
    tone: str  # "positive" | "mixed" | "negative" | "waiting"
    headline: str
    sentences: tuple[str, ...] = ()
    winner: str | None = None  # the first variant that is a clear win


def declared_metrics(stats: Mapping[str, Any]) -> bool:
    """True when the experiment declares metrics (its list is more than the implicit ``reward``)."""
    metrics = list(stats.get("metrics") or [])
    return bool(metrics) and not (len(metrics) == 1 and metrics[0].get("key") == IMPLICIT_METRIC)


def ordered_metrics(stats: Mapping[str, Any]) -> list[tuple[int, Mapping[str, Any]]]:
    """(index in ``stats["metrics"]``, metric), primary first, then secondary, then guardrails."""
    indexed = list(enumerate(stats.get("metrics") or []))
    return sorted(indexed, key=lambda pair: (ROLE_ORDER.get(pair[1].get("role"), 3), pair[0]))


def metric_value_format(metric_type: str) -> Any:
    """Conversion metrics are rates (percent); count, sum and ratio metrics are plain numbers."""
    return fmt_pct if metric_type == "conversion" else fmt_num


@dataclass(frozen=True)
class CiBar:
    """An interval drawn on a fixed axis −BAR_SPAN…+BAR_SPAN, in 5% steps of the axis width."""

    left: int  # offset of the bar's start, percent of the axis (0, 5, … 100)
    width: int  # percent of the axis (0, 5, … 100)
    tone: str  # "pos" (wholly above 0), "neg" (wholly below 0), "none" (crosses 0)


def ci_bar(interval_: Any, span: float = BAR_SPAN) -> CiBar | None:
    """Geometry of the uplift CI bar for CSS width/offset classes (no inline styles); None without an interval."""
    if not isinstance(interval_, (list, tuple)) or len(interval_) != 2 or not all(_finite(x) for x in interval_):
        return None
    low, high = sorted(interval_)

    def position(x: float) -> int:  # axis percent, snapped to 5% steps
        share = (min(max(x, -span), span) + span) / (2 * span)
        return int(round(share * 20)) * 5

    left, right = position(low), position(high)
    tone = "pos" if low > 0 else ("neg" if high < 0 else "none")
    return CiBar(left, max(right - left, 5) if left < 100 else 0, tone)


def _metric_effect(metric: Mapping[str, Any], up: Mapping[str, Any]) -> str:
    """'lifts purchase_rate +8.0% (95% CI +2.0% to +14.0%)'; under a bandit the all-visitor
    (AIPW) estimate the decision stands on, when it has one."""
    adaptive = up.get("adaptive") or {}
    if up.get("decision_rule") == "adaptive_anytime_valid" and _finite(adaptive.get("relative")):
        up = {**up, "relative": adaptive["relative"], "ci_relative": adaptive.get("ci_relative"),
              "absolute": adaptive.get("absolute"), "ci_always_valid": adaptive.get("ci_always_valid")}
    rel = up.get("relative")
    if _finite(rel):
        verb = "lifts" if rel > 0 else "lowers"
        size, interval_ = fmt_rel(rel), fmt_range(up.get("ci_relative"), fmt_rel)
    else:  # control at zero: relative change undefined, say it in absolute terms
        absolute = up.get("absolute") or 0.0
        verb = "lifts" if absolute > 0 else "lowers"
        size = fmt_num(absolute, signed=True)
        interval_ = fmt_range(up.get("ci_always_valid"), lambda v: fmt_num(v, signed=True))
    return f"{verb} {metric['key']} {size} (95% CI {interval_})"


def _guardrail_failure(metric: Mapping[str, Any], guard: Mapping[str, Any], stopped: bool) -> str:
    """'fails the bounce guardrail (bound +12.0%, tolerated +0.0%, always-valid p = 0.003) and was stopped'."""
    text = (f"fails the {metric['key']} guardrail (bound {fmt_rel(guard.get('bound'))}, tolerated "
            f"{fmt_rel(guard.get('threshold'))}, always-valid {_p_phrase(guard.get('always_valid_p_value'))})")
    return text + (" and was stopped" if stopped else "")


def _join(parts: Sequence[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _variant_metric(metric: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    return next((v for v in metric.get("variants") or [] if v.get("key") == key), {})


def metric_verdict(stats: Mapping[str, Any]) -> MetricVerdict | None:
    """The verdict weighing the primary metric's decision against the secondaries and guardrails.

    None for an experiment without declared metrics (its page keeps ``verdict`` alone). A variant
    decided better on the primary is a clear win only when no guardrail fails for it and no
    secondary metric is decided worse; otherwise "not a clear win". Decisions are the stats'
    ``uplift.decision`` (``decision()``), never a threshold of our own."""
    if not declared_metrics(stats):
        return None
    metrics = [m for _, m in ordered_metrics(stats)]
    primary = next((m for m in metrics if m.get("role") == "primary"), None)
    stopped = set(stats.get("stopped_variants") or [])
    hurting = [g for g in stats.get("personalisation_guardrails") or [] if g.get("status") == "failing"]
    tail = [f"Personalisation is hurting: the policy's traffic does worse than the random holdout on "
            f"{g['metric']} (always-valid {_p_phrase(g.get('always_valid_p_value'))})." for g in hurting]
    if primary is None or primary.get("reason") or not primary.get("variants"):
        why = (primary or {}).get("reason") or "no_primary_metric"
        return MetricVerdict("waiting", f"No metric verdict yet: {why.replace('_', ' ')}.", tuple(tail))
    clean, mixed, bad, open_, winners = [], [], [], [], []
    for row in primary["variants"]:
        up = row.get("uplift")
        if not up:
            continue  # the control
        key = row["key"]
        problems = []
        for m in metrics:
            v = _variant_metric(m, key)
            if m.get("role") == "secondary" and decision(v.get("uplift")) == "worse":
                problems.append(_metric_effect(m, v["uplift"]))
            guard = v.get("guardrail") or {}
            if m.get("role") == "guardrail" and guard.get("status") == "failing":
                problems.append(_guardrail_failure(m, guard, key in stopped))
        outcome = decision(up)
        if outcome == "better" and not problems:
            winners.append(key)
            clean.append(f"Variant {key} {_metric_effect(primary, up)}, with no guardrail failing and no "
                         "secondary metric worse: a clear win.")
        elif outcome == "better":
            mixed.append(f"Variant {key} {_metric_effect(primary, up)} but {_join(problems)}: not a clear win.")
        elif outcome == "worse" or problems:
            lead = _metric_effect(primary, up) if outcome == "worse" else f"has no decision on {primary['key']} yet"
            more = f" and {_join(problems)}" if problems and outcome == "worse" else (
                f" but {_join(problems)}" if problems else "")
            bad.append(f"Variant {key} {lead}{more}: keep the control.")
        else:
            open_.append(key)
    sentences = clean + mixed + bad
    if open_:
        sentences.append(f"No decision on {primary['key']} yet for {_join([f'variant {k}' for k in open_])}.")
    tone = "positive" if clean else ("mixed" if mixed else ("negative" if bad else "waiting"))
    headline, rest = (sentences[0], sentences[1:]) if sentences else (f"No metric verdict yet on {primary['key']}.", [])
    return MetricVerdict(tone, headline, tuple(rest + tail), winner=winners[0] if winners else None)
