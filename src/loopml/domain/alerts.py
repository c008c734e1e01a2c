"""Alert rules and where their notices go, as pure parsing and evaluation.

A condition is `FIELD OP NUMBER` with an optional duration, written as people write it:

    drift_share > 0.3 for 3 windows      held in the 3 latest monitor runs
    rows < 100 for 30m                   held in every run of the last 30 minutes (at least one)
    drifted_count >= 2                   held in the latest run
    down for 2m                          a health probe failed in every run of the last 2m

FIELD is a number in the monitor run's report (`drift_share` and `drifted_count` over the
model's inputs, `weighted_drift` by the model's importance, `rows`, a metric such as `accuracy`,
or `feature.<name>.<statistic>`, e.g. `feature.tenure.wasserstein`); OP is one of
< <= > >= == !=.
A rule's channels (`log:`, `slack:URL`, `webhook:URL`, `email:ADDRESS`, ...) are the kinds of
`loopml.adapters.notifiers`, which check and send them.

Hysteresis: a firing alert resolves when its condition has been false on the rule's
`resolve_after` latest runs in a row, each time past the threshold by `resolve_margin`
(`accuracy < 0.8` with margin 0.05 counts as false only at accuracy >= 0.85). With 1 and 0 it
resolves on the first run the condition is false. `decide` makes that call, with its reason.
"""

from __future__ import annotations

import dataclasses
import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from loopml.domain.durations import format_duration, parse_duration
from loopml.domain.records import AlertRule
from loopml.errors import InvalidInput


class AlertState(StrEnum):
    """An alert: firing (channels told), acknowledged by a person, resolved (told again); a
    resolved alert fires again when its condition returns (the moves are in
    `loopml.domain.loop_decisions.MOVES`)."""

    FIRING = "firing"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}
_CONDITION = re.compile(
    r"^\s*(?P<field>[A-Za-z_][\w.\-]*)"
    r"(\s*(?P<op><=|>=|==|!=|<|>)\s*(?P<value>-?\d+(\.\d+)?))?"
    r"(\s+for\s+(?P<count>\d+)\s+windows?|\s+for\s+(?P<duration>[\w ]+?))?\s*$"
)
FLAGS = frozenset({"down"})
"""Fields that are conditions on their own: `down for 2m` means `down >= 1 for 2m`."""
_HINT = (
    'Write FIELD OP NUMBER [for N windows | for DURATION], e.g. "drift_share > 0.3 for 3 windows".'
)


@dataclass(frozen=True)
class Condition:
    field: str
    op: str
    threshold: float
    windows: int = 1
    """Consecutive latest runs that must all meet the condition."""
    seconds: int | None = None
    """Or: every run in this many latest seconds must meet it."""

    def text(self) -> str:
        base = f"{self.field} {self.op} {self.threshold:g}"
        if self.field in FLAGS and (self.op, self.threshold) == (">=", 1.0):
            base = self.field
        if self.seconds is not None:
            return f"{base} for {format_duration(self.seconds)}"
        return base if self.windows == 1 else f"{base} for {self.windows} windows"

    def holds(self, runs: Sequence[tuple[int, Mapping[str, Any]]], now_us: int) -> bool:
        """Whether the condition holds over `runs`: (time_us, report fields), newest first."""
        if self.seconds is not None:
            since = now_us - self.seconds * 1_000_000
            recent = [fields for when, fields in runs if when >= since]
        else:
            recent = [fields for _, fields in runs[: self.windows]]
            if len(recent) < self.windows:
                return False
        return bool(recent) and all(self._meets(fields) for fields in recent)

    def _meets(self, fields: Mapping[str, Any]) -> bool:
        value = value_of(fields, self.field)
        return value is not None and _OPERATORS[self.op](value, self.threshold)


def parse_condition(text: str) -> Condition:
    match = _CONDITION.match(text)
    if match is None:
        raise InvalidInput(f"The condition {text!r} cannot be read.", _HINT)
    if match["op"] is None and match["field"] not in FLAGS:
        raise InvalidInput(f"The condition {text!r} has no comparison.", _HINT)
    op, value = (match["op"], float(match["value"])) if match["op"] else (">=", 1.0)
    windows = int(match["count"]) if match["count"] else 1
    if windows < 1:
        raise InvalidInput(f"The condition {text!r} asks for 0 windows.", _HINT)
    seconds = parse_duration(match["duration"]) if match["duration"] else None
    return Condition(match["field"], op, value, windows, seconds)


def value_of(fields: Mapping[str, Any], name: str) -> float | None:
    """A number from a report: a top-level field, or `feature.<name>.<statistic>`."""
    if name.startswith("feature."):
        _, _, rest = name.partition(".")
        feature, _, statistic = rest.rpartition(".")
        for item in fields.get("features", []):
            if item.get("name") == feature:
                value = item.get(statistic, item.get("statistics", {}).get(statistic))
                return _number(value)
        return None
    return _number(fields.get(name))


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    return None


MAX_RESOLVE_AFTER = 50
"""The most runs a rule may ask to be clear before resolving (a monitor's runs rules look back
over)."""
_TOWARD_CLEAR = {"<": 1.0, "<=": 1.0, ">": -1.0, ">=": -1.0}
"""Which way a margin moves the threshold so that clearing takes more: up for `<`, down for
`>`. Equality conditions take no margin."""


