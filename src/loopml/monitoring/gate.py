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
`--label`, or the one column of the data the model does not take. `parity_max_abs_diff` is read,
not measured: the largest difference the version's parity check found when `loopml models
compile` made it (`--rule "parity_max_abs_diff <= 0.0001"`: an ONNX version without a passed
check fails; a version that is not ONNX has 0).

Latency is timed for candidate and champion together, taking turns in blocks on the same rows
(`loopml.monitoring.latency`: 2,000 calls each or 3 s per model, whichever first), so the load
of a busy machine hits both alike. Each percentile gets a 95% interval, and the candidate's over
the champion's a paired one; a latency rule fails only when its whole interval breaks the bound,
and holds with the note "could not tell apart" when the interval straddles it
(`loopml.domain.gate_rules`). The report says how many calls were timed and for how long.

With a confidence (`--confidence 0.9`), every rule of a metric against `champion.METRIC` (not
latency) is judged on the paired difference of the two models on the same labelled rows
(`loopml.domain.paired`: exact on the disagreements for accuracy, a seeded paired bootstrap for
the rest): it passes only when the difference keeps the rule with that confidence, fails when
it surely does not, and is otherwise undecided: the gate does not pass, and says how many rows
would tell. Without one, rules compare the two numbers, as they always did.

The data checks are policy (`loopml.domain.data_checks`, `--check "duplicates <= 0.05"`): the
worst input column's share of missing values (at most 0.05 by default), the share of duplicate
rows (reported, blocking only with a threshold) and the labelled rows (at least 30 by default),
each shown with its value and threshold; a failed check fails the gate.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from loopml.adapters.flavors.base import has_probabilities
from loopml.bootstrap import Workspace
from loopml.domain.confidence import check_confidence, check_horizon
from loopml.domain.data_checks import CheckOutcome, DataChecks, DataFacts, apply_checks
from loopml.domain.gate_rules import (
    LATENCY_METRICS,
    RULE_HINT,
    UNCLEAR,
    Rule,
    apply_rule,
    parse_rule,
)
from loopml.domain.latency import Interval, LatencyEvidence, latency_evidence
from loopml.domain.paired import (
    PAIRED_METRICS,
    PairedOutcome,
    PairedRows,
    Verdict,
    decide,
)
from loopml.domain.parity import PARITY_METRIC, gate_value
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
    confidence: float | None = None
    """How sure a rule against the champion had to be, when the gate was given one."""
    comparisons: dict[str, PairedOutcome] = field(default_factory=dict)
    """The paired difference behind each rule judged at `confidence`, by rule."""
    undecided: list[str] = field(default_factory=list)
    """The rules too few rows could decide at `confidence` (the gate did not pass)."""
    data_checks: list[CheckOutcome] = field(default_factory=list)
    """Every data check with its value and threshold (`checks` lists them as rows)."""

    @property
    def notes(self) -> list[str]:
        """The rules that held only because their timings could not tell the models apart."""
        return [f"{rule} ({why})" for rule, ok, why in self.rules if ok and UNCLEAR in why]

    @property
    def verdict(self) -> str:
        """PASSED, FAILED, or UNDECIDED when nothing failed but a rule was undecided."""
        if self.passed:
            return "PASSED"
        failed = any(not ok and r not in self.undecided for r, ok, _ in self.rules)
        checks_failed = any(not ok for _, ok, _ in self.checks)
        return "UNDECIDED" if self.undecided and not (failed or checks_failed) else "FAILED"

    def markdown(self, title: str) -> str:
        verdict = self.verdict
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
        if self.comparisons:
            lines += ["", *self._paired_markdown()]
        lines += ["", "| rule | result | detail |", "|---|---|---|"]
        lines += [f"| `{r}` | {self._result(r, ok)} | {why} |" for r, ok, why in self.rules]
        lines += ["", "| data check | result | detail |", "|---|---|---|"]
        lines += [f"| {c} | {'pass' if ok else 'FAIL'} | {why} |" for c, ok, why in self.checks]
        if self.undecided:
            lines += ["", *self._undecided_markdown()]
        return "\n".join(lines) + "\n"

    def _result(self, rule: str, ok: bool) -> str:
        return "pass" if ok else "undecided" if rule in self.undecided else "FAIL"

    def _paired_markdown(self) -> list[str]:
        bounds = f"{self.confidence:.0%} bounds"
        lines = [
            f"Paired on the same rows: candidate minus champion, with one-sided {bounds}.",
            "",
            f"| rule | difference | {bounds} | rows | method | verdict |",
            "|---|---|---|---|---|---|",
        ]
        for rule, found in self.comparisons.items():
            test = "" if found.p_value is None else f"; McNemar p = {found.p_value:.2g}"
            lines.append(
                f"| `{rule}` | {found.difference:+.4f} | [{found.low:+.4f}, {found.high:+.4f}] | "
                f"{found.rows:,} | {found.method}{test} | {found.verdict} |"
            )
        return lines

    def _undecided_markdown(self) -> list[str]:
        lines = [f"Undecided at {self.confidence:.0%} confidence, so not passed:"]
        for rule in self.undecided:
            found = self.comparisons[rule]
            tell = (
                f"about {found.needed_rows:,} labelled rows would tell"
                if found.needed_rows is not None
                else f"far more than {found.rows:,} labelled rows would be needed"
            )
            lines.append(f"- `{rule}`: {found.rows:,} rows cannot tell; {tell}.")
        return lines


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
    confidence: float | None = None,
    checks: DataChecks | None = None,
    load: Callable[[str], Any] | None = None,
    horizon: int | None = None,
) -> GateResult:
    """Score `model` version `candidate` (and the version `against` names, if any) on dataset
    version `data` and apply `rules`; latency is timed for at most `latency_budget_s` seconds
    per model. With `confidence`, a rule against the champion's metric is judged on the paired
    difference at that confidence, and may be undecided. The data checks take their thresholds
    from `checks` (default `DataChecks()`: duplicates reported, not blocking). `load` loads a
    model version by its ref (default: from the registry; a backtest passes its cache). With
    a `horizon` too, those rules are judged over the next `horizon` served rows (a prediction
    interval: the rule must show over them, not only on average)."""
    from loopml.monitoring.references import read_dataset

    if confidence is not None:
        check_confidence(confidence)
    check_horizon(horizon)
    if horizon is not None and confidence is None:
        raise InvalidInput(
            f"A horizon of {horizon:,} rows needs a confidence to judge the rules at.",
            "Add --confidence 0.9 (or leave out --horizon).",
        )
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
    frame, truth, label = _prepare(table, inputs, label, f"{dataset.name}@{dataset.version}")
    data_checks = apply_checks(checks or DataChecks(), _measure(frame, inputs))
    features = frame[inputs] if inputs else frame
    timed = any({r.metric, r.against} & LATENCY_METRICS for r in parsed)
    fetch = load or (lambda ref: ws.registry.load(ref, project=project))
    loaded = [fetch(each.ref) for each in versions]
    scored = [_score(model, features, truth) for model in loaded]
    task, scores = scored[0].task, [each.metrics for each in scored]
    evidence, report = None, None
    if timed:
        timing = time_interleaved(loaded, features, budget_s=latency_budget_s)
        evidence = latency_evidence(timing.timings)
        report = latency_report(timing, evidence)
        scores[0] |= evidence.candidate
        if evidence.champion is not None:
            scores[1] |= evidence.champion
    _add_parity(parsed, scores, versions)
    candidate_metrics = scores[0]
    champion_metrics = scores[1] if len(scores) > 1 else None
    outcomes = [apply_rule(rule, candidate_metrics, champion_metrics, evidence) for rule in parsed]
    comparisons: dict[str, PairedOutcome] = {}
    if confidence is not None and len(scored) > 1:
        rows = PairedRows(
            truth, scored[0].predicted, scored[1].predicted, scored[0].proba, scored[1].proba
        )
        outcomes, comparisons = _judge_paired(parsed, outcomes, rows, confidence, horizon)
    passed = all(ok for _, ok, _ in outcomes) and all(each.ok for each in data_checks)
    return GateResult(
        passed,
        task,
        candidate_metrics,
        champion_metrics,
        outcomes,
        [each.row for each in data_checks],
        len(truth),
        label,
        report,
        confidence,
        comparisons,
        [r for r, found in comparisons.items() if found.verdict is Verdict.UNDECIDED],
        data_checks,
    )


def _add_parity(
    parsed: Sequence[Rule], scores: list[dict[str, float]], versions: Sequence[Any]
) -> None:
    """When a rule names `parity_max_abs_diff`, each version's, as it records it."""
    if any(PARITY_METRIC in (r.metric, r.against) for r in parsed):
        for each, recorded in zip(scores, versions, strict=True):
            each[PARITY_METRIC] = gate_value(recorded.flavor, recorded.flavor_info)


def _judge_paired(
    parsed: Sequence[Rule],
    outcomes: list[tuple[str, bool, str]],
    rows: PairedRows,
    confidence: float,
    horizon: int | None = None,
) -> tuple[list[tuple[str, bool, str]], dict[str, PairedOutcome]]:
    """The outcomes with every rule against a champion's (non-latency) metric judged on the
    paired difference at `confidence`, and those differences by rule."""
    judged, comparisons = [], {}
    for rule, (text, ok, why) in zip(parsed, outcomes, strict=True):
        if rule.against in PAIRED_METRICS and rule.metric in PAIRED_METRICS:
            found = decide(
                rows,
                metric=rule.metric,
                op=rule.op,
                margin=rule.margin,
                confidence=confidence,
                against=rule.against,
                factor=rule.factor,
                horizon=horizon,
            )
            comparisons[text] = found
            ok, why = found.verdict is Verdict.PASS, f"{why}; {found.detail}"
        judged.append((text, ok, why))
    return judged, comparisons


@dataclass(frozen=True, eq=False)
class _Scored:
    task: str
    metrics: dict[str, float]
    predicted: Any
    proba: Any


def _score(loaded: Any, features: Any, truth: Any) -> _Scored:
    """The task, metrics, predictions and (if any) class probabilities of one loaded model
    version on `features` against `truth`."""
    predicted = np.asarray(loaded.predict(features))
    proba = (
        np.asarray(loaded.predict_proba(features), dtype=np.float64)
        if has_probabilities(loaded)
        else None
    )
    task, metrics = score(predicted, truth, proba)
    return _Scored(task, metrics, predicted, proba)


def _ref(model: str, which: str) -> str:
    """`7` is a version, anything else an alias."""
    return f"{model}/{which}" if which.isdigit() else f"{model}@{which}"


def _prepare(table: Any, inputs: list[str], label: str | None, name: str) -> tuple[Any, Any, str]:
    """The labelled rows of `table`, their labels and the label column, or InvalidInput."""
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
    return frame, frame[label].to_numpy(), label


def _measure(frame: Any, inputs: list[str]) -> DataFacts:
    """The facts the data checks judge, vectorised: labelled rows, the worst input column's
    share of missing values, the share of rows repeating an earlier one exactly."""
    missing, worst = 0.0, None
    if inputs:
        nulls = frame[inputs].isna().mean()
        if nulls.any():
            worst = str(nulls.idxmax())
            missing = float(nulls.max())
    return DataFacts(
        rows=len(frame),
        missing_share=missing,
        duplicate_share=float(frame.duplicated().mean()) if len(frame) else 0.0,
        worst_column=worst,
    )
