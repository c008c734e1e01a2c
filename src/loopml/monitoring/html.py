"""A drift report as one self-contained HTML page: inline CSS and SVG, no script, nothing
fetched, so it opens anywhere, offline, and can be mailed or archived as it is.

Per feature: the verdict, the test and effect with its threshold, findings, and a chart of the
reference against the current sample (CDFs for numbers, shares for categories and tokens).
The drift share counts the model's inputs; the label's and the prediction's drift are shown
apart, and so is the drift weighted by the model's importance when the model gave it.
With a history (one point per monitor run), a line of the drift share over windows.

The charts are those of the web UI, drawn by `loopml.monitoring.charts` (the reference the
first series, solid or filled; the current sample the second, dashed or hatched), with one
legend for the page instead of one per chart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from loopml.monitoring.charts import COLOURS, Series, drift_chart, line_chart

REFERENCE_COLOUR, CURRENT_COLOUR = COLOURS[0], COLOURS[1]

_STYLE = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px;margin:0 0 4px} .meta{color:#666;margin-bottom:16px}
div.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(380px,1fr));gap:14px}
.card{border:1px solid #ddd;border-radius:8px;padding:10px 12px}
.card.drift{border-color:#e45756;box-shadow:0 0 0 1px #e45756}
.card h3{margin:0 0 4px;font-size:15px} .tag{font-size:11px;padding:1px 6px;border-radius:8px}
.tag.drift{background:#e45756;color:#fff} .tag.ok{background:#e7f3e7;color:#276227}
.small{font-size:12px;color:#555} .legend span{margin-right:12px}
table{border-collapse:collapse;font-size:13px} td,th{padding:2px 8px;text-align:left}
svg.chart{width:100%;height:auto;background:#fff} svg.chart .plot{fill:#fff;stroke:#ddd}
svg.chart .grid{stroke:#eceff3} svg.chart .tick,svg.chart .axis{font-size:11px;fill:#666}
.history{max-width:760px}
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
        f"<span style='color:{REFERENCE_COLOUR}'>■ reference (solid)</span>"
        f"<span style='color:{CURRENT_COLOUR}'>▨ current (dashed, hatched)</span></div>",
    ]
    if drifted:
        parts.append(f"<p><b>Drifted:</b> {escape(', '.join(drifted))}</p>")
    parts += _apart(document)
    if history:
        parts.append(
            f"<h2>Drift share over windows</h2><div class='history'>{_history_chart(history)}</div>"
        )
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
    name = str(feature.get("name"))
    chart = drift_chart(
        f"{name}: reference and current", feature.get("chart") or {}, x_label=name, legend=False
    )
    return (
        f"<div class='card{' drift' if drifted else ''}'><h3>{escape(name)} "
        f"{tag} <span class='small'>{escape(kind)}</span></h3>"
        f"{chart}<table>{table}</table></div>"
    )


def _history_chart(history: Sequence[Mapping[str, Any]]) -> str:
    """The drift share of each window, oldest first, numbered from 1."""
    shares = [float(h.get("drift_share") or 0.0) for h in history]
    first, last = history[0].get("time", ""), history[-1].get("time", "")
    windows = [float(i) for i in range(1, len(shares) + 1)]
    return line_chart(
        "Drift share over windows",
        [Series("drift share", windows, shares)],
        x_label=f"window ({first} to {last})",
        legend=False,
    )
