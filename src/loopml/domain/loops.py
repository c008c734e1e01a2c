"""Retrain policies ("loops"): the policy as its owner wrote it (`LoopSpec`, checked part by
part), what a loop remembers between runs, the lease one retraining holds, and the record of
each retraining (`LoopRun`). Pure records; the work is in `loopml.loops`.

What triggers retraining is read in `loopml.domain.loop_triggers`; which data the challenger
trains on, in `loopml.domain.train_data`; how it must beat the champion, in
`loopml.domain.gate_rules` and `loopml.domain.loop_decisions`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from loopml.domain.confidence import check_confidence, check_horizon
from loopml.domain.loop_triggers import TRIGGER_HINT, Trigger, check_trigger, parse_trigger
from loopml.domain.refs import check_name
from loopml.domain.train_data import TrainData, parse_train_data
from loopml.errors import InvalidInput, NotFound

MODES = ("auto", "approve")
HOLDOUT_MODES = ("time", "random")


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
    confidence: float = 0.9
    """How sure a promotion rule, a performance trigger and a rollback must be."""
    holdout_mode: str = "time"
    refit: bool = False
    """After a challenger wins, retrain it on its training plus holdout rows before promotion."""
    retry_rows: int = 500
    """New labelled rows after which a trigger still true retrains again."""
    max_wait_rows: int = 5_000
    """An undecided challenger waits for labelled rows until its holdout holds this many."""
    weight_column: str = "sample_weight"
    """The column a recency-weighted recipe hands the pipeline."""
    checks: tuple[str, ...] = ()
    """Data checks of the holdout, as `loopml gate --check` takes them."""
    reference_pin: str | None = None
    """The dataset version `reference` meant when the loop was made: the recipe keeps it even
    after the drift monitor's reference has followed a new champion's training data."""
    horizon: int | None = None
    """Judge a promotion rule over the next this many served rows (a prediction interval):
    promote only a challenger that would serve better over them with `confidence`."""
    holdout_rows: int | None = None
    """Hold out no more than this many rows (the newest, in time mode) when a challenger is
    trained: the rest train it. A waiting challenger's holdout still grows past it."""

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
            "confidence": self.confidence,
            "holdout_mode": self.holdout_mode,
            "refit": self.refit,
            "retry_rows": self.retry_rows,
            "max_wait_rows": self.max_wait_rows,
            "weight_column": self.weight_column,
            "checks": list(self.checks),
            "reference_pin": self.reference_pin,
            "horizon": self.horizon,
            "holdout_rows": self.holdout_rows,
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
            float(data.get("confidence", 0.9)),
            str(data.get("holdout_mode", "time")),
            bool(data.get("refit", False)),
            int(data.get("retry_rows", 500)),
            int(data.get("max_wait_rows", 5_000)),
            str(data.get("weight_column", "sample_weight")),
            tuple(data.get("checks", ())),
            data.get("reference_pin"),
            None if data.get("horizon") is None else int(data["horizon"]),
            None if data.get("holdout_rows") is None else int(data["holdout_rows"]),
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
        raise InvalidInput("The loop has no trigger.", TRIGGER_HINT)
    for text in spec.triggers:
        check_trigger(text)
    parse_train_data(spec.train_data)
    if not spec.promote_if:
        raise InvalidInput(
            "The loop has no promotion rule.",
            'Give one, such as --promote-if "f1 >= champion.f1 + 0.005".',
        )
    if spec.mode not in MODES:
        raise InvalidInput(f"Unknown mode {spec.mode!r}.", f"Use one of: {', '.join(MODES)}.")
    _check_numbers(spec)
    return spec


def _check_numbers(spec: LoopSpec) -> None:
    if not 0.05 <= spec.holdout <= 0.8:
        raise InvalidInput(
            f"The holdout share {spec.holdout} is outside 0.05..0.8.",
            "Keep between 5% and 80% of the recent labelled rows for scoring, e.g. 0.3.",
        )
    if spec.holdout_rows is not None and spec.holdout_rows < 10:
        raise InvalidInput(
            f"--holdout-rows {spec.holdout_rows} is below 10.",
            "Hold out 10 rows or more (e.g. 500), or leave it out to hold out the whole share.",
        )
    if spec.min_rows < 10:
        raise InvalidInput(f"--min-rows {spec.min_rows} is below 10.", "Give 10 or more.")
    if spec.holdout_mode not in HOLDOUT_MODES:
        raise InvalidInput(
            f"Unknown holdout {spec.holdout_mode!r}.",
            "Use time (the newest labelled rows, the default) or random.",
        )
    check_confidence(spec.confidence)
    check_horizon(spec.horizon)
    if spec.retry_rows < 1 or spec.max_wait_rows < 1:
        raise InvalidInput(
            f"--retry-rows {spec.retry_rows} and --max-wait-rows {spec.max_wait_rows} must be "
            "at least 1.",
            "Give row counts such as --retry-rows 500.",
        )
    if spec.rollback_margin < 0:
        raise InvalidInput(
            f"The rollback margin {spec.rollback_margin} is negative.", "Give 0 or more."
        )


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


LOOP_LEASE = "loop:"


def loop_lease(project: str, name: str) -> str:
    """The name of the lease one retraining of loop `name` holds while it runs."""
    return f"{LOOP_LEASE}{project}/{name}"


def loop_of_lease(lease: str) -> tuple[str, str]:
    """(project, loop) of a loop's lease name; InvalidInput for any other lease."""
    project, _, name = lease.removeprefix(LOOP_LEASE).partition("/")
    if not lease.startswith(LOOP_LEASE) or not project or not name:
        raise InvalidInput(
            f"{lease!r} is not a loop's lease.", "Name it with loopml.domain.loops.loop_lease."
        )
    return project, name


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
    """After a promotion: `state` (a `WatchState`), `until_us`, `since_us`, and at the end the
    scores on the watched traffic and why it was kept or rolled back."""
    data_until_us: int | None = None
    """When the training data and holdout were read (by the rows' time): labelled rows after
    it are new to the challenger (a waiting challenger's holdout grows by them)."""
    refit: int | None = None
    """The version retrained on training plus holdout rows after the challenger won."""
    refit_data: str | None = None
    """The dataset version the refit trained on."""

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
            "data_until_us": self.data_until_us,
            "refit": self.refit,
            "refit_data": self.refit_data,
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
            "data_until_us": details.get("data_until_us"),
            "refit": details.get("refit"),
            "refit_data": details.get("refit_data"),
        }


def missing_loop(project: str, name: str) -> NotFound:
    return NotFound(
        f"Loop {name!r} does not exist in project {project!r}.",
        "List loops with `loopml loop list`, or make one with `loopml loop create`.",
    )


def missing_loop_run(project: str, run_id: int) -> NotFound:
    return NotFound(
        f"Loop run {run_id} does not exist in project {project!r}.",
        "List runs with `loopml loop history LOOP`.",
    )


def run_json(run: LoopRun) -> dict[str, Any]:
    """A loop run as the commands and the API print it."""
    return {
        "id": run.id,
        "loop": run.loop,
        "started_at": run.started_at.isoformat(),
        "finished_at": None if run.finished_at is None else run.finished_at.isoformat(),
        "trigger": run.trigger,
        "status": run.status,
        **run.details(),
    }
