"""Server-side charts of the report: matplotlib (Agg) figures saved as SVG, inlined in the page.

Four charts, each a function of the stats dict (``GET .../stats``) and the hourly
counters (``Storage.time_series``), drawn in the Okabe–Ito colour-blind-safe palette:

* ``cumulative``: cumulative conversion rate (or mean) per variant over time, 95% bands;
* ``allocation``: share of (policy) traffic per variant per hour — the bandit shifting;
* ``posterior``: posterior densities of each variant's rate (Beta) or mean (normal approx.);
* ``uplift``: forest plot of the uplift against control with 95% intervals.

The SVG is made safe for a strict Content-Security-Policy (no inline styles): matplotlib's
``style="…"`` attributes become the equivalent SVG presentation attributes and its
``<style>`` element is dropped. Rendering is deterministic (fixed hash salt,
no dates in the file), so the report caches the SVGs per (experiment, model version).
"""
from __future__ import annotations

import html
import io
import math
import re
import threading
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
from matplotlib import dates as mdates  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import FuncFormatter, MaxNLocator, PercentFormatter  # noqa: E402
from scipy import stats as st  # noqa: E402

from stats.proportions import wilson_interval  # noqa: E402

#: Okabe & Ito (2008), "Color Universal Design": distinguishable with every common colour-vision deficiency.
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#F0E442", "#000000")
CHART_NAMES = ("cumulative", "allocation", "posterior", "uplift")
TITLES = {
    "cumulative": "Cumulative conversion rate",
    "allocation": "Traffic allocation over time",
    "posterior": "Posterior distributions",
    "uplift": "Uplift against control",
}
INK, MUTED, GRID = "#1f2933", "#52606d", "#e4e7eb"
Z95 = float(st.norm.ppf(0.975))
MAX_POINTS = 240  # time buckets drawn per series; longer histories merge neighbouring hours

RC = {
    "svg.fonttype": "none",  # real <text>: crisp, selectable, small
    "font.family": "DejaVu Sans",
    "font.size": 9.5,
    "axes.edgecolor": "#9aa5b1",
    "axes.labelcolor": INK,
    "axes.titlesize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": GRID,
    "grid.linewidth": 0.8,
    "xtick.color": MUTED,
    "ytick.color": MUTED,
    "legend.frameon": False,
    "legend.fontsize": 8.5,
}


def colour(index: int) -> str:
    return OKABE_ITO[index % len(OKABE_ITO)]


# -- data series from the counters ---------------------------------------------------------------


def _times(starts: Sequence[float]) -> list[datetime]:
    return [datetime.fromtimestamp(t, tz=timezone.utc).replace(tzinfo=None) for t in starts]


