"""Charts drawn as SVG on the server: no JavaScript, no download, readable without colour alone
(each series also has its own dash pattern and a legend in text, and every chart has a title
and a description for screen readers).

Long series are thinned before drawing: each of at most `MAX_BUCKETS` buckets along x keeps its
first, lowest, highest and last point, so spikes survive and a 100,000-point curve is a few
thousand vertices.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

import numpy as np

MAX_BUCKETS = 600
MARKED = 40
"""Series with at most this many points also get a dot per point."""
WIDTH, HEIGHT = 720, 260
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 16, 36
COLOURS = ("#1f5fa8", "#c2410c", "#15803d", "#7e22ce", "#b91c1c", "#0f766e", "#a16207")
DASHES = ("", "6 3", "2 3", "8 3 2 3", "1 2", "10 4", "4 4")


@dataclass(frozen=True)
class Series:
    name: str
    x: Sequence[float]
    y: Sequence[float]


def thin(x: np.ndarray, y: np.ndarray, buckets: int = MAX_BUCKETS) -> tuple[np.ndarray, np.ndarray]:
    """At most 4 * `buckets` points of (x, y), sorted by x, keeping each bucket's first, lowest,
    highest and last point."""
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    if len(x) <= 4 * buckets:
        return x, y
    edges = np.linspace(x[0], x[-1], buckets + 1)
    which = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, buckets - 1)
    firsts = np.flatnonzero(np.r_[True, which[1:] != which[:-1]])
    lasts = np.r_[firsts[1:], len(x)] - 1
    by_value = np.lexsort((y, which))  # bucket by bucket, lowest y first
    lows = by_value[firsts]
    highs = by_value[lasts]
    keep = np.unique(np.concatenate([firsts, lasts, lows, highs]))
    return x[keep], y[keep]


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    if not math.isfinite(low) or not math.isfinite(high):
        return []
    if high == low:
        return [low]
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) / step) + 1)]


def _label(value: float) -> str:
    if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
        return f"{value:.2e}"
    return f"{value:.4g}"


@dataclass(frozen=True)
class Mark:
    """A vertical line at `x` with a short label (an event: a promotion, a rollback)."""

    x: float
    label: str
    title: str = ""


MARK_COLOURS = {"promoted": "#15803d", "rolled-back": "#b91c1c"}


def line_chart(
    title: str,
    series: Sequence[Series],
    *,
    x_label: str = "step",
    marks: Sequence[Mark] = (),
    legend: bool = True,
) -> str:
    """An SVG line chart of `series` (each thinned), with axes, ticks and a text legend (left
    out with `legend=False`, for a page that has one legend for all its charts), and `marks` as
    labelled vertical lines."""
    prepared = []
    for s in series:
        x = np.asarray(s.x, dtype=float)
        y = np.asarray(s.y, dtype=float)
        finite = np.isfinite(x) & np.isfinite(y)
        if finite.any():
            prepared.append((s.name, *thin(x[finite], y[finite])))
    if not prepared:
        return f'<p class="empty">{escape(title)}: no points yet.</p>'
    x_low = min(float(x[0]) for _, x, _ in prepared)
    x_high = max(float(x[-1]) for _, x, _ in prepared)
    y_low = min(float(y.min()) for _, _, y in prepared)
    y_high = max(float(y.max()) for _, _, y in prepared)
    if y_high == y_low:
        y_low, y_high = y_low - 0.5, y_high + 0.5
    if x_high == x_low:
        x_low, x_high = x_low - 0.5, x_high + 0.5
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def px(values: np.ndarray) -> np.ndarray:
        return LEFT + (values - x_low) / (x_high - x_low) * plot_w

    def py(values: np.ndarray) -> np.ndarray:
        return TOP + (1 - (values - y_low) / (y_high - y_low)) * plot_h

    parts = _frame(title, f"{len(prepared)} series over {x_label}")
    parts += _axes((x_low, x_high), (y_low, y_high), px, py, x_label)
    parts += [_mark(mark, float(px(np.array([mark.x]))[0])) for mark in marks]
    for i, (name, x, y) in enumerate(prepared):
        points = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(px(x), py(y), strict=True))
        dash = f' stroke-dasharray="{DASHES[i % len(DASHES)]}"' if DASHES[i % len(DASHES)] else ""
        parts.append(
            f'<polyline fill="none" stroke="{COLOURS[i % len(COLOURS)]}" stroke-width="1.6"'
            f'{dash} points="{points}"/>'
        )
        if len(x) <= MARKED:  # few points: mark each, so one point is seen at all
            parts.extend(
                f'<circle cx="{a:.1f}" cy="{b:.1f}" r="3" fill="{COLOURS[i % len(COLOURS)]}">'
                f"<title>{escape(name)}: {_label(v)} at {_label(u)}</title></circle>"
                for a, b, u, v in zip(px(x), py(y), x, y, strict=True)
            )
    parts.append("</svg>")
    return "".join(parts) + (_legend(name for name, _, _ in prepared) if legend else "")


def _mark(mark: Mark, x: float) -> str:
    colour = MARK_COLOURS.get(mark.label, "#6b7280")
    return (
        f'<line class="mark" x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{HEIGHT - BOTTOM}" '
        f'stroke="{colour}" stroke-dasharray="3 3"><title>{escape(mark.title or mark.label)}'
        f'</title></line><text class="tick" x="{x + 2:.1f}" y="{TOP + 10}" fill="{colour}">'
        f"{escape(mark.label[:1].upper())}</text>"
    )


def _axes(
    xs: tuple[float, float], ys: tuple[float, float], px: Any, py: Any, x_label: str
) -> list[str]:
    """Grid lines with y ticks, x ticks, and the x axis's label."""
    parts = []
    for tick in _ticks(*ys):
        y = float(py(np.array([tick]))[0])
        parts.append(
            f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="tick" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{_label(tick)}</text>"
        )
    for tick in _ticks(*xs):
        x = float(px(np.array([tick]))[0])
        parts.append(
            f'<text class="tick" x="{x:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle">'
            f"{_label(tick)}</text>"
        )
    middle = LEFT + (WIDTH - LEFT - RIGHT) / 2
    parts.append(
        f'<text class="axis" x="{middle:.0f}" y="{HEIGHT - 4}" text-anchor="middle">'
        f"{escape(x_label)}</text>"
    )
    return parts


