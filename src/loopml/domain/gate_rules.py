"""The rules of the CI gate, as pure parsing and evaluation.

A rule is `METRIC OP THRESHOLD`, written as people write it:

    accuracy >= 0.8                                   a fixed number
    f1 >= champion.f1                                 no worse than the champion
    f1 >= champion.f1 + 0.005                         better by a margin (or `- 0.01`: worse by)
    latency_p99_ms <= 1.2 * champion.latency_p99_ms   at most 20% slower (`champion.M * 1.2` too)
    rmse <= 1.1 * champion.rmse + 2                   a factor and a margin together

The threshold is `factor * champion.METRIC + margin` (factor 1 and margin 0 when absent), or the
number. OP is one of < <= > >= ==. METRIC, on either side, is one of `KNOWN_METRICS`: the
classification and regression metrics of monitoring, the single-row prediction latency, and
`parity_max_abs_diff`, read from what the version records (`loopml.domain.parity.gate_value`):
`parity_max_abs_diff <= 0.0001` passes a compiled (ONNX) version only if it carries a passed
parity check with no larger difference, and any version that is not ONNX.

A latency rule (a latency metric against a number or against a champion's latency), given the
timings as `LatencyEvidence`, is judged on the interval of `value - threshold`
(`loopml.domain.latency`): it fails only when the whole interval breaks the bound, and when the
interval straddles the bound it holds with the note `UNCLEAR` ("could not tell apart"), so a
busy machine cannot fail a guard that the timings cannot settle.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from loopml.domain.latency import PERCENTILES, Finding, LatencyEvidence, interval_of, judge
from loopml.domain.parity import PARITY_METRIC
from loopml.errors import InvalidInput

LATENCY_METRICS = frozenset(PERCENTILES)
"""Milliseconds of one single-row prediction, median and 99th percentile; measured only when a
rule names one."""
KNOWN_METRICS = (
    frozenset({"accuracy", "precision", "recall", "f1", "roc_auc", "log_loss", "mae", "rmse", "r2"})
    | LATENCY_METRICS
    | {PARITY_METRIC}
)
"""Every metric a gate can measure (which ones it does depends on the task and the model)."""
RULE_HINT = (
    "Write METRIC OP THRESHOLD, OP one of < <= > >= ==, THRESHOLD a number or "
    "[FACTOR *] champion.METRIC [* FACTOR] [+|- NUMBER], e.g. "
    '"accuracy >= 0.8", "f1 >= champion.f1 + 0.005" or '
    '"latency_p99_ms <= 1.2 * champion.latency_p99_ms".'
)

UNCLEAR = "could not tell apart"
"""Starts the note of a latency rule that held because its timings could not settle it."""

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
}
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_RULE = re.compile(
    r"^\s*(?P<metric>[A-Za-z_]\w*)\s*(?P<op><=|>=|==|<|>)\s*(?:"
    rf"(?P<number>-?{_NUMBER})"
    rf"|(?:(?P<before>{_NUMBER})\s*\*\s*)?champion\.(?P<against>[A-Za-z_]\w*)"
    rf"(?:\s*\*\s*(?P<after>{_NUMBER}))?"
    rf"(?:\s*(?P<sign>[+-])\s*(?P<margin>{_NUMBER}))?"
    r")\s*$"
)


@dataclass(frozen=True)
class Rule:
    """One parsed rule: `metric op number`, or `metric op factor * champion[against] + margin`."""

    text: str
    metric: str
    op: str
    number: float | None
    against: str | None
    factor: float = 1.0
    margin: float = 0.0


def parse_rule(text: str) -> Rule:
    """The rule `text` says, or InvalidInput that shows how to write one."""
    match = _RULE.match(text)
    if match is None or (match["before"] and match["after"]):
        raise InvalidInput(f"The gate rule {text!r} cannot be read.", RULE_HINT)
    for name in (match["metric"], match["against"]):
        if name is not None and name not in KNOWN_METRICS:
            raise InvalidInput(
                f"The gate rule {text!r} names {name!r}, which is not measured by a gate.",
                f"Use one of: {', '.join(sorted(KNOWN_METRICS))}.",
            )
    sign = -1.0 if match["sign"] == "-" else 1.0
    return Rule(
        text=text.strip(),
        metric=match["metric"],
        op=match["op"],
        number=float(match["number"]) if match["number"] is not None else None,
        against=match["against"],
        factor=float(match["before"] or match["after"] or 1.0),
        margin=sign * float(match["margin"] or 0.0),
    )


def apply_rule(
    rule: Rule,
    candidate: Mapping[str, float],
    champion: Mapping[str, float] | None,
    latency: LatencyEvidence | None = None,
) -> tuple[str, bool, str]:
    """(rule text, whether it held, "value op threshold" and for a latency rule judged on
    `latency` its interval) for the candidate's and the champion's metrics; InvalidInput when a
    metric it names was not measured."""
    if rule.metric not in candidate:
        raise InvalidInput(
            f"The gate rule {rule.text!r} names {rule.metric!r}, which is not measured here.",
            f"Use one of: {', '.join(candidate)}.",
        )
    value = candidate[rule.metric]
    threshold = _threshold(rule, champion)
    detail = f"{value:.4f} {rule.op} {threshold:.4f}"
    if latency is not None and _is_latency_rule(rule):
        finding, evidence = _judge_latency(rule, latency)
        return rule.text, finding is not Finding.FAILS, f"{detail}; {_say(finding, evidence)}"
    return rule.text, _OPS[rule.op](value, threshold), detail


def _is_latency_rule(rule: Rule) -> bool:
    return rule.metric in LATENCY_METRICS and (
        rule.against is None or rule.against in LATENCY_METRICS
    )


def _judge_latency(rule: Rule, latency: LatencyEvidence) -> tuple[Finding, str]:
    """The finding on the interval of `value - threshold` over the bootstrap resamples, and
    the interval people read: the ratio to the champion, else the candidate's value."""
    value = latency.candidate_resampled[rule.metric]
    if rule.against is None:
        assert rule.number is not None  # parse_rule sets one of the two
        excess = value - rule.number
        read = (
            f"{rule.metric} {latency.interval('candidate', rule.metric)} ms, bound {rule.number:g}"
        )
    else:
        ratio = latency.ratio(rule.metric, rule.against)  # InvalidInput without a champion
        assert latency.champion_resampled is not None  # ratio() checked it
        excess = value - (rule.factor * latency.champion_resampled[rule.against] + rule.margin)
        margin = f" {rule.margin:+g} ms" if rule.margin else ""
        read = f"ratio {ratio} to the champion, bound {rule.factor:g}{margin}"
    finding = judge(rule.op, interval_of(0.0, excess, latency.confidence))
    return finding, f"{read} ({latency.confidence:.0%} interval)"


def _say(finding: Finding, evidence: str) -> str:
    if finding is Finding.UNCLEAR:
        return f"{UNCLEAR}: {evidence}; passed"
    if finding is Finding.FAILS:
        return f"beyond the bound with confidence: {evidence}"
    return evidence


def _threshold(rule: Rule, champion: Mapping[str, float] | None) -> float:
    if rule.against is None:
        assert rule.number is not None  # parse_rule sets one of the two
        return rule.number
    if champion is None:
        raise InvalidInput(
            f"The gate rule {rule.text!r} compares with the champion, but there is none.",
            "Name a version to compare with (--against champion), or use a fixed number.",
        )
    if rule.against not in champion:
        raise InvalidInput(
            f"The gate rule {rule.text!r} names champion.{rule.against}, which is not measured.",
            f"Use one of: {', '.join(champion)}.",
        )
    return rule.factor * champion[rule.against] + rule.margin
