"""The live loop's decisions carried out on a replayed history: after every window the watch is
judged, a waiting challenger decided, a trigger checked, and a challenger trained, gated,
promoted (after a refit) or held, exactly as `loopml.loops` does on a workspace, while a static
model and an oracle serve beside it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from loopml.backtest.results import (
    MIN_HOLDOUT,
    RECOVERY_CONFIDENCE,
    BacktestResult,
    Say,
    WindowResult,
)
from loopml.backtest.trainer import TrainedModel, Trainer, TrainingFailed
from loopml.backtest.windows import ReplayTable
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
    watch_rule,
)
from loopml.domain.loop_triggers import Trigger
from loopml.domain.loops import LoopSpec
from loopml.errors import InvalidInput
from loopml.loops import LOWER_IS_BETTER, rule_results


@dataclass
class _Waiting:
    model: TrainedModel
    holdout: np.ndarray
    """Positions of its holdout rows in the replayed table."""
    trained_through: int
    """The last window its training data reached."""
    training: np.ndarray


@dataclass
class _Watch:
    new: TrainedModel
    old: TrainedModel
    since: int
    """The first window the new champion served."""
    until_us: int


@dataclass
class Replay:
    """One backtest's loop: its policy, the replayed data, and the loop's state between runs."""

    spec: LoopSpec
    data: ReplayTable
    champion: TrainedModel | None = None
    champion_since: int = 0
    watch: _Watch | None = None
    waiting: _Waiting | None = None
    last_retrain_us: int = 0
    last_retrain_window: int = -1
    retrained: bool = False
    promotions: list[tuple[int, TrainedModel, TrainedModel]] = field(default_factory=list)
    oracle_updates: list[tuple[int, TrainedModel, TrainedModel]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    _seen: dict[int, int] = field(default_factory=dict)
    """The last row position each model version trained on (-1: the bases only)."""

    def run(self, trainer: Trainer, tell: Say) -> BacktestResult:
        try:
            static = trainer.train(self.data.training(np.empty(0, dtype=np.int64)))
        except TrainingFailed as exc:
            raise InvalidInput(
                f"The first champion could not be trained on the reference: {exc}",
                "Run the pipeline on the reference (`loopml pipeline run`) and fix it first.",
            ) from None
        self.champion = static
        self.last_retrain_us = int(self.data.times[0])
        if self.spec.watch_s == 0:  # the span of two windows
            spans = [self.data.times[e - 1] - self.data.times[s] for s, e in self.data.bounds]
            self.spec = _with_watch(self.spec, max(1, int(2 * np.median(spans) / 1e6)))
        results = []
        oracle = static
        for w, (start, end) in enumerate(self.data.bounds):
            truth = self.data.truth(w, w)
            if w > 0:
                try:
                    before, oracle = (
                        oracle,
                        trainer.train(self.data.training(self.data.rows(0, w - 1))),
                    )
                    if oracle.version != before.version:  # the pipeline's cache: no update
                        self.oracle_updates.append((w - 1, oracle, before))
                except TrainingFailed as exc:
                    tell(f"window {w}: the oracle failed to train ({exc}); it keeps its model")
            assert self.champion is not None
            result = WindowResult(
                w,
                _iso(self.data.times[start]),
                _iso(self.data.times[end - 1]),
                end - start,
                self.data.score(self.data.predicted(self.champion, w), truth),
                self.data.score(self.data.predicted(static, w), truth),
                self.data.score(self.data.predicted(oracle, w), truth),
                self.champion.version,
            )
            self._after_window(trainer, w, result)
            results.append(result)
            tell(
                f"window {w + 1}/{len(self.data.bounds)}: policy {result.policy:.3f} static "
                f"{result.static:.3f} oracle {result.oracle:.3f}"
                + (f"; {'; '.join(result.events)}" if result.events else "")
            )
        return BacktestResult(
            self.data.metric, self.spec.to_dict(), results, self._summary(results, trainer)
        )

    def _after_window(self, trainer: Trainer, w: int, result: WindowResult) -> None:
        """The loop's run at the end of window `w`, whose labels have just arrived."""
        now = self.data.end_us(w)
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
        labelled = self.data.labelled(w)
        new_rows = len(self.data.rows(self.last_retrain_window + 1, w))
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
        truth = self.data.truth(first, w)
        served = self.data.predicted_rows(self.champion, first, w)
        count = min(self.spec.retry_rows, len(truth) // 2)
        if count < self.spec.min_rows:
            return None
        metric = trigger.target or self.data.metric
        check = performance_drop(
            (truth[-count:], served[-count:]),
            (truth[:count], served[:count]),
            margin=trigger.margin,
            confidence=self.spec.confidence,
            metric=metric,
            lower_is_better=metric in LOWER_IS_BETTER,
        )
        return f"{trigger.text()}: {check.detail}" if check.dropped else None

    def _retrain(self, trainer: Trainer, w: int, now: int, result: WindowResult) -> None:
        assert self.champion is not None
        self.retrained = True
        self.last_retrain_us, self.last_retrain_window = now, w
        self.counts["retrainings"] = self.counts.get("retrainings", 0) + 1
        labelled = self.data.labelled(w)
        holdout_rows = self._holdout(labelled, w)
        train_rows = np.setdiff1d(labelled, holdout_rows)
        try:
            challenger = self._train(trainer, train_rows)
        except TrainingFailed as exc:
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
            self.data.times[pool],
            share=self.spec.holdout,
            mode=self.spec.holdout_mode,
            seed=w,
            most=self.spec.holdout_rows,
        )
        return np.asarray(pool[split.holdout])

    def _train(self, trainer: Trainer, rows: np.ndarray) -> TrainedModel:
        model = trainer.train(self.data.training(rows))
        last = int(rows.max()) if len(rows) else -1
        self._seen[model.version] = max(self._seen.get(model.version, -1), last)
        return model

    def _decide_waiting(self, trainer: Trainer, w: int, now: int, result: WindowResult) -> None:
        waiting = self.waiting
        assert waiting is not None
        added = self.data.rows(waiting.trained_through + 1, w)
        waiting.holdout = np.union1d(waiting.holdout, added)
        waiting.trained_through = w
        self._decide(trainer, waiting, w, now, result)

    def _decide(
        self, trainer: Trainer, waiting: _Waiting, w: int, now: int, result: WindowResult
    ) -> None:
        assert self.champion is not None
        holdout = self.data.table.iloc[waiting.holdout]
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
            except TrainingFailed as exc:
                result.decisions.append(f"the refit failed ({exc}); promoting the challenger")
        self._promote(model, w, now, result)

    def _promote(self, model: TrainedModel, w: int, now: int, result: WindowResult) -> None:
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
        truth = self.data.truth(watch.since, w)
        op, margin = watch_rule(self.spec.rollback_margin, self.data.lower_is_better)
        outcome = None
        if len(truth) >= self.spec.min_rows:
            new = self.data.predicted_rows(watch.new, watch.since, w)
            old = self.data.predicted_rows(watch.old, watch.since, w)
            outcome = self.data.paired(new, old, truth, op=op, margin=margin)
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

    def _summary(self, windows: list[WindowResult], trainer: Trainer) -> dict[str, Any]:
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
            lower_is_better=self.data.lower_is_better,
        )
        judged = [self.data.served_worse(*p) for p in self.promotions]
        oracle_judged = [self.data.served_worse(*p) for p in self.oracle_updates]
        needless = sum(1 for worse in judged if worse)
        return {
            "windows": len(windows),
            "rows": int(sum(w.rows for w in windows)),
            "metric": self.data.metric,
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


def _with_watch(spec: LoopSpec, watch_s: int) -> LoopSpec:
    from dataclasses import replace

    return replace(spec, watch_s=watch_s)


def _iso(time_us: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(int(time_us) / 1e6, UTC).isoformat()
