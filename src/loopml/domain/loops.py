"""Retrain policies ("loops"): what triggers retraining, which data the challenger trains on,
and how it must beat the champion. Pure parsing and records; the work is in `loopml.loops`.

    triggers     alert:churn-drift    an alert of that monitor (or of a rule on that deployment)
                 every:7d             a schedule, counted from the end of the last retraining
                 manual               only `loopml loop run NAME --now`
    train data   "reference + labelled predictions of the last 30d"
                 "churn@12 + labelled predictions of the last 7d"

The labelled predictions term is required: its rows are split (by a seeded shuffle) into the
rows the challenger trains on and the fresh holdout both models are scored on, which the
challenger never saw.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from loopml.domain.durations import format_duration, parse_duration
from loopml.domain.refs import NAME_RE, check_name
from loopml.errors import InvalidInput

MODES = ("auto", "approve")

RUN_STATES = ("running", "promoted", "awaiting-approval", "held", "failed")
"""A loop run: still working, promoted its challenger, waiting for a person to promote it, kept
the champion because the challenger did not beat it, or could not finish (the champion stays)."""

WATCH_STATES = ("watching", "kept", "rolled-back", "superseded")


@dataclass(frozen=True)
class Trigger:
    kind: str
    """`alert`, `every` or `manual`."""
    target: str = ""
    """The monitor or deployment whose alerts count (`alert`)."""
    every_s: int = 0

    def text(self) -> str:
        if self.kind == "alert":
            return f"alert:{self.target}"
        if self.kind == "every":
            return f"every:{format_duration(self.every_s)}"
        return "manual"


_TRIGGER_HINT = "Write alert:MONITOR, every:DURATION (every:7d) or manual."


def parse_trigger(text: str) -> Trigger:
    kind, _, rest = text.strip().partition(":")
    kind = kind.strip().lower()
    if kind == "manual" and not rest:
        return Trigger("manual")
    if kind == "alert" and rest.strip():
        return Trigger("alert", check_name(rest.strip(), "monitor or deployment"))
    if kind == "every" and rest.strip():
        return Trigger("every", every_s=parse_duration(rest))
    raise InvalidInput(f"The trigger {text!r} cannot be read.", _TRIGGER_HINT)


@dataclass(frozen=True)
class TrainData:
    """The training data recipe: base tables plus the recent labelled rows."""

    bases: tuple[str, ...]
    """`reference` (the deployment's drift monitor's reference) or `NAME@VERSION` / `NAME`."""
    window_s: int

    def text(self) -> str:
        recent = f"labelled predictions of the last {format_duration(self.window_s)}"
        return " + ".join([*self.bases, recent])


_RECENT = re.compile(r"^labell?ed (?:predictions|rows) of the last (?P<window>.+)$")
_DATA_HINT = (
    'Write terms joined by +: "reference", a dataset version (churn@12) and '
    '"labelled predictions of the last 30d", e.g. "reference + labelled predictions of the '
    'last 30d".'
)


def parse_train_data(text: str) -> TrainData:
    bases: list[str] = []
    windows: list[int] = []
    for term in (part.strip() for part in text.split("+")):
        recent = _RECENT.match(" ".join(term.lower().split()))
        if recent:
            windows.append(parse_duration(recent["window"]))
        elif term == "reference" or _is_dataset_ref(term):
            bases.append(term)
        else:
            raise InvalidInput(f"The training data term {term!r} cannot be read.", _DATA_HINT)
    if len(windows) != 1:
        raise InvalidInput(
            f"The training data {text!r} has {len(windows)} 'labelled predictions' terms; "
            "it needs exactly one.",
            "The recent labelled rows give the challenger new data and both models a fresh "
            "holdout. " + _DATA_HINT,
        )
    return TrainData(tuple(dict.fromkeys(bases)), windows[0])


def _is_dataset_ref(term: str) -> bool:
    name, _, version = term.partition("@")
    return bool(NAME_RE.match(name)) and (not version or version.isdigit() or version == "latest")


@dataclass(frozen=True)
class LoopSpec:
    """A retrain policy as its owner wrote it (validated: every part parses)."""

    project: str
    name: str
    deployment: str
    pipeline: str
    """A pipeline reference, `path/to/file.py:name` or `module:name`."""
    triggers: tuple[str, ...]
    train_data: str
    promote_if: tuple[str, ...]
    guards: tuple[str, ...] = ()
    mode: str = "auto"
    watch_s: int = 3600
    rollback_margin: float = 0.02
    """Roll back when the new champion's metric on the watched traffic falls below the old
    champion's on the same rows by more than this."""
    holdout: float = 0.3
    min_rows: int = 100
    """Fewest labelled recent rows to retrain on (and to judge a watch by)."""
    label: str | None = None
    """The label column; None takes the drift monitor's."""
    data_param: str = "dataset"
    """The pipeline parameter that receives the training dataset version."""
    params: dict[str, Any] = field(default_factory=dict)
    notify: tuple[str, ...] = ("log:",)

    def to_dict(self) -> dict[str, Any]:
        return {
            "deployment": self.deployment,
            "pipeline": self.pipeline,
            "triggers": list(self.triggers),
            "train_data": self.train_data,
            "promote_if": list(self.promote_if),
            "guards": list(self.guards),
            "mode": self.mode,
            "watch_s": self.watch_s,
            "rollback_margin": self.rollback_margin,
            "holdout": self.holdout,
            "min_rows": self.min_rows,
            "label": self.label,
            "data_param": self.data_param,
            "params": self.params,
            "notify": list(self.notify),
        }

    @classmethod
    def from_dict(cls, project: str, name: str, data: dict[str, Any]) -> LoopSpec:
        return cls(
            project,
            name,
            data["deployment"],
            data["pipeline"],
            tuple(data["triggers"]),
            data["train_data"],
            tuple(data["promote_if"]),
            tuple(data.get("guards", ())),
            data.get("mode", "auto"),
            int(data.get("watch_s", 3600)),
            float(data.get("rollback_margin", 0.02)),
            float(data.get("holdout", 0.3)),
            int(data.get("min_rows", 100)),
            data.get("label"),
            data.get("data_param", "dataset"),
            dict(data.get("params", {})),
            tuple(data.get("notify", ("log:",))),
        )

    @property
    def parsed_triggers(self) -> list[Trigger]:
        return [parse_trigger(text) for text in self.triggers]

    @property
    def data(self) -> TrainData:
        return parse_train_data(self.train_data)

    @property
    def watch_metric(self) -> str:
        """The metric a watch compares: the first the promotion rule names."""
        return self.promote_if[0].strip().split()[0]


