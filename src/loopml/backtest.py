"""`loopml loop backtest`: a retrain policy tried on history before it touches production.

    result = backtest("pipeline.py:churn", reference="churn@1", data="history@1",
                      time_column="event_time", label="churned", window=500)
    result.summary["recovery"]

The first champion is trained on the reference. The data, ordered by its time column, is then
replayed window by window: the champion serves a window, its labels arrive, and the loop runs
at the window's end with the same decisions as the live loop (`loopml.domain.loop_decisions`),
the same pipeline and the same gate, in a scratch workspace that is thrown away after (nothing
is saved in the user's). Two yardsticks serve every window beside it: the static first model,
and an oracle that refits on all labelled data before every window.

    recovery             (policy - static) / (oracle - static), of the mean window metric
                         weighted by the windows' rows (for accuracy: over all replayed rows);
                         None when the oracle is not ahead of the static model
    recovery_low/_high   its 90% interval from a bootstrap over windows (None when the
                         oracle's gain is within the windows' noise: `loopml.domain.recovery`)
    needless promotion   one after which the new champion served worse over the next two
                         windows than the old one would have
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from loopml.bootstrap import Workspace, default_workspace, open_workspace
from loopml.domain.durations import parse_duration
from loopml.domain.loop_decisions import (
    PromotionFacts,
    RunState,
    TriggerFacts,
    TriggerPolicy,
    WatchFacts,
    WatchState,
    decide_promotion,
    decide_trigger,
    judge_watch,
    performance_drop,
    split_rows,
    training_weights,
    watch_rule,
)
from loopml.domain.loops import LoopSpec, Trigger, check_spec
from loopml.errors import InvalidInput
from loopml.loops import LOWER_IS_BETTER, rule_results

Say = Callable[[str], None]


@dataclass(frozen=True)
class Policy:
    """The recommended default policy: the one a backtest without policy flags tries."""

    triggers: tuple[str, ...] = ("performance", "labels:1500")
    train_data: str = "reference + all labelled predictions"
    promote_if: tuple[str, ...] = ("accuracy >= champion.accuracy",)
    confidence: float = 0.9
    holdout: float = 0.3
    holdout_mode: str = "time"
    refit: bool = True
    max_wait_rows: int = 2_000
    horizon: int | None = 1_000
    holdout_rows: int | None = 500


RECOMMENDED = Policy()
RECOVERY_CONFIDENCE = 0.9
"""The level of the recovery's interval (a bootstrap over windows)."""
MIN_HOLDOUT = 10
"""Fewest holdout rows a window must hold."""


@dataclass
class WindowResult:
    index: int
    start: str
    end: str
    rows: int
    policy: float
    static: float
    oracle: float
    champion: int
    decisions: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "window": self.index,
            "start": self.start,
            "end": self.end,
            "rows": self.rows,
            "policy": self.policy,
            "static": self.static,
            "oracle": self.oracle,
            "champion": self.champion,
            "events": self.events,
            "decisions": self.decisions,
        }


@dataclass
class BacktestResult:
    metric: str
    policy: dict[str, Any]
    windows: list[WindowResult]
    summary: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "policy": self.policy,
            "summary": self.summary,
            "windows": [w.to_json() for w in self.windows],
        }


