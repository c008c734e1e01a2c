"""Retrain triggers, as people write them: what makes a loop retrain.

alert:churn-drift    an alert of that monitor (or of a rule on that deployment)
every:7d             a schedule, counted from the end of the last retraining
labels:500           every 500 new labelled rows since the last retraining
performance          the champion's realized metric (the first rule's) below its own
                     baseline by 0.02, with the loop's confidence
performance:f1-0.05  the same for f1, by 0.05
estimate             the drift monitor's label-free accuracy estimate (from logged
                     probabilities) surely below the champion's registered accuracy by 0.02
manual               only `loopml loop run NAME --now`
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

from loopml.domain.durations import format_duration, parse_duration
from loopml.domain.refs import check_name
from loopml.errors import InvalidInput

SERVED_METRICS = ("accuracy", "precision", "recall", "f1", "mae", "rmse", "r2")
"""The metrics a performance trigger can measure on served predictions and labels."""
DEFAULT_DROP = 0.02
"""How far below its baseline a champion's metric must be for a `performance` trigger."""


@dataclass(frozen=True)
class Trigger:
    kind: str
    """`alert`, `every`, `performance` or `manual`."""
    target: str = ""
    """The monitor or deployment whose alerts count (`alert`); the metric (`performance`,
    empty: the first promotion rule's)."""
    every_s: int = 0
    margin: float = DEFAULT_DROP
    """How far below its baseline the metric must be (`performance`)."""
    rows: int = 0
    """New labelled rows that make a retraining due (`labels`)."""

    def text(self) -> str:
        if self.kind == "alert":
            return f"alert:{self.target}"
        if self.kind == "every":
            return f"every:{format_duration(self.every_s)}"
        if self.kind == "labels":
            return f"labels:{self.rows}"
        if self.kind == "estimate":
            return "estimate" if self.margin == DEFAULT_DROP else f"estimate:{self.margin:g}"
        if self.kind == "performance":
            metric = f"{self.target}-{self.margin:g}" if self.target else ""
            return f"performance:{metric}" if metric else "performance"
        return "manual"


TRIGGER_HINT = (
    "Write alert:MONITOR, every:DURATION (every:7d), labels:ROWS (labels:500, every 500 new "
    "labelled rows), performance, performance:METRIC-MARGIN (performance:accuracy-0.02), "
    "estimate[:MARGIN] (the label-free accuracy estimate) or manual."
)
_PERFORMANCE = re.compile(r"^(?P<metric>[a-z_0-9]+)(?:\s*-\s*(?P<margin>\d+(?:\.\d*)?|\.\d+))?$")


def parse_trigger(text: str) -> Trigger:
    kind, _, rest = text.strip().partition(":")
    read = _TRIGGERS.get(kind.strip().lower())
    found = read(rest.strip()) if read is not None else None
    if found is None:
        raise InvalidInput(f"The trigger {text!r} cannot be read.", TRIGGER_HINT)
    return found


def _manual(rest: str) -> Trigger | None:
    return None if rest else Trigger("manual")


def _alert(rest: str) -> Trigger | None:
    return Trigger("alert", check_name(rest, "monitor or deployment")) if rest else None


def _every(rest: str) -> Trigger | None:
    return Trigger("every", every_s=parse_duration(rest)) if rest else None


def _labels(rest: str) -> Trigger | None:
    return Trigger("labels", rows=int(rest)) if rest.isdigit() and int(rest) > 0 else None


def _performance(rest: str) -> Trigger | None:
    if not rest:
        return Trigger("performance")
    found = _PERFORMANCE.match(rest.lower())
    if found is None:
        return None
    margin = float(found["margin"]) if found["margin"] else DEFAULT_DROP
    return Trigger("performance", found["metric"], margin=margin)


def _estimate(rest: str) -> Trigger | None:
    if not rest:
        return Trigger("estimate")
    with contextlib.suppress(ValueError):
        margin = float(rest)
        if margin >= 0 and math.isfinite(margin):
            return Trigger("estimate", margin=margin)
    return None


_TRIGGERS: dict[str, Callable[[str], Trigger | None]] = {
    "manual": _manual,
    "alert": _alert,
    "every": _every,
    "labels": _labels,
    "performance": _performance,
    "estimate": _estimate,
}
"""How each kind of trigger reads what follows its colon (None: it cannot)."""


def check_trigger(text: str) -> Trigger:
    """The trigger `text` says, refused (InvalidInput) when it cannot be read or measures a
    metric served predictions do not give."""
    trigger = parse_trigger(text)
    if trigger.kind == "performance" and trigger.target not in ("", *SERVED_METRICS):
        raise InvalidInput(
            f"The trigger {text!r} names {trigger.target!r}, which served predictions do not give.",
            f"Use one of: {', '.join(SERVED_METRICS)}.",
        )
    return trigger
