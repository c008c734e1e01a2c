"""How `loopml monitor ...` shows a report: one summary line per run, the features, the
performance against fed-back labels, and a history whose columns are those of the monitor's
kind (drift and performance, or health). The drift share is the inputs'; the label's and the
prediction's drift are shown apart, and the importance-weighted drift when the model gave
importances."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from loopml.cli.context import print_table, when

METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss", "mae", "rmse", "r2")
"""Performance metrics in the order they are shown."""
HEADLINE = ("accuracy", "f1", "mae", "rmse")
"""The metrics a one-line summary names (a classifier's, or a regressor's)."""
HISTORY_METRICS = ("accuracy", "f1", "roc_auc", "log_loss", "mae", "rmse", "r2")


def summary(result: Any) -> str:
    """One line for a monitor run: health, or rows, drift, quality and performance."""
    document = result.document
    alerts = "".join(f"; alert {a.id} {a.state}" for a in result.alerts)
    if document.get("kind") == "health":
        state = "DOWN" if document["down"] else "up"
        p99 = document["p99_latency_ms"]
        return (
            f"run {result.run.id}: {state} ({document['error'] or document['status']}, "
            f"{document['probe_ms']:.1f} ms), {document['rows']} rows served"
            f"{'' if p99 is None else f', p99 {p99:.1f} ms'}{alerts}"
        )
    drifted = document["drifted_features"]
    unreadable = document.get("unreadable_values") or 0
    performance = performance_text(document)
    weighted = _weighted(document)
    apart = "".join(
        f", {role} drifted"
        for role in ("prediction", "label")
        if (document.get(f"{role}_drift") or {}).get("drifted")
    )
    return (
        f"run {result.run.id}: {result.run.rows} rows, drift share {document['drift_share']:.0%}"
        f"{f' (weighted {weighted:.0%})' if weighted is not None else ''}"
        f"{': ' + ', '.join(drifted) if drifted else ''}{apart}"
        f", {document['quality_issues']} quality issue(s)"
        f"{f', {unreadable} unreadable value(s)' if unreadable else ''}"
        f"{f', {performance}' if performance else ''}{alerts}"
    )


def _weighted(document: dict[str, Any]) -> float | None:
    """The importance-weighted drift, when the model's importances made it (else it is the
    drift share again, not worth a second number)."""
    if document.get("importance_source") != "model":
        return None
    value = document.get("weighted_drift")
    return None if value is None else float(value)


def drift_text(document: dict[str, Any]) -> str:
    """`33% of 3 inputs, weighted by the model's importance 52%`."""
    count = document.get("input_count")
    text = f"{document['drift_share']:.0%}" + ("" if count is None else f" of {count} inputs")
    weighted = _weighted(document)
    if weighted is not None:
        text += f", weighted by the model's importance {weighted:.0%}"
    return text


def apart_fields(document: dict[str, Any]) -> list[tuple[str, str]]:
    """The label's and the prediction's drift, each on its own line, when the report has them."""
    fields = []
    for role in ("label", "prediction"):
        found = document.get(f"{role}_drift")
        if not found:
            continue
        if found.get("rows") == 0:
            text = f"{found['column']}: no values in this window"
        else:
            verdict = "DRIFT" if found["drifted"] else "no drift"
            text = f"{found['column']}: {verdict} ({found['effect']} "
            text += f"{_number(found['effect_value'])})"
        fields.append((f"{role} drift", text))
    return fields


def alerts_json(alerts: Sequence[Any]) -> dict[str, list[dict[str, Any]]]:
    """The alerts a run changed, as `monitor run --json` shows them: those it fired (or
    reopened) and those it resolved, each with its id, rule, condition and value."""
    shown: dict[str, list[dict[str, Any]]] = {"fired": [], "resolved": []}
    for alert in alerts:
        side = "resolved" if alert.state == "resolved" else "fired"
        shown[side].append(
            {
                "id": alert.id,
                "rule": alert.rule_id,
                "condition": alert.condition,
                "value": alert.value,
            }
        )
    return shown


def performance_text(document: dict[str, Any]) -> str:
    """`accuracy 0.912, f1 0.870 on 412 labelled rows`; the count alone when too few labels
    came for metrics; empty when none came."""
    section = document.get("performance") or {}
    labelled = section.get("labelled_rows") or 0
    if not labelled:
        return ""
    metrics = section.get("metrics") or {}
    shown = [f"{name} {metrics[name]:.3f}" for name in HEADLINE if name in metrics]
    if not shown:
        return f"{labelled} labelled rows ({section.get('note') or 'no metrics'})"
    return f"{', '.join(shown)} on {labelled} labelled rows"


def print_performance(document: dict[str, Any]) -> None:
    """The window's metrics beside the model version's own (from the registry), and the
    label-free estimates; nothing when no label came and nothing was estimated."""
    section = document.get("performance") or {}
    metrics = section.get("metrics") or {}
    own = section.get("model_metrics") or {}
    estimated = section.get("estimated") or {}
    rows = [
        (name, _number(metrics[name]), _number(own.get(name)))
        for name in METRICS
        if name in metrics
    ]
    rows += [
        (f"{name} (estimated)", _number(estimated[name]), _number(own.get(name)))
        for name in ("accuracy", "roc_auc")
        if name in estimated
    ]
    if rows:
        labelled = section.get("labelled_rows") or 0
        print_table(None, ["metric", f"window ({labelled} labelled)", "model (registry)"], rows)


def print_features(document: dict[str, Any]) -> None:
    rows = []
    for feature in document["features"]:
        q = feature["q_value"]
        name, role = feature["name"], feature.get("role", "input")
        rows.append(
            (
                name if role in ("input", name) else f"{name} ({role})",
                feature["kind"],
                "DRIFT" if feature["drifted"] else "",
                "" if q is None else f"{q:.3g}",
                f"{feature['effect']} {_number(feature['effect_value'])}"
                f" (>= {_number(feature['effect_threshold'])})",
                " ".join(feature["findings"]),
            )
        )
    print_table(None, ["feature", "kind", "drift", "q", "effect", "findings"], rows)


def print_unreadable(document: dict[str, Any]) -> None:
    """The values the run could not read, by column and kind, with example request ids."""
    found = (document.get("quality") or {}).get("unreadable") or []
    if not found:
        return
    print_table(
        None,
        ["unreadable in", "kind", "values", "e.g. requests"],
        [(u["column"], u["kind"], u["count"], ", ".join(map(str, u["examples"]))) for u in found],
    )


def print_history(runs: Sequence[Any], documents: Sequence[dict[str, Any]]) -> None:
    """One line per run (`documents`: their stored reports, in the same order)."""
    if any(d.get("kind") == "health" for d in documents):
        _print_health_history(runs, documents)
        return
    sections = [d.get("performance") or {} for d in documents]
    labelled = any(s.get("labelled_rows") for s in sections)
    names = [n for n in HISTORY_METRICS if any(n in (s.get("metrics") or {}) for s in sections)]
    weighted = any(_weighted(d) is not None for d in documents)
    columns = ["run", "time", "rows", "drift share"]
    columns += ["weighted drift"] if weighted else []
    columns += ["labelled", *names] if labelled else []
    rows = []
    for run, section, document in zip(runs, sections, documents, strict=True):
        row = [run.id, when(run.time), run.rows, f"{run.drift_share:.0%}"]
        if weighted:
            value = _weighted(document)
            row += ["-" if value is None else f"{value:.0%}"]
        if labelled:
            metrics = section.get("metrics") or {}
            row += [section.get("labelled_rows") or 0]
            row += ["" if n not in metrics else _number(metrics[n]) for n in names]
        rows.append((*row, ", ".join(run.drifted)))
    print_table(None, [*columns, "drifted"], rows)


def _print_health_history(runs: Sequence[Any], documents: Sequence[dict[str, Any]]) -> None:
    rows = []
    for run, document in zip(runs, documents, strict=True):
        p99, rate = document.get("p99_latency_ms"), document.get("error_rate")
        rows.append(
            (
                run.id,
                when(run.time),
                "DOWN" if document.get("down") else "up",
                document.get("error") or document.get("status") or "",
                _number(document.get("probe_ms"), 1),
                run.rows,
                _number(p99, 1),
                "-" if rate is None else f"{rate:.1%}",
            )
        )
    columns = ["run", "time", "state", "answer", "probe ms", "rows", "p99 ms", "error rate"]
    print_table(None, columns, rows)


def _number(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"
