"""How a backtest reads: a text table for the terminal and a self-contained HTML page with
the three accuracy curves (policy, static, oracle) and the loop's decisions marked."""

from __future__ import annotations

from html import escape
from typing import Any

from loopml.backtest import RECOVERY_CONFIDENCE, BacktestResult
from loopml.monitoring.charts import Mark, Series, line_chart

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;max-width:1100px;color:#111}
table{border-collapse:collapse;font-size:.85rem}
td,th{padding:.2rem .5rem;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}
.num{text-align:right;font-variant-numeric:tabular-nums}.chart{width:100%;height:auto}
.plot{fill:#fafafa;stroke:#ccc}.grid{stroke:#e5e5e5}.tick,.axis{font-size:11px;fill:#444}
.legend{list-style:none;display:flex;gap:1rem;padding:0}
.promoted{color:#15803d}.rolled-back{color:#b91c1c}
"""


def summary_lines(result: BacktestResult) -> list[str]:
    s = result.summary
    recovery = (
        "n/a (the oracle gained nothing)" if s["recovery"] is None else f"{s['recovery']:.2f}"
    )
    if s["recovery"] is not None:
        low, high = s.get("recovery_low"), s.get("recovery_high")
        recovery += (
            f" [{low:.2f}, {high:.2f}] ({RECOVERY_CONFIDENCE:.0%}, bootstrap over windows)"
            if low is not None and high is not None
            else " (no interval: the oracle's gain is within the windows' noise)"
        )
    needless = s["needless_windows"]
    where = f": after window {', '.join(map(str, needless))}" if needless else ""
    return [
        f"{s['windows']} windows, {s['rows']:,} rows; mean {result.metric}: policy "
        f"{s['policy_mean']:.4f}, static {s['static_mean']:.4f}, oracle {s['oracle_mean']:.4f}",
        f"recovery {recovery}; {s['promotions']} promotions ({s['needless_promotions']} "
        f"needless{where}), {s['rollbacks']} rollbacks, {s['retrainings']} retrainings",
        f"the oracle's own refits: {s['oracle_needless_updates']} of "
        f"{s['oracle_updates_judged']} served worse over the next two windows than the model "
        "they replaced (how often a refit loses by chance here)",
    ]


def html(result: BacktestResult, title: str = "Loop backtest") -> str:
    windows = result.windows
    x = [float(w.index) for w in windows]
    series = [
        Series("policy", x, [w.policy for w in windows]),
        Series("static", x, [w.static for w in windows]),
        Series("oracle (refit every window)", x, [w.oracle for w in windows]),
    ]
    marks = [
        Mark(w.index + 0.5, event, f"after window {w.index}: {event}")
        for w in windows
        for event in w.events
        if event in ("promoted", "rolled-back")
    ]
    chart = line_chart(f"{result.metric} per window", series, x_label="window", marks=marks)
    rows = "".join(_row(w.to_json()) for w in windows)
    policy = "".join(
        f"<tr><th>{escape(k)}</th><td>{escape(str(v))}</td></tr>"
        for k, v in result.policy.items()
        if k not in ("deployment", "notify")
    )
    return (
        f"<!doctype html><html lang=en><meta charset=utf-8><title>{escape(title)}</title>"
        f"<style>{_STYLE}</style><h1>{escape(title)}</h1>"
        + "".join(f"<p>{escape(line)}</p>" for line in summary_lines(result))
        + f"{chart}<p>Marks: P a promotion, R a rollback (after that window).</p>"
        f"<h2>Windows</h2><table><tr><th>window</th><th>end</th><th>rows</th>"
        f"<th>policy</th><th>static</th><th>oracle</th><th>champion</th><th>decisions</th>"
        f"</tr>{rows}</table><h2>Policy</h2><table>{policy}</table></html>"
    )


def _row(window: dict[str, Any]) -> str:
    events = " ".join(f'<b class="{escape(e)}">{escape(e)}</b>' for e in window["events"])
    decisions = "<br>".join(escape(d) for d in window["decisions"])
    numbers = "".join(
        f'<td class="num">{window[k]:.4f}</td>' for k in ("policy", "static", "oracle")
    )
    return (
        f'<tr><td class="num">{window["window"]}</td><td>{escape(window["end"][:19])}</td>'
        f'<td class="num">{window["rows"]:,}</td>{numbers}<td class="num">'
        f"{window['champion']}</td><td>{events} {decisions}</td></tr>"
    )