def backtest(
    pipeline: str,
    *,
    reference: str,
    data: str,
    time_column: str,
    label: str,
    window: int = 500,
    triggers: Sequence[str] | None = None,
    train_data: str | None = None,
    promote_if: Sequence[str] | None = None,
    guards: Sequence[str] = (),
    confidence: float | None = None,
    holdout: float | None = None,
    holdout_mode: str | None = None,
    refit: bool | None = None,
    watch: str | None = None,
    rollback_margin: float = 0.02,
    min_rows: int = 100,
    retry_rows: int | None = None,
    max_wait_rows: int | None = None,
    checks: Sequence[str] = (),
    horizon: int | None = None,
    holdout_rows: int | None = None,
    data_param: str = "dataset",
    params: dict[str, Any] | None = None,
    weight_column: str = "sample_weight",
    project: str | None = None,
    workspace: Workspace | None = None,
    say: Say | None = None,
) -> BacktestResult:
    """Replay `data` (a dataset version, ordered by `time_column`) through a retrain policy,
    `window` rows at a time; policy settings left None take the recommended policy's (a
    `horizon` of 0 judges the rules on the holdout's difference alone)."""
    from loopml.monitoring.monitors import read_dataset
    from loopml.steps import load_pipeline

    ws = workspace or default_workspace()
    project = project or ws.project
    found = load_pipeline(pipeline, ws.settings.pipeline_roots)
    if data_param not in found.signature.parameters:
        raise InvalidInput(
            f"Pipeline {pipeline} takes no parameter {data_param!r} to receive the training "
            f"data (it takes: {', '.join(found.signature.parameters) or 'none'}).",
            "Name the parameter that takes a dataset version with --data-param.",
        )
    spec = check_spec(
        LoopSpec(
            project,
            "backtest",
            "backtest",
            pipeline,
            tuple(triggers or RECOMMENDED.triggers),
            train_data or RECOMMENDED.train_data,
            tuple(promote_if or RECOMMENDED.promote_if),
            tuple(guards),
            "auto",
            parse_duration(watch) if watch else 0,
            rollback_margin,
            RECOMMENDED.holdout if holdout is None else holdout,
            min_rows,
            label,
            data_param,
            dict(params or {}),
            ("log:",),
            RECOMMENDED.confidence if confidence is None else confidence,
            holdout_mode or RECOMMENDED.holdout_mode,
            RECOMMENDED.refit if refit is None else refit,
            retry_rows or window,
            max_wait_rows or RECOMMENDED.max_wait_rows,
            weight_column,
            tuple(checks),
            horizon=RECOMMENDED.horizon if horizon is None else (horizon or None),
            holdout_rows=(
                RECOMMENDED.holdout_rows if holdout_rows is None else (holdout_rows or None)
            ),
        )
    )
    from loopml.domain.data_checks import parse_checks

    parse_checks(spec.checks)  # a bad check is refused before anything runs
    for trigger in spec.parsed_triggers:
        if trigger.kind in ("alert", "estimate"):
            raise InvalidInput(
                f"The trigger {trigger.text()} needs the live monitors; a backtest replays "
                "performance, labels:, every: and manual triggers.",
                "Try the policy with --trigger performance or --trigger every:7d.",
            )
    if window < 2 * MIN_HOLDOUT or round(window * spec.holdout) < MIN_HOLDOUT:
        raise InvalidInput(
            f"Windows of {window} rows are too small to hold a holdout of {spec.holdout:g}: "
            f"at least {MIN_HOLDOUT} holdout rows are needed.",
            "Give a larger --window (e.g. 500) or a larger --holdout.",
        )
    ref_version = ws.data.resolve(reference, project, record=False)
    data_version = ws.data.resolve(data, project, record=False)
    base = read_dataset(ws, ref_version).to_pandas()
    table = read_dataset(ws, data_version).to_pandas()
    extra_bases = [
        read_dataset(ws, ws.data.resolve(b, project, record=False)).to_pandas()
        for b in spec.data.bases
        if b != "reference"
    ]
    replay = _Replay.prepare(
        spec,
        reference=base,
        extra_bases=extra_bases,
        table=table,
        time_column=time_column,
        window=window,
    )
    tell = say or (lambda _text: None)
    # a straggling write into the scratch folder must not hide the error that ended the replay
    with tempfile.TemporaryDirectory(
        prefix="loopml-backtest-", ignore_cleanup_errors=True
    ) as scratch:
        from loopml.settings import Settings

        sandbox = open_workspace(Settings.from_env({"LOOPML_HOME": scratch}))
        try:
            trainer = _Trainer(sandbox, found, spec, Path(scratch), ref_version.name)
            return replay.run(trainer, tell)
        finally:
            sandbox.close()


# -- the data, in windows ---------------------------------------------------------------------


