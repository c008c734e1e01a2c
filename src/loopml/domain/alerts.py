"""Alert rules and where their notices go, as pure parsing and evaluation.

A condition is `FIELD OP NUMBER` with an optional duration, written as people write it:

    drift_share > 0.3 for 3 windows      held in the 3 latest monitor runs
    rows < 100 for 30m                   held in every run of the last 30 minutes (at least one)
    drifted_count >= 2                   held in the latest run
    down for 2m                          a health probe failed in every run of the last 2m

FIELD is a number in the monitor run's report (`drift_share`, `drifted_count`, `rows`, or
`feature.<name>.<statistic>`, e.g. `feature.tenure.wasserstein`); OP is one of < <= > >= == !=.
A channel is `log:`, `slack:URL` (posts `{"text": ...}`), `webhook:URL` (posts the alert as JSON,
signed with HMAC-SHA256 when a secret is set) or `email:ADDRESS`.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from loopml.domain.durations import format_duration, parse_duration
from loopml.errors import InvalidInput

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
CHANNEL_KINDS = ("log", "slack", "webhook", "email")
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


@dataclass(frozen=True)
class Channel:
    kind: str
    target: str

    def text(self) -> str:
        return f"{self.kind}:{self.target}"


def parse_channel(text: str) -> Channel:
    kind, sep, target = text.partition(":")
    kind = kind.strip().lower()
    if not sep or kind not in CHANNEL_KINDS:
        raise InvalidInput(
            f"The channel {text!r} is not one loopml can notify.",
            "Use log:, slack:URL, webhook:URL or email:ADDRESS.",
        )
    target = target.strip()
    if kind in ("slack", "webhook") and not re.match(r"^https?://[^\s/]+", target):
        raise InvalidInput(
            f"The {kind} channel needs an http(s) URL, not {target!r}.",
            f"Write {kind}:https://host/path.",
        )
    if kind == "email" and not re.match(r"^[^@\s]+@[^@\s]+$", target):
        raise InvalidInput(f"{target!r} is not an email address.", "Write email:name@example.com.")
    return Channel(kind, target)
