"""A drift report as one self-contained HTML page: inline CSS and SVG, no script, nothing
fetched, so it opens anywhere, offline, and can be mailed or archived as it is.

Per feature: the verdict, the test and effect with its threshold, findings, and a chart of the
reference against the current sample (CDFs for numbers, shares for categories and tokens).
The drift share counts the model's inputs; the label's and the prediction's drift are shown
apart, and so is the drift weighted by the model's importance when the model gave it.
With a history (one point per monitor run), a line of the drift share over windows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

WIDTH, HEIGHT, PAD = 360, 150, 28
REFERENCE_COLOUR, CURRENT_COLOUR = "#4c78a8", "#e45756"

_STYLE = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px;margin:0 0 4px} .meta{color:#666;margin-bottom:16px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(380px,1fr));gap:14px}
.card{border:1px solid #ddd;border-radius:8px;padding:10px 12px}
.card.drift{border-color:#e45756;box-shadow:0 0 0 1px #e45756}
.card h3{margin:0 0 4px;font-size:15px} .tag{font-size:11px;padding:1px 6px;border-radius:8px}
.tag.drift{background:#e45756;color:#fff} .tag.ok{background:#e7f3e7;color:#276227}
.small{font-size:12px;color:#555} .legend span{margin-right:12px}
table{border-collapse:collapse;font-size:13px} td,th{padding:2px 8px;text-align:left}
"""


def render(document: Mapping[str, Any], history: Sequence[Mapping[str, Any]] = ()) -> str:
    """The page for a report document (`DriftReport.to_dict()`, or a stored monitor report);
    `history` is a list of {"time", "drift_share"} oldest first."""
    title = "Drift report"
    if document.get("monitor"):
        title = f"Monitor {document['monitor']}: run {document.get('run', '')}"
    drifted = document.get("drifted_features", [])
    meta = [
        f"{document.get('current_rows', 0):,} current rows against "
        f"{document.get('reference_rows', 0):,} reference rows",
        f"drift share {document.get('drift_share', 0):.0%}"
        + (f" of {document['input_count']} inputs" if "input_count" in document else ""),
    ]
    if document.get("importance_source") == "model":
        meta.append(f"weighted by the model's importance {document['weighted_drift']:.0%}")
    if document.get("reference"):
        meta.append(f"reference {document['reference']}")
    if document.get("deployment"):
        meta.append(f"deployment {document['deployment']}")
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{escape(title)}</h1><div class='meta'>{escape(' · '.join(meta))}</div>",
        "<div class='legend small'>"
        f"<span style='color:{REFERENCE_COLOUR}'>■ reference</span>"
        f"<span style='color:{CURRENT_COLOUR}'>■ current</span></div>",
    ]
    if drifted:
        parts.append(f"<p><b>Drifted:</b> {escape(', '.join(drifted))}</p>")
    parts += _apart(document)
    if history:
        parts.append("<h2>Drift share over windows</h2>" + _history_chart(history))
    quality = document.get("quality")
    if quality:
        issues = quality.get("issues", [])
        parts.append(
            "<h2>Data quality</h2><p>"
            + (escape(", ".join(issues)) if issues else "No issue.")
            + "</p>"
        )
    parts.append("<h2>Features</h2><div class='grid'>")
    parts += [_card(feature) for feature in document.get("features", [])]
    parts.append("</div></body></html>")
    return "".join(parts)


def _apart(document: Mapping[str, Any]) -> list[str]:
    """One line each for the label's and the prediction's drift (not in the share)."""
    lines = []
    for role in ("label", "prediction"):
        found = document.get(f"{role}_drift")
        if not found:
            continue
        value = found.get("effect_value")
        verdict = "drifted" if found.get("drifted") else "no drift"
        verdict += f", {found.get('effect')} {'-' if value is None else f'{value:.3f}'}"
        if found.get("rows") == 0:
            verdict = "no values in this window"
        lines.append(
            f"<p><b>{role.capitalize()} drift</b> ({escape(str(found.get('column')))}): "
            f"{escape(verdict)}</p>"
        )
    return lines


def _card(feature: Mapping[str, Any]) -> str:
    drifted = bool(feature.get("drifted"))
    q = feature.get("q_value")
    effect = feature.get("effect_value")
    rows = [
        ("test", f"{feature.get('method')}" + ("" if q is None else f", q = {q:.3g}")),
        (
            feature.get("effect", "effect"),
            ("-" if effect is None else f"{effect:.3f}")
            + f" (threshold {feature.get('effect_threshold') or 0:.3f})",
        ),
    ]
    if feature.get("findings"):
        rows.append(("findings", " ".join(feature["findings"])))
    table = "".join(f"<tr><th>{escape(str(k))}</th><td>{escape(str(v))}</td></tr>" for k, v in rows)
    tag = "<span class='tag drift'>drift</span>" if drifted else "<span class='tag ok'>ok</span>"
    role = feature.get("role", "input")
    kind = str(feature.get("kind")) + ("" if role == "input" else f", {role}")
    return (
        f"<div class='card{' drift' if drifted else ''}'><h3>{escape(str(feature.get('name')))} "
        f"{tag} <span class='small'>{escape(kind)}</span></h3>"
        f"{_chart(feature.get('chart') or {})}<table>{table}</table></div>"
    )


