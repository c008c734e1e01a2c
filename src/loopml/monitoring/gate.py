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
of single-row predictions (latency_p50_ms, latency_p99_ms: milliseconds). The label column is
`--label`, or the one column of the data the model does not take.

Latency is timed for candidate and champion together, taking turns in blocks on the same rows
(`loopml.monitoring.latency`: 2,000 calls each or 3 s per model, whichever first), so the load
of a busy machine hits both alike. Each percentile gets a 95% interval, and the candidate's over
the champion's a paired one; a latency rule fails only when its whole interval breaks the bound,
and holds with the note "could not tell apart" when the interval straddles it
(`loopml.domain.gate_rules`). The report says how many calls were timed and for how long.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from loopml.bootstrap import Workspace
from loopml.domain.gate_rules import (
    LATENCY_METRICS,
    RULE_HINT,
    UNCLEAR,
    apply_rule,
    parse_rule,
)
from loopml.domain.latency import Interval, LatencyEvidence, latency_evidence
from loopml.errors import InvalidInput
from loopml.monitoring.latency import BUDGET_S, Timed, time_interleaved
from loopml.monitoring.performance import score

__all__ = ["GateResult", "LatencyReport", "gate", "parse_rule"]


@dataclass(frozen=True)
class LatencyReport:
    """How latency was timed, and the interval of every latency metric: the candidate's, the
    champion's, and the candidate's over the champion's."""

    calls: int
    """Calls per model."""
    blocks: int
    block_calls: int
    rows: int
    seconds: float
    confidence: float
    candidate: dict[str, Interval]
    champion: dict[str, Interval] | None
    ratio: dict[str, Interval] | None

    def markdown(self) -> list[str]:
        how = (
            f"per model in {self.seconds:.1f} s, candidate and champion taking turns in blocks "
            f"of {self.block_calls} calls (in random order) on the same {self.rows:,} rows; "
            f"{self.confidence:.0%} intervals by a paired block bootstrap."
            if self.champion is not None
            else f"in {self.seconds:.1f} s, in blocks of {self.block_calls} calls on "
            f"{self.rows:,} rows; {self.confidence:.0%} intervals by a block bootstrap."
        )
        lines = [
            f"Latency: {self.calls:,} single-row calls {how}",
            "",
            "| latency | candidate | champion | candidate / champion |",
            "|---|---|---|---|",
        ]
        for metric, interval in self.candidate.items():
            champion = "" if self.champion is None else f"{self.champion[metric]} ms"
            ratio = "" if self.ratio is None else str(self.ratio[metric])
            lines.append(f"| {metric} | {interval} ms | {champion} | {ratio} |")
        return lines


def latency_report(timed: Timed, evidence: LatencyEvidence) -> LatencyReport:
    metrics = list(evidence.candidate)
    paired = evidence.champion is not None
    return LatencyReport(
        calls=timed.timings.calls,
        blocks=timed.timings.blocks,
        block_calls=timed.block_calls,
        rows=timed.rows,
        seconds=timed.seconds,
        confidence=evidence.confidence,
        candidate={m: evidence.interval("candidate", m) for m in metrics},
        champion={m: evidence.interval("champion", m) for m in metrics} if paired else None,
        ratio={m: evidence.ratio(m, m) for m in metrics} if paired else None,
    )


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
    latency: LatencyReport | None = None
    """How latency was timed and its intervals, when a rule named latency."""

    @property
    def notes(self) -> list[str]:
        """The rules that held only because their timings could not tell the models apart."""
        return [f"{rule} ({why})" for rule, ok, why in self.rules if ok and UNCLEAR in why]

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
        if self.latency is not None:
            lines += ["", *self.latency.markdown()]
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
    latency_budget_s: float = BUDGET_S,
) -> GateResult:
    """Score `model` version `candidate` (and the version `against` names, if any) on dataset
    version `data` and apply `rules`; latency is timed for at most `latency_budget_s` seconds
    per model."""
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
    loaded = [ws.registry.load(each.ref, project=project) for each in versions]
    scored = [_score(model, features, truth) for model in loaded]
    task, scores = scored[0][0], [metrics for _, metrics in scored]
    evidence, report = None, None
    if timed:
        timing = time_interleaved(loaded, features, budget_s=latency_budget_s)
        evidence = latency_evidence(timing.timings)
        report = latency_report(timing, evidence)
        scores[0] |= evidence.candidate
        if evidence.champion is not None:
            scores[1] |= evidence.champion
    candidate_metrics = scores[0]
    champion_metrics = scores[1] if len(scores) > 1 else None
    outcomes = [apply_rule(rule, candidate_metrics, champion_metrics, evidence) for rule in parsed]
    passed = all(ok for _, ok, _ in outcomes) and all(ok for _, ok, _ in checks)
    return GateResult(
        passed,
        task,
        candidate_metrics,
        champion_metrics,
        outcomes,
        checks,
        len(truth),
        label,
        report,
    )


def _score(loaded: Any, features: Any, truth: Any) -> tuple[str, dict[str, float]]:
    """(task, metrics) of one loaded model version on `features` against `truth`."""
    predicted = np.asarray(loaded.predict(features))
    proba = (
        loaded.raw.predict_proba(features)
        if callable(getattr(loaded.raw, "predict_proba", None))
        else None
    )
    return score(predicted, truth, proba)


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
