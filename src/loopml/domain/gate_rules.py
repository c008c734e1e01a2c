"""The rules of the CI gate, as pure parsing and evaluation.

A rule is `METRIC OP THRESHOLD`, written as people write it:

    accuracy >= 0.8                                   a fixed number
    f1 >= champion.f1                                 no worse than the champion
    f1 >= champion.f1 + 0.005                         better by a margin (or `- 0.01`: worse by)
    latency_p99_ms <= 1.2 * champion.latency_p99_ms   at most 20% slower (`champion.M * 1.2` too)
    rmse <= 1.1 * champion.rmse + 2                   a factor and a margin together

The threshold is `factor * champion.METRIC + margin` (factor 1 and margin 0 when absent), or the
number. OP is one of < <= > >= ==. METRIC, on either side, is one of `KNOWN_METRICS`: the
classification and regression metrics of monitoring, and the single-row prediction latency.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from loopml.errors import InvalidInput

LATENCY_METRICS = frozenset({"latency_p50_ms", "latency_p99_ms"})
"""Milliseconds of one single-row prediction, median and 99th percentile; measured only when a
rule names one."""
KNOWN_METRICS = (
    frozenset({"accuracy", "precision", "recall", "f1", "roc_auc", "log_loss", "mae", "rmse", "r2"})
    | LATENCY_METRICS
)
"""Every metric a gate can measure (which ones it does depends on the task and the model)."""
RULE_HINT = (
    "Write METRIC OP THRESHOLD, OP one of < <= > >= ==, THRESHOLD a number or "
    "[FACTOR *] champion.METRIC [* FACTOR] [+|- NUMBER], e.g. "
    '"accuracy >= 0.8", "f1 >= champion.f1 + 0.005" or '
    '"latency_p99_ms <= 1.2 * champion.latency_p99_ms".'
)

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
    rule: Rule, candidate: Mapping[str, float], champion: Mapping[str, float] | None
) -> tuple[str, bool, str]:
    """(rule text, whether it held, "value op threshold") for the candidate's and the
    champion's metrics; InvalidInput when a metric it names was not measured."""
    if rule.metric not in candidate:
        raise InvalidInput(
            f"The gate rule {rule.text!r} names {rule.metric!r}, which is not measured here.",
            f"Use one of: {', '.join(candidate)}.",
        )
    value = candidate[rule.metric]
    threshold = _threshold(rule, champion)
    held = _OPS[rule.op](value, threshold)
    return rule.text, held, f"{value:.4f} {rule.op} {threshold:.4f}"


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