def _times_us(values: Any, column: str) -> np.ndarray:
    import pandas as pd

    if pd.api.types.is_datetime64_any_dtype(values):
        since = pd.to_datetime(values, utc=True) - pd.Timestamp(0, tz="UTC")
        return np.asarray(since // pd.Timedelta(microseconds=1), dtype=np.int64)
    if pd.api.types.is_numeric_dtype(values):
        return np.asarray(np.asarray(values, dtype=float) * 1_000_000, dtype=np.int64)
    try:
        parsed = pd.to_datetime(values, utc=True)
    except (ValueError, TypeError):
        raise InvalidInput(
            f"The time column {column!r} holds neither times nor numbers.",
            "Give a column of timestamps (or seconds since 1970).",
        ) from None
    return _times_us(parsed, column)


@dataclass
class _Model:
    version: int
    loaded: Any
    inputs: list[str]
    metrics: dict[str, float]

    def predict(self, frame: Any) -> np.ndarray:
        features = frame[self.inputs] if self.inputs else frame
        return np.asarray(self.loaded.predict(features))


class _Trainer:
    """Runs the pipeline in the scratch workspace on a training table: the model it registered."""

    def __init__(self, ws: Workspace, pipeline: Any, spec: LoopSpec, folder: Path, name: str):
        self.ws, self.pipeline, self.spec, self.folder = ws, pipeline, spec, folder
        self.name = name
        self.model_name: str | None = None
        self._models: dict[int, _Model] = {}
        self._trained: dict[int, int] = {}
        """Model version by training dataset version: the same rows train the same model."""
        self.runs = 0

    def train(self, frame: Any) -> _Model:
        from loopml.pipelines import run_pipeline

        path = self.folder / "train.parquet"
        frame.to_parquet(path, index=False)
        version = self.ws.data.add(path, name=self.name, project=self.spec.project).version
        if version.version in self._trained:
            return self.model(self._trained[version.version])
        params = {**self.spec.params, self.spec.data_param: f"{self.name}@{version.version}"}
        result = run_pipeline(self.pipeline, params, workspace=self.ws, project=self.spec.project)
        self.runs += 1
        if not result.ok:
            failed = [f"{s.name}: {s.error}" for s in result.steps.values() if s.error]
            raise _TrainingFailed("; ".join(failed) or str(result.run.status))
        step_runs = {s.run_id for s in result.steps.values() if s.run_id}
        made = [
            v
            for m in self.ws.registry.models(self.spec.project)
            for v in self.ws.registry.versions(m.name, self.spec.project)
            if v.run_id in step_runs
        ]
        if not made:
            raise _TrainingFailed(f"pipeline run {result.run.id} registered no model")
        newest = max(made, key=lambda v: v.version)
        self.model_name = newest.name
        self._trained[version.version] = newest.version
        return self.model(newest.version)

    def model(self, version: int) -> _Model:
        if version not in self._models:
            assert self.model_name is not None
            found = self.ws.registry.resolve(f"{self.model_name}/{version}", self.spec.project)
            loaded = self.ws.registry.load(found.ref, project=self.spec.project)
            inputs = [c["name"] for c in found.signature.get("inputs", [])]
            self._models[version] = _Model(version, loaded, inputs, dict(found.metrics))
        return self._models[version]

    def gate(self, candidate: int, champion: int, holdout: Any) -> Any:
        from loopml.domain.data_checks import parse_checks
        from loopml.monitoring.gate import gate

        path = self.folder / "holdout.parquet"
        holdout.to_parquet(path, index=False)
        held = self.ws.data.add(path, name=f"{self.name}-holdout", project=self.spec.project)
        assert self.model_name is not None
        return gate(
            self.ws,
            model=self.model_name,
            candidate=str(candidate),
            against=str(champion),
            data=f"{held.version.name}@{held.version.version}",
            rules=[*self.spec.promote_if, *self.spec.guards],
            label=self.spec.label,
            project=self.spec.project,
            confidence=self.spec.confidence,
            checks=parse_checks(self.spec.checks),
            horizon=self.spec.horizon,
            load=lambda ref: self.model(int(ref.rsplit("/", 1)[1])).loaded,
        )


class _TrainingFailed(Exception):
    pass


@dataclass
class _Waiting:
    model: _Model
    holdout: np.ndarray
    """Positions of its holdout rows in the replayed table."""
    trained_through: int
    """The last window its training data reached."""
    training: np.ndarray


@dataclass
class _Watch:
    new: _Model
    old: _Model
    since: int
    """The first window the new champion served."""
    until_us: int


@dataclass
class _Replay:
    spec: LoopSpec
    bases: Any
    """Base rows (the reference and any named dataset), in the columns the pipeline trains on."""
    table: Any
    """The replayed rows in time order, in the same columns."""
    times: np.ndarray
    bounds: list[tuple[int, int]]
    columns: list[str]
    metric: str
    # the loop's state
    champion: _Model | None = None
    champion_since: int = 0
    watch: _Watch | None = None
    waiting: _Waiting | None = None
    last_retrain_us: int = 0
    last_retrain_window: int = -1
    retrained: bool = False
    promotions: list[tuple[int, _Model, _Model]] = field(default_factory=list)
    oracle_updates: list[tuple[int, _Model, _Model]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    _seen: dict[int, int] = field(default_factory=dict)
    """The last row position each model version trained on (-1: the bases only)."""
    _predictions: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)

    @classmethod
    def prepare(
        cls,
        spec: LoopSpec,
        *,
        reference: Any,
        extra_bases: list[Any],
        table: Any,
        time_column: str,
        window: int,
    ) -> _Replay:
        import pandas as pd

        label = spec.label or ""
        for name, frame in (("data", table), ("reference", reference)):
            if label not in frame.columns:
                raise InvalidInput(
                    f"The {name} has no label column {label!r} (it has: "
                    f"{', '.join(map(str, frame.columns))}).",
                    "Name the label column with --label.",
                )
        if time_column not in table.columns:
            raise InvalidInput(
                f"The data has no time column {time_column!r}.",
                "Name the column that says when each row happened with --time-column.",
            )
        columns = [c for c in reference.columns if c != time_column]
        missing = [c for c in columns if c not in table.columns]
        if missing:
            raise InvalidInput(
                f"The data lacks the reference's columns {missing}.",
                "The reference and the replayed data must have the same columns.",
            )
        if spec.data.weighted and spec.weight_column in table.columns:
            raise InvalidInput(
                f"The weight column {spec.weight_column!r} is already a column of the data.",
                "Name another with --weight-column.",
            )
        times = _times_us(table[time_column], time_column)
        order = np.argsort(times, kind="stable")
        ordered = table.iloc[order].reset_index(drop=True)[columns]
        times = times[order]
        n = len(ordered)
        bounds = [(start, min(start + window, n)) for start in range(0, n, window)]
        if len(bounds) and bounds[-1][1] - bounds[-1][0] < MIN_HOLDOUT:
            bounds = bounds[:-1]
        if len(bounds) < 2:
            raise InvalidInput(
                f"The data's {n} rows make {len(bounds)} window(s) of {window}; a backtest "
                "needs at least 2.",
                "Give a smaller --window, or more data.",
            )
        bases = pd.concat([reference[columns], *(b[columns] for b in extra_bases)])
        metric = spec.watch_metric
        return cls(spec, bases.reset_index(drop=True), ordered, times, bounds, columns, metric)

    # -- measuring ----------------------------------------------------------------------------

    def _rows(self, first: int, last: int) -> np.ndarray:
        """Positions of the rows of windows first..last (inclusive)."""
        if last < first:
            return np.empty(0, dtype=np.int64)
        return np.arange(self.bounds[first][0], self.bounds[last][1])

    def _predicted(self, model: _Model, w: int) -> np.ndarray:
        key = (model.version, w)
        if key not in self._predictions:
            start, end = self.bounds[w]
            self._predictions[key] = model.predict(self.table.iloc[start:end])
        return self._predictions[key]

    def _predicted_rows(self, model: _Model, first: int, last: int) -> np.ndarray:
        parts = [self._predicted(model, w) for w in range(first, last + 1)]
        return np.asarray(np.concatenate(parts)) if parts else np.empty(0)

    def _truth(self, first: int, last: int) -> np.ndarray:
        return np.asarray(self.table[self.spec.label].iloc[self._rows(first, last)])

    def _score(self, predicted: np.ndarray, truth: np.ndarray) -> float:
        from loopml.domain.weighted_metrics import EncodedRows

        rows = EncodedRows.encode(truth, {"m": predicted}, {"m": None}, {self.metric})
        return float(rows.value(self.metric, "m", np.ones((1, len(truth))))[0])

    def _paired(self, new: np.ndarray, old: np.ndarray, truth: np.ndarray, **rule: Any) -> Any:
        from loopml.domain.paired import PairedRows, decide

        return decide(
            PairedRows(truth, new, old),
            metric=self.metric,
            confidence=self.spec.confidence,
            **rule,
        )

    # -- the replay ---------------------------------------------------------------------------

    def run(self, trainer: _Trainer, tell: Say) -> BacktestResult:
        try:
            static = trainer.train(self._training(self.bases, np.empty(0, dtype=np.int64)))
        except _TrainingFailed as exc:
            raise InvalidInput(
                f"The first champion could not be trained on the reference: {exc}",
                "Run the pipeline on the reference (`loopml pipeline run`) and fix it first.",
            ) from None
        self.champion = static
        self.last_retrain_us = int(self.times[0])
        if self.spec.watch_s == 0:  # the span of two windows
            spans = [self.times[e - 1] - self.times[s] for s, e in self.bounds]
            self.spec = _with_watch(self.spec, max(1, int(2 * np.median(spans) / 1e6)))
        results = []
        oracle = static
        for w, (start, end) in enumerate(self.bounds):
            truth = self._truth(w, w)
            if w > 0:
                try:
                    before, oracle = (
                        oracle,
                        trainer.train(self._training(self.bases, self._rows(0, w - 1))),
                    )
                    if oracle.version != before.version:  # the pipeline's cache: no update
                        self.oracle_updates.append((w - 1, oracle, before))
                except _TrainingFailed as exc:
                    tell(f"window {w}: the oracle failed to train ({exc}); it keeps its model")
            assert self.champion is not None
            result = WindowResult(
                w,
                _iso(self.times[start]),
                _iso(self.times[end - 1]),
                end - start,
                self._score(self._predicted(self.champion, w), truth),
                self._score(self._predicted(static, w), truth),
                self._score(self._predicted(oracle, w), truth),
                self.champion.version,
            )
            self._after_window(trainer, w, result)
            results.append(result)
            tell(
                f"window {w + 1}/{len(self.bounds)}: policy {result.policy:.3f} static "
                f"{result.static:.3f} oracle {result.oracle:.3f}"
                + (f"; {'; '.join(result.events)}" if result.events else "")
            )
        return BacktestResult(
            self.metric, self.spec.to_dict(), results, self._summary(results, trainer)
        )

    def _training(self, bases: Any, positions: np.ndarray) -> Any:
        import pandas as pd

        rows = self.table.iloc[positions]
        frame = pd.concat([bases, rows], ignore_index=True)
        recipe = self.spec.data
        if recipe.weighted:
            times = self.times[positions]
            frame[self.spec.weight_column] = training_weights(
                times,
                bases=len(bases),
                now_us=int(times.max()) if len(times) else int(self.times[0]),
                half_life_s=recipe.half_life_s,
                half_life_rows=recipe.half_life_rows,
            )
        return frame

    def _labelled(self, w: int) -> np.ndarray:
        """Positions of the labelled rows the recipe takes at the end of window `w`."""
        rows = self._rows(0, w)
        window_s = self.spec.data.window_s
        if window_s is None:
            return rows
        now = int(self.times[self.bounds[w][1] - 1])
        return np.asarray(rows[self.times[rows] >= now - window_s * 1_000_000])

    def _after_window(self, trainer: _Trainer, w: int, result: WindowResult) -> None:
        """The loop's run at the end of window `w`, whose labels have just arrived."""
        now = int(self.times[self.bounds[w][1] - 1])
        self._judge_watch(w, now, result)
        if self.waiting is not None:
            self._decide_waiting(trainer, w, now, result)
            if self.waiting is None and result.events:
                return  # one decision per run: the next run may retrain
        facts = self._trigger_facts(w, now)
        decision = decide_trigger(facts, TriggerPolicy(self.spec.min_rows, self.spec.retry_rows))
        if decision.trigger is None:
            if decision.reason != "no trigger fired":
                result.decisions.append(decision.reason)
            return
        result.decisions.append(f"retrain: {decision.trigger}")
        if self.waiting is not None:
            version = self.waiting.model.version
            result.decisions.append(f"challenger {version}: held: superseded by a retraining")
            self.waiting = None
        self._retrain(trainer, w, now, result)

    def _trigger_facts(self, w: int, now: int) -> TriggerFacts:
        labelled = self._labelled(w)
        new_rows = len(self._rows(self.last_retrain_window + 1, w))
        due = None
        performance = None
        for trigger in self.spec.parsed_triggers:
            if trigger.kind == "every" and now - self.last_retrain_us >= trigger.every_s * 1e6:
                due = due or trigger.text()
            if trigger.kind == "labels" and new_rows >= trigger.rows:
                due = due or f"{trigger.text()} ({new_rows:,} new labelled rows)"
            if trigger.kind == "performance" and performance is None:
                performance = self._performance(trigger, w)
        return TriggerFacts(
            schedule_due=due,
            performance=performance,
            labelled_rows=len(labelled),
            new_labelled_rows=new_rows,
            retrained_before=self.retrained,
            waiting=None if self.waiting is None else f"challenger {self.waiting.model.version}",
        )

    def _performance(self, trigger: Trigger, w: int) -> str | None:
        """The trigger's text when the champion's metric on its newest labelled rows (at most
        `retry_rows`) is surely worse than on the first ones it served."""
        assert self.champion is not None
        first = max(self.champion_since, 0)
        if first > w:
            return None
        truth = self._truth(first, w)
        served = self._predicted_rows(self.champion, first, w)
        count = min(self.spec.retry_rows, len(truth) // 2)
        if count < self.spec.min_rows:
            return None
        metric = trigger.target or self.metric
        check = performance_drop(
            (truth[-count:], served[-count:]),
            (truth[:count], served[:count]),
            margin=trigger.margin,
            confidence=self.spec.confidence,
            metric=metric,
            lower_is_better=metric in LOWER_IS_BETTER,
        )
        return f"{trigger.text()}: {check.detail}" if check.dropped else None

    def _retrain(self, trainer: _Trainer, w: int, now: int, result: WindowResult) -> None:
        assert self.champion is not None
        self.retrained = True
        self.last_retrain_us, self.last_retrain_window = now, w
        self.counts["retrainings"] = self.counts.get("retrainings", 0) + 1
        labelled = self._labelled(w)
        holdout_rows = self._holdout(labelled, w)
        train_rows = np.setdiff1d(labelled, holdout_rows)
        try:
            challenger = self._train(trainer, train_rows)
        except _TrainingFailed as exc:
            result.events.append("failed")
            result.decisions.append(f"the challenger failed to train: {exc}; the champion stays")
            return
        if challenger.version == self.champion.version:
            result.events.append("held")
            result.decisions.append("the pipeline returned the champion itself")
            return
        waiting = _Waiting(challenger, holdout_rows, w, train_rows)
        self._decide(trainer, waiting, w, now, result)

    def _holdout(self, labelled: np.ndarray, w: int) -> np.ndarray:
        """The holdout: a share of the labelled rows served since the champion was trained
        (neither model trained on them), the newest by default; all labelled rows when too few
        are new."""
        assert self.champion is not None
        fresh = labelled[labelled > self._seen.get(self.champion.version, -1)]
        pool = fresh if len(fresh) >= 2 * MIN_HOLDOUT else labelled
        split = split_rows(
            self.times[pool],
            share=self.spec.holdout,
            mode=self.spec.holdout_mode,
            seed=w,
            most=self.spec.holdout_rows,
        )
        return np.asarray(pool[split.holdout])

    def _train(self, trainer: _Trainer, rows: np.ndarray) -> _Model:
        model = trainer.train(self._training(self.bases, rows))
        last = int(rows.max()) if len(rows) else -1
        self._seen[model.version] = max(self._seen.get(model.version, -1), last)
        return model

    def _decide_waiting(self, trainer: _Trainer, w: int, now: int, result: WindowResult) -> None:
        waiting = self.waiting
        assert waiting is not None
        added = self._rows(waiting.trained_through + 1, w)
        waiting.holdout = np.union1d(waiting.holdout, added)
        waiting.trained_through = w
        self._decide(trainer, waiting, w, now, result)

    def _decide(
        self, trainer: _Trainer, waiting: _Waiting, w: int, now: int, result: WindowResult
    ) -> None:
        assert self.champion is not None
        holdout = self.table.iloc[waiting.holdout]
        verdict = trainer.gate(waiting.model.version, self.champion.version, holdout)
        decision = decide_promotion(
            PromotionFacts(
                rule_results(verdict),
                verdict.checks,
                can_wait=len(waiting.holdout) < self.spec.max_wait_rows,
            )
        )
        version = waiting.model.version
        result.decisions.append(f"challenger {version}: {decision.state}: {decision.reason}")
        if decision.state is RunState.WAITING:
            if self.waiting is None:
                result.events.append("waiting")
            self.waiting = waiting
            return
        self.waiting = None
        if decision.state is RunState.HELD:
            result.events.append("held")
            return
        model = waiting.model
        if self.spec.refit:
            rows = np.union1d(waiting.training, waiting.holdout)
            try:
                model = self._train(trainer, rows)
            except _TrainingFailed as exc:
                result.decisions.append(f"the refit failed ({exc}); promoting the challenger")
        self._promote(model, w, now, result)

    def _promote(self, model: _Model, w: int, now: int, result: WindowResult) -> None:
        assert self.champion is not None
        if self.watch is not None:  # one watch at a time: conclude it with the evidence so far
            self._judge_watch(w, now, result, concluding=True)
        old = self.champion
        self.promotions.append((w, model, old))
        self.champion, self.champion_since = model, w + 1
        self.watch = _Watch(model, old, w + 1, now + self.spec.watch_s * 1_000_000)
        result.events.append("promoted")
        result.decisions.append(f"promoted {model.version} over {old.version}")

    def _judge_watch(
        self, w: int, now: int, result: WindowResult, *, concluding: bool = False
    ) -> None:
        watch = self.watch
        if watch is None or watch.since > w:
            if watch is not None and concluding:
                self.watch = None
                result.decisions.append(f"the watch of {watch.new.version} ends unjudged")
            return
        truth = self._truth(watch.since, w)
        op, margin = watch_rule(self.spec.rollback_margin, self.metric in LOWER_IS_BETTER)
        outcome = None
        if len(truth) >= self.spec.min_rows:
            new = self._predicted_rows(watch.new, watch.since, w)
            old = self._predicted_rows(watch.old, watch.since, w)
            outcome = self._paired(new, old, truth, op=op, margin=margin)
        verdict = judge_watch(
            WatchFacts(len(truth), self.spec.min_rows, concluding or now >= watch.until_us, outcome)
        )
        if verdict.state is WatchState.WATCHING:
            return
        self.watch = None
        result.decisions.append(f"watch of {watch.new.version}: {verdict.state}: {verdict.reason}")
        if verdict.state is WatchState.ROLLED_BACK and not concluding:
            self.champion, self.champion_since = watch.old, w + 1
            self.counts["rollbacks"] = self.counts.get("rollbacks", 0) + 1
            result.events.append("rolled-back")

    def _summary(self, windows: list[WindowResult], trainer: _Trainer) -> dict[str, Any]:
        from loopml.domain.recovery import recovery_interval

        sizes = [w.rows for w in windows]  # a short last window weighs what it holds
        policy = float(np.average([w.policy for w in windows], weights=sizes))
        static = float(np.average([w.static for w in windows], weights=sizes))
        oracle = float(np.average([w.oracle for w in windows], weights=sizes))
        recovery = recovery_interval(
            [w.policy for w in windows],
            [w.static for w in windows],
            [w.oracle for w in windows],
            sizes,
            confidence=RECOVERY_CONFIDENCE,
            lower_is_better=self.metric in LOWER_IS_BETTER,
        )
        judged = [self._served_worse(*p) for p in self.promotions]
        oracle_judged = [self._served_worse(*p) for p in self.oracle_updates]
        needless = sum(1 for worse in judged if worse)
        return {
            "windows": len(windows),
            "rows": int(sum(w.rows for w in windows)),
            "metric": self.metric,
            "policy_mean": policy,
            "static_mean": static,
            "oracle_mean": oracle,
            "recovery": recovery.value,
            "recovery_low": recovery.low,
            "recovery_high": recovery.high,
            "promotions": len(self.promotions),
            "promotions_judged": sum(1 for worse in judged if worse is not None),
            "needless_promotions": needless,
            "needless_windows": [
                w for (w, _, _), worse in zip(self.promotions, judged, strict=True) if worse
            ],
            "oracle_updates_judged": sum(1 for worse in oracle_judged if worse is not None),
            "oracle_needless_updates": sum(1 for worse in oracle_judged if worse),
            "rollbacks": self.counts.get("rollbacks", 0),
            "retrainings": self.counts.get("retrainings", 0),
            "pipeline_runs": trainer.runs,
        }

    def _served_worse(self, w: int, new: _Model, old: _Model) -> bool | None:
        """Whether `new`, taking over after window `w`, served worse over the next two windows
        than `old` would have; None when no window follows."""
        after = [v for v in (w + 1, w + 2) if v < len(self.bounds)]
        if not after:
            return None
        truth = self._truth(after[0], after[-1])
        new_score = self._score(self._predicted_rows(new, after[0], after[-1]), truth)
        old_score = self._score(self._predicted_rows(old, after[0], after[-1]), truth)
        return new_score > old_score if self.metric in LOWER_IS_BETTER else new_score < old_score


def _with_watch(spec: LoopSpec, watch_s: int) -> LoopSpec:
    from dataclasses import replace

    return replace(spec, watch_s=watch_s)


def _iso(time_us: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(int(time_us) / 1e6, UTC).isoformat()