def bar_chart(
    title: str,
    labels: Sequence[str],
    groups: Sequence[tuple[str, Sequence[float]]],
    *,
    legend: bool = True,
) -> str:
    """An SVG bar chart: one bar per label for each group (e.g. reference and current shares
    per histogram bin), groups side by side and told apart by pattern as well as colour; the
    text legend is left out with `legend=False`."""
    if not labels or not groups:
        return f'<p class="empty">{escape(title)}: nothing to draw.</p>'
    top = max((max(values, default=0.0) for _, values in groups), default=0.0) or 1.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / len(labels)
    bar = slot * 0.8 / len(groups)
    parts = _frame(title, f"{len(labels)} bins, {len(groups)} series")
    for tick in _ticks(0.0, top):
        y = TOP + (1 - tick / top) * plot_h
        parts.append(
            f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="tick" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{_label(tick)}</text>"
        )
    every = max(1, len(labels) // 10)
    for i, label in enumerate(labels):
        if i % every == 0:
            x = LEFT + (i + 0.5) * slot
            parts.append(
                f'<text class="tick" x="{x:.1f}" y="{HEIGHT - BOTTOM + 16}" '
                f'text-anchor="middle">{escape(label)}</text>'
            )
        for g, (name, values) in enumerate(groups):
            value = float(values[i]) if i < len(values) else 0.0
            height = value / top * plot_h
            x = LEFT + i * slot + slot * 0.1 + g * bar
            fill = f"url(#hatch{g})" if g % 2 else COLOURS[g % len(COLOURS)]
            parts.append(
                f'<rect x="{x:.1f}" y="{TOP + plot_h - height:.1f}" width="{bar:.1f}" '
                f'height="{height:.1f}" fill="{fill}" stroke="{COLOURS[g % len(COLOURS)]}">'
                f"<title>{escape(name)} {escape(label)}: {_label(value)}</title></rect>"
            )
    parts.append("</svg>")
    return "".join(parts) + (_legend((name for name, _ in groups), bars=True) if legend else "")


def drift_chart(title: str, chart: Mapping[str, Any], *, x_label: str, legend: bool = True) -> str:
    """The chart of one column of a drift report (its `chart`, from its drift method): the
    reference's and the current sample's CDFs as two lines (`x`, `reference_cdf`,
    `current_cdf`), or their shares of the most frequent categories or tokens as paired bars
    (`categories`, `reference_share`, `current_share`); "" for a chart of neither shape."""
    if "reference_cdf" in chart:
        series = [
            Series("reference", chart["x"], chart["reference_cdf"]),
            Series("current", chart["x"], chart["current_cdf"]),
        ]
        return line_chart(title, series, x_label=x_label, legend=legend)
    if "categories" in chart:
        groups = [("reference", chart["reference_share"]), ("current", chart["current_share"])]
        return bar_chart(title, [str(c) for c in chart["categories"]], groups, legend=legend)
    return ""


def _frame(title: str, description: str) -> list[str]:
    hatches = "".join(
        f'<pattern id="hatch{g}" width="6" height="6" patternUnits="userSpaceOnUse" '
        f'patternTransform="rotate(45)"><rect width="6" height="6" fill="white"/>'
        f'<line x1="0" y1="0" x2="0" y2="6" stroke="{COLOURS[g % len(COLOURS)]}" '
        f'stroke-width="3"/></pattern>'
        for g in range(len(COLOURS))
    )
    return [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'xmlns="http://www.w3.org/2000/svg" aria-label="{escape(title)}">'
        f"<title>{escape(title)}</title><desc>{escape(description)}</desc>"
        f"<defs>{hatches}</defs>"
        f'<rect class="plot" x="{LEFT}" y="{TOP}" width="{WIDTH - LEFT - RIGHT}" '
        f'height="{HEIGHT - TOP - BOTTOM}"/>'
    ]


def _legend(names: Iterable[str], *, bars: bool = False) -> str:
    items = []
    for i, name in enumerate(names):
        colour = COLOURS[i % len(COLOURS)]
        if bars:
            fill = f"url(#hatch{i})" if i % 2 else colour
            mark = (
                f'<svg width="18" height="12" aria-hidden="true"><rect width="18" height="12" '
                f'fill="{fill}" stroke="{colour}"/></svg>'
            )
        else:
            dash = DASHES[i % len(DASHES)]
            mark = (
                f'<svg width="28" height="12" aria-hidden="true"><line x1="0" y1="6" x2="28" '
                f'y2="6" stroke="{colour}" stroke-width="2" stroke-dasharray="{dash}"/></svg>'
            )
        items.append(f"<li>{mark} {escape(str(name))}</li>")
    return f'<ul class="legend">{"".join(items)}</ul>'
