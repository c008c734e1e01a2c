"""The CI gate for models: a candidate version against the champion (or fixed thresholds) on a
named dataset version, with data checks, as a Markdown report and a verdict.

    loopml gate --model churn --candidate 7 --against champion --data churn@12 \
        --rule "f1 >= champion.f1" --rule "accuracy >= 0.8" --report gate.md

A rule is `METRIC OP THRESHOLD` (the grammar is `loopml.domain.gate_rules`): the threshold a
number, or the champion's metric scaled and shifted, `[FACTOR *] champion.METRIC [* FACTOR]
[+|- NUMBER]`, e.g. `f1 >= champion.f1 + 0.005` or `latency_p99_ms <= 1.2 *
champion.latency_p99_ms`; OP is one of < <= > >= ==. Every rule must hold. The metrics are those
of monitoring (accuracy, precision, recall, f1, roc_auc, log_loss; mae, rmse, r2), computed on
every row of the dataset version that has a label, and, only when a rule names one, the latency
of single-row predictions (latency_p50_ms, latency_p99_ms: milliseconds, over up to
`LATENCY_ROWS` rows after `LATENCY_WARMUP` warm-up calls). The label column is `--label`, or the
one column of the data the model does not take.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from loopml.bootstrap import Workspace
from loopml.domain.gate_rules import LATENCY_METRICS, RULE_HINT, apply_rule, parse_rule
from loopml.errors import InvalidInput
from loopml.monitoring.performance import score

__all__ = ["GateResult", "gate", "parse_rule"]

LATENCY_ROWS = 200
LATENCY_WARMUP = 5


@dataclass
class GateResult:
    passed: bool
    task: str
    candidate: dict[str, float]
    champion: dict[str, float] | None
    rules: list[tuple[str, bool, str]]
    """(rule, held, why)"""
    checks: list[tuple[str, bool, str]] = field(default_factory=list)
    rows: int = 0
    labels: str = ""

    def markdown(self, title: str) -> str:
        verdict = "PASSED" if self.passed else "FAILED"
        lines = [f"## {title}: {verdict}", ""]
        lines += [
            f"{self.rows:,} labelled rows, label column `{self.labels}`, task {self.task}.",
            "",
        ]
        lines += ["| metric | candidate | champion |", "|---|---|---|"]
        for metric, value in self.candidate.items():
            other = "" if not self.champion else f"{self.champion.get(metric, float('nan')):.4f}"
            lines.append(f"| {metric} | {value:.4f} | {other} |")
        lines += ["", "| rule | result | detail |", "|---|---|---|"]
        lines += [f"| `{r}` | {'pass' if ok else 'FAIL'} | {why} |" for r, ok, why in self.rules]
        lines += ["", "| data check | result | detail |", "|---|---|---|"]
        lines += [f"| {c} | {'pass' if ok else 'FAIL'} | {why} |" for c, ok, why in self.checks]
        return "\n".join(lines) + "\n"


def gate(
    ws: Workspace,
    *,
    model: str,
    candidate: str,
    data: str,
    rules: Sequence[str],
    against: str | None = "champion",
    label: str | None = None,
    project: str | None = None,
) -> GateResult:
    """Score `model` version `candidate` (and the version `against` names, if any) on dataset
    version `data` and apply `rules`."""
    from loopml.monitoring.monitors import read_dataset

    project = project or ws.project
    parsed = [parse_rule(text) for text in rules]
    if not parsed:
        raise InvalidInput("The gate has no rule.", RULE_HINT)
    if against is None and any(r.against for r in parsed):
        raise InvalidInput(
            "A rule compares with the champion, but no champion was named.",
            "Add --against champion.",
        )
    version = ws.registry.resolve(_ref(model, candidate), project)
    versions = [version]
    if against is not None:
        versions.append(ws.registry.resolve(_ref(model, against), project))
    dataset = ws.data.resolve(data, project, record=False)
    table = read_dataset(ws, dataset)
    inputs = [c["name"] for c in version.signature.get("inputs", [])]
    checks, frame, truth, label = _prepare(
        table, inputs, label, f"{dataset.name}@{dataset.version}"
    )
    features = frame[inputs] if inputs else frame
    timed = any({r.metric, r.against} & LATENCY_METRICS for r in parsed)
    scores = []
    for each in versions:
        loaded = ws.registry.load(each.ref, project=project)
        task, metrics = _score(loaded, features, truth, timed=timed)
        scores.append(metrics)
    candidate_metrics = scores[0]
    champion_metrics = scores[1] if len(scores) > 1 else None
    outcomes = [apply_rule(rule, candidate_metrics, champion_metrics) for rule in parsed]
    passed = all(ok for _, ok, _ in outcomes) and all(ok for _, ok, _ in checks)
    return GateResult(
        passed, task, candidate_metrics, champion_metrics, outcomes, checks, len(truth), label
    )


def _score(loaded: Any, features: Any, truth: Any, *, timed: bool) -> tuple[str, dict[str, float]]:
    """(task, metrics) of one loaded model version on `features` against `truth`, with the
    single-row latency when `timed`."""
    predicted = np.asarray(loaded.predict(features))
    proba = (
        loaded.raw.predict_proba(features)
        if callable(getattr(loaded.raw, "predict_proba", None))
        else None
    )
    task, metrics = score(predicted, truth, proba)
    if timed:
        metrics |= _latency_ms(loaded, features)
    return task, metrics


def _latency_ms(loaded: Any, features: Any) -> dict[str, float]:
    """Median and 99th percentile wall time, in milliseconds, of single-row predictions on up
    to `LATENCY_ROWS` rows of `features`, after `LATENCY_WARMUP` calls that are not counted."""
    rows = [features.iloc[[i]] for i in range(min(len(features), LATENCY_ROWS))]
    for i in range(LATENCY_WARMUP):
        loaded.predict(rows[i % len(rows)])
    timings_ms = []
    for row in rows:
        start = time.perf_counter()
        loaded.predict(row)
        timings_ms.append((time.perf_counter() - start) * 1000.0)
    return {
        "latency_p50_ms": float(np.percentile(timings_ms, 50)),
        "latency_p99_ms": float(np.percentile(timings_ms, 99)),
    }


def _ref(model: str, which: str) -> str:
    """`7` is a version, anything else an alias."""
    return f"{model}/{which}" if which.isdigit() else f"{model}@{which}"


def _prepare(
    table: Any, inputs: list[str], label: str | None, name: str
) -> tuple[list[tuple[str, bool, str]], Any, Any, str]:
    columns = list(table.column_names)
    missing = [c for c in inputs if c not in columns]
    if missing:
        raise InvalidInput(
            f"Dataset {name} lacks the model's inputs {missing}.",
            "Gate on data with every column the model takes.",
        )
    if label is None:
        others = [c for c in columns if c not in inputs]
        if len(others) != 1:
            raise InvalidInput(
                f"Dataset {name} has {len(others)} columns besides the model's inputs "
                f"({', '.join(others) or 'none'}), so its label column is unclear.",
                "Name it with --label COLUMN; a gate needs labelled data.",
            )
        label = others[0]
    if label not in columns:
        raise InvalidInput(
            f"Dataset {name} has no label column {label!r}.", f"Choose among: {', '.join(columns)}."
        )
    frame = table.to_pandas()
    labelled = frame[label].notna()
    if not labelled.any():
        raise InvalidInput(f"Dataset {name} has no labels in {label!r}.", "Gate on labelled data.")
    frame = frame[labelled].reset_index(drop=True)
    checks: list[tuple[str, bool, str]] = []
    nulls = {c: float(frame[c].isna().mean()) for c in inputs}
    worst = max(nulls, key=lambda c: nulls[c]) if nulls else None
    checks.append(
        (
            "missing values in the inputs",
            not worst or nulls[worst] < 0.05,
            "none" if not worst or nulls[worst] == 0 else f"worst {worst}: {nulls[worst]:.1%}",
        )
    )
    duplicates = float(frame.duplicated().mean()) if len(frame) else 0.0
    checks.append(("duplicate rows", duplicates < 0.05, f"{duplicates:.1%}"))
    checks.append(("labelled rows", len(frame) >= 30, f"{len(frame):,}"))
    return checks, frame, frame[label].to_numpy(), label