def _grid(buckets: Iterable[Any], keys_by_id: Mapping[int, str], keys: Sequence[str],
          include: Callable[[Any], bool], period_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(bucket starts, assignments[k, t], conversions[k, t], reward sums[k, t]) of the included slices."""
    chosen = [b for b in buckets if b.variant_id in keys_by_id and include(b)]
    starts = np.array(sorted({b.bucket_start for b in chosen}), dtype=float)
    index = {t: i for i, t in enumerate(starts)}
    position = {k: i for i, k in enumerate(keys)}
    n = np.zeros((len(keys), starts.size))
    c = np.zeros_like(n)
    s = np.zeros_like(n)
    for b in chosen:
        row, col = position[keys_by_id[b.variant_id]], index[b.bucket_start]
        n[row, col] += b.assignments
        c[row, col] += b.conversions
        s[row, col] += b.reward_sum
    if starts.size > MAX_POINTS:  # long experiments: merge neighbouring hours (sums stay exact)
        width = period_s * math.ceil((starts[-1] - starts[0] + period_s) / period_s / MAX_POINTS)
        group = ((starts - starts[0]) // width).astype(int)
        merged = np.unique(group)
        position_of = np.searchsorted(merged, group)
        out = [np.zeros((len(keys), merged.size)) for _ in range(3)]
        for target, source in zip(out, (n, c, s)):
            np.add.at(target.T, position_of, source.T)
        starts = starts[0] + merged * width
        n, c, s = out
    return starts, n, c, s


def _analysed(stats: Mapping[str, Any]) -> Callable[[Any], bool]:
    """The traffic of the fixed-horizon tests: the holdout for bandit modes, all for ab."""
    if stats.get("analysis_slice") == "holdout":
        return lambda b: b.holdout
    return lambda b: True


# -- SVG for a strict CSP ----------------------------------------------------------------------

_STYLE_ATTR = re.compile(r'\sstyle="([^"]*)"')
_PROLOG = re.compile(r"^.*?(?=<svg\b)", re.S)
_DROP = re.compile(r"<metadata>.*?</metadata>\s*|<style[^>]*>.*?</style>\s*", re.S)
_SIZE = re.compile(r'<svg([^>]*?)\swidth="[^"]*"\sheight="[^"]*"')


def _attributes(match: re.Match) -> str:
    parts = []
    for declaration in match.group(1).split(";"):
        name, _, value = declaration.partition(":")
        name, value = name.strip(), value.strip()
        if name and value and re.fullmatch(r"[a-z-]+", name):
            parts.append(f' {name}="{html.escape(value, quote=True)}"')
    return "".join(parts)


def csp_safe_svg(svg: str, name: str, label: str) -> str:
    """Inline-ready SVG: no prolog, no metadata, no style attributes or elements, scalable, labelled."""
    svg = _PROLOG.sub("", svg, count=1)
    svg = _DROP.sub("", svg)
    svg = _STYLE_ATTR.sub(_attributes, svg)
    svg = _SIZE.sub(r"<svg\1", svg, count=1)
    label = html.escape(label, quote=True)
    return svg.replace(
        "<svg ", f'<svg class="chart-svg" role="img" aria-label="{label}" data-chart="{name}" '
        'stroke-linejoin="round" stroke-linecap="butt" ', 1)


def _figure(height: float = 3.3, left: float = 0.12, right: float = 0.97, top_in: float = 0.45) -> Figure:
    # fixed margins (the legend sits above the axes): a layout engine would double the drawing time
    figure = Figure(figsize=(6.6, height))
    figure.subplots_adjust(left=left, right=right, top=1 - top_in / height, bottom=0.58 / height)
    figure.patch.set_facecolor("white")
    return figure


def _save(figure: Figure, name: str, label: str) -> str:
    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": f"lever-{name}"}):  # ids unique per chart, stable per data
        figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    return csp_safe_svg(buffer.getvalue(), name, label)


def _time_axis(ax, starts: np.ndarray) -> None:
    locator = mdates.AutoDateLocator(minticks=3, maxticks=7)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, show_offset=False))
    if starts.size == 1:  # one hour of data: centre it in a three-hour window
        ax.set_xlim(_times([starts[0] - 3600.0])[0], _times([starts[0] + 2 * 3600.0])[0])
    ax.set_xlabel("Time of assignment (UTC)")


def _empty(ax, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color=MUTED)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)


def _legend(ax, count: int) -> None:
    ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.01), ncol=min(count, 5), borderaxespad=0, handlelength=1.6,
              columnspacing=1.4)


def _value_formatter(numeric: bool):
    return FuncFormatter(lambda v, _: f"{v:,.2f}") if numeric else PercentFormatter(1.0, decimals=None)


# -- the four charts -----------------------------------------------------------------------------


def cumulative_chart(stats: Mapping[str, Any], buckets: Sequence[Any], keys_by_id: Mapping[int, str],
                     period_s: float) -> str:
    keys = [v["key"] for v in stats["variants"]]
    numeric = stats.get("reward") == "numeric"
    starts, n, c, s = _grid(buckets, keys_by_id, keys, _analysed(stats), period_s)
    figure = _figure()
    ax = figure.add_subplot()
    slice_note = " (holdout traffic)" if stats.get("analysis_slice") == "holdout" else ""
    ax.set_ylabel(("Mean per visitor" if numeric else "Conversion rate") + slice_note)
    if starts.size == 0 or n.sum() == 0:
        _empty(ax, "No analysed traffic yet")
        return _save(figure, "cumulative", TITLES["cumulative"])
    times = _times(starts + 1800.0)  # plot each hour at its middle
    cn, cc, cs = n.cumsum(axis=1), c.cumsum(axis=1), s.cumsum(axis=1)
    with np.errstate(all="ignore"):
        if numeric:
            value = np.where(cn > 0, cs / cn, np.nan)
            sds = []
            for v in stats["variants"]:  # spread of single outcomes, from the final t interval
                ci, count = v.get("ci"), v.get("visitors") or 0
                sds.append((ci[1] - ci[0]) / (2 * Z95) * math.sqrt(count) if ci and count >= 2 else np.nan)
            half = Z95 * np.array(sds)[:, None] / np.sqrt(cn)
            low, high = value - half, value + half
        else:
            value = np.where(cn > 0, cc / cn, np.nan)
            low, high = wilson_interval(cc, cn)
    single = starts.size == 1
    # one hour of data: points with error bars, spread sideways so the bars do not overlap
    offsets = np.linspace(-0.3, 0.3, len(keys)) * 3600 if len(keys) > 1 else np.zeros(1)
    for i, key in enumerate(keys):
        if single:
            ax.errorbar(_times([starts[0] + 1800.0 + offsets[i]]), value[i],
                        yerr=[[max(0.0, value[i][0] - low[i][0])], [max(0.0, high[i][0] - value[i][0])]],
                        fmt="o", color=colour(i), capsize=4, label=key)
        else:
            ax.fill_between(times, low[i], high[i], color=colour(i), alpha=0.15, linewidth=0)
            ax.plot(times, value[i], color=colour(i), linewidth=1.8, label=key)
    if single:
        ax.text(0.02, 0.97, "All analysed traffic so far is in one hour:\nlines appear as time passes",
                transform=ax.transAxes, ha="left", va="top", fontsize=8, color=MUTED)
    _time_axis(ax, starts)
    ax.yaxis.set_major_formatter(_value_formatter(numeric))
    ax.set_ylim(bottom=0 if not numeric or np.nanmin(low) >= 0 else None)
    _legend(ax, len(keys))
    return _save(figure, "cumulative", TITLES["cumulative"])


def allocation_chart(stats: Mapping[str, Any], buckets: Sequence[Any], keys_by_id: Mapping[int, str],
                     period_s: float) -> str:
    keys = [v["key"] for v in stats["variants"]]
    adaptive = stats.get("mode") in ("bandit", "contextual")
    starts, n, _, _ = _grid(buckets, keys_by_id, keys, (lambda b: not b.holdout) if adaptive else (lambda b: True),
                            period_s)
    figure = _figure()
    ax = figure.add_subplot()
    ax.set_ylabel("Share of " + ("policy traffic" if adaptive else "traffic"))
    if starts.size == 0 or n.sum() == 0:
        _empty(ax, "No traffic yet")
        return _save(figure, "allocation", TITLES["allocation"])
    totals = n.sum(axis=0)
    share = np.divide(n, totals, out=np.zeros_like(n), where=totals > 0)
    now = {v["key"]: v.get("allocation") for v in stats["variants"]}
    labels = [f"{k} (now {now[k] * 100:.0f}%)" if isinstance(now.get(k), (int, float)) else k for k in keys]
    if starts.size == 1:
        bottom = 0.0
        centre = _times(starts + 1800.0)
        for i, label in enumerate(labels):
            ax.bar(centre, share[i], bottom=bottom, width=1 / 24 * 0.8, color=colour(i), label=label)
            bottom += share[i]
    else:
        ax.stackplot(_times(starts + 1800.0), share, colors=[colour(i) for i in range(len(keys))], labels=labels,
                     alpha=0.9, linewidth=0)
    ax.set_ylim(0, 1)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.grid(axis="x", visible=False)
    _time_axis(ax, starts)
    _legend(ax, len(keys))
    return _save(figure, "allocation", TITLES["allocation"])


def _densities(stats: Mapping[str, Any]) -> list[tuple[int, str, Any]]:
    """(palette index, key, frozen distribution) of each variant with analysed data."""
    numeric = stats.get("reward") == "numeric"
    out = []
    for i, v in enumerate(stats["variants"]):
        visitors = v.get("visitors") or 0
        if numeric:
            ci, mean = v.get("ci"), v.get("mean")
            if ci is None or mean is None or visitors < 2 or ci[1] <= ci[0]:
                continue
            out.append((i, v["key"], st.norm(mean, (ci[1] - ci[0]) / (2 * Z95))))
        elif visitors:
            conversions = v.get("conversions") or 0
            out.append((i, v["key"], st.beta(1 + conversions, 1 + visitors - conversions)))
    return out


def posterior_chart(stats: Mapping[str, Any]) -> str:
    numeric = stats.get("reward") == "numeric"
    figure = _figure()
    ax = figure.add_subplot()
    dists = _densities(stats)
    slice_note = " (holdout traffic)" if stats.get("analysis_slice") == "holdout" else ""
    ax.set_xlabel(("Mean per visitor" if numeric else "Conversion rate") + slice_note)
    ax.set_ylabel("Posterior density")
    if not dists:
        _empty(ax, "No analysed traffic yet")
        return _save(figure, "posterior", TITLES["posterior"])
    # every variant's own ±5 sd range, merged, so narrow peaks are sampled densely
    grids = [np.linspace(*d.ppf([1e-5, 1 - 1e-5]), 100) for _, _, d in dists]
    x = np.unique(np.concatenate(grids))
    for i, key, dist in dists:
        y = dist.pdf(x)
        ax.fill_between(x, y, color=colour(i), alpha=0.18, linewidth=0)
        ax.plot(x, y, color=colour(i), linewidth=1.8, label=key)
    if not numeric:
        ax.set_xlim(max(0.0, x.min()), min(1.0, x.max()))
    ax.set_ylim(bottom=0)
    ax.xaxis.set_major_formatter(_value_formatter(numeric))
    _legend(ax, len(dists))
    return _save(figure, "posterior", TITLES["posterior"])


def uplift_chart(stats: Mapping[str, Any]) -> str:
    numeric = stats.get("reward") == "numeric"
    rows: list[tuple[str, float, tuple[float, float], str]] = []
    relative = all((v.get("uplift") or {}).get("relative") is not None
                   for v in stats["variants"] if v.get("uplift"))
    field, interval = ("relative", "ci_relative") if relative else ("absolute", "ci_absolute")
    for i, v in enumerate(stats["variants"]):
        up = v.get("uplift") or {}
        if up.get(field) is not None and up.get(interval):
            rows.append((v["key"], up[field], tuple(up[interval]), colour(i)))
    lift = (stats.get("personalisation") or {}).get("vs_holdout") or {}
    if stats.get("mode") in ("bandit", "contextual") and lift.get(field) is not None and lift.get(interval):
        rows.append(("personalised\nvs holdout", lift[field], tuple(lift[interval]), INK))
    height = max(2.4, 1.2 + 0.45 * max(1, len(rows)))
    figure = _figure(height, left=0.2, right=0.96, top_in=0.15)
    ax = figure.add_subplot()
    control = stats.get("control", "control")
    if relative:
        ax.set_xlabel(f"Relative uplift against {control} (95% CI)")
    else:
        ax.set_xlabel(f"Absolute difference against {control} (95% CI)" + ("" if numeric else ", percentage points"))
    if not rows:
        _empty(ax, "No comparison with control yet")
        return _save(figure, "uplift", TITLES["uplift"])
    y = np.arange(len(rows))[::-1]
    for yy, (label, value, (lo, hi), tint) in zip(y, rows):  # one artist per row
        ax.errorbar([value], [yy], xerr=[[max(0.0, value - lo)], [max(0.0, hi - value)]], fmt="D", color=tint,
                    markersize=7, markeredgecolor="white", elinewidth=2.2, capsize=5, capthick=1.4)
    ax.axvline(0, color=INK, linewidth=1, linestyle="--")
    ax.set_yticks(y, [r[0] for r in rows])
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.grid(axis="y", visible=False)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=6))
    if relative or not numeric:
        ax.xaxis.set_major_formatter(FuncFormatter(
            lambda v, _: (f"{v * 100:+,.0f}%" if relative else f"{v * 100:+.1f}").replace("+0%", "0%")
            .replace("-", "\u2212")))
    return _save(figure, "uplift", TITLES["uplift"])


def render_charts(stats: Mapping[str, Any], buckets: Sequence[Any], keys_by_id: Mapping[int, str],
                  period_s: float) -> dict[str, str]:
    """Every chart of the report as CSP-safe inline SVG, keyed by name (``CHART_NAMES``); ``buckets``
    are the storage's time buckets, each ``period_s`` seconds wide."""
    with _RENDER_LOCK, matplotlib.rc_context(RC):  # rcParams are global: one render at a time
        charts = {
            "cumulative": cumulative_chart(stats, buckets, keys_by_id, period_s),
            "allocation": allocation_chart(stats, buckets, keys_by_id, period_s),
            "posterior": posterior_chart(stats),
            "uplift": uplift_chart(stats),
        }
    if stats.get("reward") == "numeric":
        charts["cumulative"] = charts["cumulative"].replace(
            f'aria-label="{TITLES["cumulative"]}"', 'aria-label="Cumulative mean per visitor"', 1)
    return charts


_RENDER_LOCK = threading.Lock()