def check_spec(spec: LoopSpec) -> LoopSpec:
    """`spec` if every part of it is well formed, else InvalidInput naming the part."""
    check_name(spec.name, "loop")
    check_name(spec.deployment, "deployment")
    if ":" not in spec.pipeline:
        raise InvalidInput(
            f"The pipeline {spec.pipeline!r} names no pipeline function.",
            "Write path/to/file.py:function or module:function.",
        )
    if not spec.triggers:
        raise InvalidInput("The loop has no trigger.", _TRIGGER_HINT)
    for text in spec.triggers:
        parse_trigger(text)
    parse_train_data(spec.train_data)
    if not spec.promote_if:
        raise InvalidInput(
            "The loop has no promotion rule.",
            'Give one, such as --promote-if "f1 >= champion.f1 + 0.005".',
        )
    if spec.mode not in MODES:
        raise InvalidInput(f"Unknown mode {spec.mode!r}.", f"Use one of: {', '.join(MODES)}.")
    if not 0.05 <= spec.holdout <= 0.8:
        raise InvalidInput(
            f"The holdout share {spec.holdout} is outside 0.05..0.8.",
            "Keep between 5% and 80% of the recent labelled rows for scoring, e.g. 0.3.",
        )
    if spec.min_rows < 10:
        raise InvalidInput(f"--min-rows {spec.min_rows} is below 10.", "Give 10 or more.")
    if spec.rollback_margin < 0:
        raise InvalidInput(
            f"The rollback margin {spec.rollback_margin} is negative.", "Give 0 or more."
        )
    return spec


@dataclass(frozen=True)
class LoopState:
    """What a loop remembers between runs."""

    alerts_seen_us: int = 0
    """Alerts opened (or reopened) before this time have already been answered."""
    last_retrain_us: int = 0
    """When a retraining last started (the `every:` schedule counts from here)."""

    def to_dict(self) -> dict[str, int]:
        return {"alerts_seen_us": self.alerts_seen_us, "last_retrain_us": self.last_retrain_us}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoopState:
        return cls(int(data.get("alerts_seen_us", 0)), int(data.get("last_retrain_us", 0)))


@dataclass(frozen=True)
class Loop:
    spec: LoopSpec
    state: LoopState
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class LoopRun:
    """One retraining: why it started, what it trained on, how the two models scored on the
    same fresh holdout, what was decided and why; then, after a promotion, the watch."""

    id: int
    project: str
    loop: str
    started_at: datetime
    finished_at: datetime | None
    trigger: str
    status: str
    reason: str = ""
    champion: int | None = None
    challenger: int | None = None
    train_data: str | None = None
    holdout_data: str | None = None
    pipeline_run: str | None = None
    scores: dict[str, dict[str, float]] = field(default_factory=dict)
    """`champion` and `challenger` metrics on the holdout."""
    rules: tuple[tuple[str, bool, str], ...] = ()
    watch: dict[str, Any] = field(default_factory=dict)
    """After a promotion: `state` (WATCH_STATES), `until_us`, `since_us`, and at the end the
    scores on the watched traffic and why it was kept or rolled back."""

    def details(self) -> dict[str, Any]:
        return {
            "reason": self.reason,
            "champion": self.champion,
            "challenger": self.challenger,
            "train_data": self.train_data,
            "holdout_data": self.holdout_data,
            "pipeline_run": self.pipeline_run,
            "scores": self.scores,
            "rules": [list(rule) for rule in self.rules],
            "watch": self.watch,
        }

    @staticmethod
    def fields_from(details: dict[str, Any]) -> dict[str, Any]:
        return {
            **{key: details.get(key) for key in ("champion", "challenger", "pipeline_run")},
            "reason": details.get("reason", ""),
            "train_data": details.get("train_data"),
            "holdout_data": details.get("holdout_data"),
            "scores": details.get("scores") or {},
            "rules": tuple(tuple(rule) for rule in details.get("rules") or ()),
            "watch": details.get("watch") or {},
        }