def check_resolution(condition: str, resolve_after: int, resolve_margin: float) -> None:
    """Refuse a resolution a rule cannot use: `resolve_after` from 1 to `MAX_RESOLVE_AFTER`
    runs, `resolve_margin` finite and not negative (and 0 on an `==` or `!=` condition)."""
    whole = isinstance(resolve_after, int) and not isinstance(resolve_after, bool)
    if not whole or not 1 <= resolve_after <= MAX_RESOLVE_AFTER:
        raise InvalidInput(
            f"resolve_after is {resolve_after!r}; an alert resolves after 1 to "
            f"{MAX_RESOLVE_AFTER} runs on which its condition is false.",
            "Give --resolve-after 1 (the first clear run, the default) or more, e.g. 3.",
        )
    if not math.isfinite(resolve_margin) or resolve_margin < 0:
        raise InvalidInput(
            f"resolve_margin is {resolve_margin!r}; it must be a number of 0 or more.",
            "Give --resolve-margin 0 (the default) or how far past the threshold the value "
            "must go, e.g. 0.05.",
        )
    if resolve_margin > 0 and parse_condition(condition).op not in _TOWARD_CLEAR:
        raise InvalidInput(
            f"The condition {condition!r} compares with == or !=, which has no side to clear "
            f"by a margin ({resolve_margin:g} given).",
            "Leave out --resolve-margin, or write the condition with < <= > >=.",
        )


class AlertAction(StrEnum):
    FIRE = "fire"
    """No alert is open and the condition holds: open one."""
    STAY = "stay"
    """An alert is open and has not cleared for long or far enough: it stays as it is."""
    RESOLVE = "resolve"
    """An alert is open and its condition has cleared as the rule asks: resolve it."""
    QUIET = "quiet"
    """No alert is open and the condition does not hold: nothing to do."""


@dataclass(frozen=True)
class AlertDecision:
    action: AlertAction
    reason: str
    value: float | None
    """The field's value in the latest run (None when that run's report lacks it)."""


def decide(
    rule: AlertRule,
    runs: Sequence[tuple[int, Mapping[str, Any]]],
    now_us: int,
    open_state: str | None,
) -> AlertDecision:
    """What a rule's alert does after a monitor run: `runs` are (time_us, report fields),
    newest first, the latest being the run just made at `now_us`; `open_state` is the state of
    the rule's open alert (`firing`, `acknowledged`) or None. An alert never resolves on a run
    where its condition holds; it resolves once the condition is false (past the threshold by
    `resolve_margin`) on each of the latest `resolve_after` runs."""
    condition = parse_condition(rule.condition)
    value = value_of(runs[0][1], condition.field) if runs else None
    now = "" if value is None else f" ({condition.field} {value:g})"
    holds = condition.holds(runs, now_us)
    if open_state is None:
        if holds:
            return AlertDecision(AlertAction.FIRE, f"{condition.text()} holds{now}", value)
        return AlertDecision(AlertAction.QUIET, f"{condition.text()} does not hold{now}", value)
    if holds:
        return AlertDecision(AlertAction.STAY, f"{condition.text()} still holds{now}", value)
    clear = _cleared_runs(condition, rule, runs, now_us)
    if clear >= rule.resolve_after:
        return AlertDecision(AlertAction.RESOLVE, f"{_clearing(condition, rule)}{now}", value)
    if clear == 0:  # false, but not past the threshold by the margin
        reason = f"{condition.text()} no longer holds, but {_clearing(condition, rule)} not yet"
    else:
        reason = (
            f"{_clearing(condition, rule)} on the last {clear} run(s); it resolves after "
            f"{rule.resolve_after} in a row"
        )
    return AlertDecision(AlertAction.STAY, reason + now, value)


def _cleared_runs(
    condition: Condition,
    rule: AlertRule,
    runs: Sequence[tuple[int, Mapping[str, Any]]],
    now_us: int,
) -> int:
    """How many of the latest runs in a row (up to `resolve_after`) the condition was false
    on, its threshold moved by the margin so that clearing takes more; each run judged on the
    runs up to it, as it was judged then."""
    strict = dataclasses.replace(condition, threshold=_cleared_at(condition, rule))
    clear = 0
    for index in range(min(rule.resolve_after, max(len(runs), 1))):  # no run: nothing holds
        at = now_us if index == 0 else runs[index][0]
        if strict.holds(runs[index:], at):
            break
        clear += 1
    return clear


def _cleared_at(condition: Condition, rule: AlertRule) -> float:
    """The threshold moved by the margin toward the clear side (rounded, so that 0.8 + 0.05
    is 0.85 and not 0.8500000000000001)."""
    step = _TOWARD_CLEAR.get(condition.op, 0.0) * rule.resolve_margin
    return round(condition.threshold + step, 12) if step else condition.threshold


def _clearing(condition: Condition, rule: AlertRule) -> str:
    """`accuracy < 0.8 is false`, or with a margin `accuracy >= 0.85`."""
    moved = _cleared_at(condition, rule)
    if moved == condition.threshold:
        return f"{condition.text()} is false"
    past = {"<": ">=", "<=": ">", ">": "<=", ">=": "<"}[condition.op]
    return f"{condition.field} {past} {moved:g}"