def _chart(chart: Mapping[str, Any]) -> str:
    if "x" in chart:
        return _cdf_chart(chart["x"], chart["reference_cdf"], chart["current_cdf"])
    if "categories" in chart:
        return _bar_chart(chart["categories"], chart["reference_share"], chart["current_share"])
    return ""


def _scale(values: Sequence[float], low: float, high: float, size: float) -> list[float]:
    span = (high - low) or 1.0
    return [(v - low) / span * size for v in values]


def _polyline(xs: Sequence[float], ys: Sequence[float], colour: str) -> str:
    points = " ".join(f"{PAD + x:.1f},{HEIGHT - PAD - y:.1f}" for x, y in zip(xs, ys, strict=True))
    return f"<polyline fill='none' stroke='{colour}' stroke-width='2' points='{points}'/>"


def _axes(low: str, high: str) -> str:
    bottom = HEIGHT - PAD
    return (
        f"<line x1='{PAD}' y1='{bottom}' x2='{WIDTH - 4}' y2='{bottom}' stroke='#999'/>"
        f"<line x1='{PAD}' y1='6' x2='{PAD}' y2='{bottom}' stroke='#999'/>"
        f"<text x='{PAD}' y='{HEIGHT - 10}' font-size='10'>{escape(low)}</text>"
        f"<text x='{WIDTH - 4}' y='{HEIGHT - 10}' font-size='10' text-anchor='end'>"
        f"{escape(high)}</text>"
    )


def _svg(body: str) -> str:
    return f"<svg width='{WIDTH}' height='{HEIGHT}' role='img'>{body}</svg>"


def _cdf_chart(x: Sequence[float], ref: Sequence[float], cur: Sequence[float]) -> str:
    if not x:
        return ""
    inner_w, inner_h = WIDTH - PAD - 6, HEIGHT - PAD - 8
    xs = _scale(x, min(x), max(x), inner_w)
    body = _axes(f"{min(x):.3g}", f"{max(x):.3g}")
    body += _polyline(xs, [v * inner_h for v in ref], REFERENCE_COLOUR)
    body += _polyline(xs, [v * inner_h for v in cur], CURRENT_COLOUR)
    body += f"<text x='{PAD + 4}' y='14' font-size='10' fill='#666'>share at or below x</text>"
    return _svg(body)


def _bar_chart(labels: Sequence[str], ref: Sequence[float], cur: Sequence[float]) -> str:
    if not labels:
        return ""
    inner_w, inner_h = WIDTH - PAD - 6, HEIGHT - PAD - 8
    top = max([*ref, *cur, 1e-9])
    slot = inner_w / len(labels)
    body = _axes("", "")
    for i, (label, r, c) in enumerate(zip(labels, ref, cur, strict=True)):
        x = PAD + i * slot
        for offset, share, colour in ((0.1, r, REFERENCE_COLOUR), (0.5, c, CURRENT_COLOUR)):
            height = share / top * inner_h
            body += (
                f"<rect x='{x + offset * slot:.1f}' y='{HEIGHT - PAD - height:.1f}' "
                f"width='{0.4 * slot:.1f}' height='{height:.1f}' fill='{colour}'>"
                f"<title>{escape(label)}: {share:.1%}</title></rect>"
            )
        body += (
            f"<text x='{x + slot / 2:.1f}' y='{HEIGHT - PAD + 11}' font-size='9' "
            f"text-anchor='middle'>{escape(label[:8])}</text>"
        )
    return _svg(body)


def _history_chart(history: Sequence[Mapping[str, Any]]) -> str:
    shares = [float(h.get("drift_share") or 0.0) for h in history]
    inner_w, inner_h = WIDTH * 2 - PAD - 6, HEIGHT - PAD - 8
    step = inner_w / max(len(shares) - 1, 1)
    xs = [i * step for i in range(len(shares))]
    body = _axes(str(history[0].get("time", "")), str(history[-1].get("time", "")))
    body += _polyline(xs, [s * inner_h for s in shares], CURRENT_COLOUR)
    body += "".join(
        f"<circle cx='{PAD + x:.1f}' cy='{HEIGHT - PAD - s * inner_h:.1f}' r='3' "
        f"fill='{CURRENT_COLOUR}'><title>{s:.0%}</title></circle>"
        for x, s in zip(xs, shares, strict=True)
    )
    return f"<svg width='{WIDTH * 2}' height='{HEIGHT}' role='img'>{body}</svg>"
