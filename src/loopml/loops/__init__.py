"""The closed loop: retrain when monitoring says so, prove the challenger on fresh data,
promote it, watch it, roll it back if it disappoints.

    loops.create("churn-loop", deployment="churn-prod", pipeline="pipeline.py:churn",
                 triggers=["alert:churn-drift", "performance", "every:7d"],
                 train_data="reference + all labelled predictions",
                 promote_if=["f1 >= champion.f1 + 0.005"], confidence=0.9, mode="auto")
    loops.run("churn-loop")      # what `loopml loop run` and the scheduler call

One run of a loop, holding its lease so that a second run of the same loop stops at once,
gathers the facts and carries out what `loopml.domain.loop_decisions` decides:
1. judge an open watch (`loopml.loops.watch`): the new champion against the one it replaced on
   the labelled rows it served; surely worse beyond the margin -> roll back and alert;
2. decide a waiting challenger: its holdout grows by the labelled rows served since, and the
   promotion rules are judged again at the loop's confidence;
3. decide whether to retrain (`decide_trigger`): an alert opened since the last run, a
   schedule due, `labels:N` new labelled rows, a performance drop established with confidence,
   or a trigger still true after a retraining once `retry_rows` new labelled rows have come;
4. build the training data and holdout (`loopml.loops.data`): the recipe's rows, and the newest
   share of the rows served since the champion was trained; both become dataset versions;
5. run the pipeline on the training version; the model version it registers is the challenger;
6. score both on the holdout with paired statistics and decide (`decide_promotion`): promote
   (after a refit on training plus holdout rows, with `refit`) and open a watch, leave it for a
   person (mode approve), hold it, or let it wait for more rows when the rules cannot tell yet.
A failure anywhere leaves the champion serving, records why, and raises an alert.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from loopml.bootstrap import Workspace, default_workspace
from loopml.domain.durations import parse_duration
from loopml.domain.gate_rules import parse_rule
from loopml.domain.loop_decisions import (
    PromotionFacts,
    RuleResult,
    RunState,
    TriggerFacts,
    TriggerPolicy,
    check_move,
    decide_promotion,
    decide_trigger,
    estimate_drop,
    performance_drop,
    rule_result,
)
from loopml.domain.loops import Loop, LoopRun, LoopSpec, Trigger, check_spec, parse_train_data
from loopml.domain.paired import Verdict
from loopml.errors import InvalidInput, LoopmlError
from loopml.loops import data as loop_data
from loopml.loops import watch as watches
from loopml.loops.watch import LOWER_IS_BETTER, model_name, version_or_none

__all__ = ["LOWER_IS_BETTER", "LoopOutcome", "create", "rule_results", "run", "run_due", "run_json"]

_log = logging.getLogger("loopml.loops")

Say = Callable[[str], None]


@dataclass
class LoopOutcome:
    """What one `run` did: the watch it judged, the waiting challenger it decided, and the
    retraining it made (each if any)."""

    loop: str
    triggered: str | None = None
    """The trigger that fired, or None when nothing called for retraining."""
    run: LoopRun | None = None
    watched: LoopRun | None = None
    decided: LoopRun | None = None
    """A waiting challenger judged again on more rows."""
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "loop": self.loop,
            "triggered": self.triggered,
            "run": None if self.run is None else run_json(self.run),
            "watched": None if self.watched is None else run_json(self.watched),
            "decided": None if self.decided is None else run_json(self.decided),
            "notes": self.notes,
        }


def run_json(run: LoopRun) -> dict[str, Any]:
    return {
        "id": run.id,
        "loop": run.loop,
        "started_at": run.started_at.isoformat(),
        "finished_at": None if run.finished_at is None else run.finished_at.isoformat(),
        "trigger": run.trigger,
        "status": run.status,
        **run.details(),
    }


# -- creating ---------------------------------------------------------------------------------


def create(
    name: str,
    *,
    deployment: str,
    pipeline: str,
    triggers: Sequence[str],
    train_data: str,
    promote_if: Sequence[str],
    guards: Sequence[str] = (),
    mode: str = "auto",
    watch: str | int = "1h",
    rollback_margin: float = 0.02,
    holdout: float = 0.3,
    min_rows: int = 100,
    label: str | None = None,
    data_param: str = "dataset",
    params: dict[str, Any] | None = None,
    notify: Sequence[str] = ("log:",),
    confidence: float = 0.9,
    holdout_mode: str = "time",
    refit: bool = False,
    retry_rows: int = 500,
    max_wait_rows: int = 5_000,
    weight_column: str = "sample_weight",
    checks: Sequence[str] = (),
    horizon: int | None = None,
    holdout_rows: int | None = None,
    project: str | None = None,
    workspace: Workspace | None = None,
) -> Loop:
    """Save retrain policy `name`, after checking that everything it names exists: the
    deployment, the pipeline (and its data parameter), the monitors its alert triggers name,
    the base datasets, the metrics of its rules, and its data checks."""
    from loopml.domain.data_checks import parse_checks
    from loopml.steps import load_pipeline

    ws = workspace or default_workspace()
    project = project or ws.project
    ws.deployments.get(deployment, project)
    found = load_pipeline(pipeline)
    takes = list(found.signature.parameters)
    if data_param not in takes:
        raise InvalidInput(
            f"Pipeline {pipeline} takes no parameter {data_param!r} to receive the training "
            f"data (it takes: {', '.join(takes) or 'none'}).",
            "Name the parameter that takes a dataset version with --data-param.",
        )
    for text in (*promote_if, *guards):
        parse_rule(text)  # names the rule that does not read, or its unknown metric
    for channel in notify:
        ws.alerts.check_channel(channel)
    spec = LoopSpec(
        project,
        name,
        deployment,
        found.source_ref or pipeline,
        tuple(triggers),
        train_data,
        tuple(promote_if),
        tuple(guards),
        mode,
        watch if isinstance(watch, int) else parse_duration(watch),
        rollback_margin,
        holdout,
        min_rows,
        label,
        data_param,
        dict(params or {}),
        tuple(notify) or ("log:",),
        confidence,
        holdout_mode,
        refit,
        retry_rows,
        max_wait_rows,
        weight_column,
        tuple(parse_checks(checks).to_texts()),
        horizon=horizon,
        holdout_rows=holdout_rows,
    )
    check_spec(spec)
    for trigger in spec.parsed_triggers:
        if trigger.kind == "alert":
            _check_alert_target(ws, trigger.target, deployment, project)
    recipe = parse_train_data(train_data)
    for base in recipe.bases:
        if base == "reference":
            spec = replace(spec, reference_pin=loop_data.reference_monitor(ws, spec).reference)
        else:
            ws.data.resolve(base, project, record=False)
    loop_data.label_of(ws, spec)
    return ws.loops.create(spec)


def _check_alert_target(ws: Workspace, target: str, deployment: str, project: str) -> None:
    monitors = {m.name: m for m in ws.monitors.list(project)}
    if target in monitors or target == deployment:
        return
    raise InvalidInput(
        f"The trigger alert:{target} names no monitor of project {project!r}.",
        f"Name a monitor ({', '.join(sorted(monitors)) or 'none yet'}) or the deployment "
        f"{deployment!r}; make one with `loopml monitor create`.",
    )


# -- running ----------------------------------------------------------------------------------


def run(
    name: str,
    *,
    force: bool = False,
    now_us: int | None = None,
    project: str | None = None,
    workspace: Workspace | None = None,
    say: Say | None = None,
) -> LoopOutcome:
    """Judge the loop's open watch, decide a waiting challenger, then retrain if a trigger
    fired (or `force`).

    `now_us` runs it as if now were that time (`loopml loop run --at TIME`, to replay a
    history served with its event times): the watch's window and verdict, the schedules and
    the labelled rows are all taken at that time; the records written keep their real creation
    times. A retraining remembered after that time (the loop's creation, or a later run) lies
    in the replay's future: an `every:` schedule is due."""
    ws = workspace or default_workspace()
    project = project or ws.project
    tell = say or (lambda _text: None)
    clock = _now_us if now_us is None else (lambda: now_us)
    with ws.loops.hold(name, project):
        loop = ws.loops.get(name, project)
        outcome = LoopOutcome(name)
        outcome.watched = watches.judge(ws, loop.spec, tell, clock())
        waiting = _waiting(ws, loop.spec)
        if waiting is not None:
            waiting = outcome.decided = _decide_waiting(ws, loop.spec, waiting, tell, clock())
            if waiting.status != RunState.WAITING:
                waiting = None
        facts, loop = _facts(ws, loop, force, waiting, clock())
        decision = decide_trigger(facts, TriggerPolicy(loop.spec.min_rows, loop.spec.retry_rows))
        outcome.triggered = decision.trigger
        if decision.trigger is None:
            outcome.notes.append(decision.reason)
            return outcome
        if waiting is not None:
            why = f"superseded by a retraining for {decision.trigger}"
            _finish(ws, waiting, RunState.HELD, f"{waiting.reason}; {why}")
        loop = ws.loops.remember(loop, replace(loop.state, last_retrain_us=clock()))
        outcome.run = _retrain(ws, loop, decision.trigger, tell, clock)
        # a schedule counts from the end of the retraining, so a slow one is not run back to back
        ws.loops.remember(loop, replace(loop.state, last_retrain_us=clock()))
        return outcome


FAILED = "loop run"
"""What a failure notice of a loop is about: its condition reads `loop run failed: ...`."""
RETRY_S = 60
"""A loop whose run failed is tried again this long after (not at every tick)."""


def run_due(workspace: Workspace | None = None, project: str | None = None) -> list[LoopOutcome]:
    """Run every loop of the project once (the scheduler's call); a loop another process is
    running is passed over. A loop whose run fails (any exception; a retraining that fails is
    no such failure: it is a failed loop run, recorded and alerted) is reported in its outcome's
    notes and does not stop the others: it is recorded on a notice alert on it, told to its
    channels once, tried again after `RETRY_S`, and resolved by its next run that completes."""
    from loopml.errors import Conflict
    from loopml.monitoring.monitors import failure_text

    ws = workspace or default_workspace()
    project = project or ws.project
    failing = ws.alerts.failures(project, FAILED)
    outcomes = []
    for loop in ws.loops.list(project):
        failed = failing.get(loop.spec.name)
        if failed is not None and _now_us() - _us(failed.updated_at) < RETRY_S * 1_000_000:
            continue
        try:
            outcome = run(loop.spec.name, project=project, workspace=ws)
        except Conflict:
            continue
        except Exception as exc:  # one broken loop must not stop the others
            _log.warning("loop %s/%s failed", project, loop.spec.name, exc_info=exc)
            why = failure_text(ws, exc)
            outcomes.append(LoopOutcome(loop.spec.name, notes=[f"failed: {why}"]))
            _notice(ws, loop.spec, why)
            continue
        outcomes.append(outcome)
        if failed is not None:
            _notice(ws, loop.spec, None)
    return outcomes


def _notice(ws: Workspace, spec: LoopSpec, failure: str | None) -> None:
    """Open (`failure`) or resolve (None) the loop's failure notice on its channels; recording
    it must not stop the schedule either."""
    try:
        if failure is None:
            ws.alerts.recovered(spec.project, spec.name, FAILED, spec.notify)
        else:
            ws.alerts.failing(spec.project, spec.name, FAILED, failure, spec.notify)
    except Exception:  # the database itself may be what fails: the log keeps it
        _log.exception("the failure notice of loop %s/%s", spec.project, spec.name)


def _now_us() -> int:
    return time.time_ns() // 1000


def _us(value: Any) -> int:
    return int(value.timestamp() * 1_000_000)


# -- whether to retrain -----------------------------------------------------------------------


def _facts(
    ws: Workspace, loop: Loop, force: bool, waiting: LoopRun | None, now: int
) -> tuple[TriggerFacts, Loop]:
    """What the loop sees now, and the loop with its alert cursor moved past what it saw."""
    spec, state = loop.spec, loop.state
    new_alert, firing, loop = _alerts(ws, loop)
    last = state.last_retrain_us if 0 < state.last_retrain_us <= now else None
    label = loop_data.label_of(ws, spec) if _needs_rows(spec, force, new_alert) else None
    rows = (
        loop_data.recent(ws, spec, label, now) if label is not None else None
    )  # the labelled rows the recipe would take now
    times = rows[loop_data.TIME].to_numpy() if rows is not None and len(rows) else np.empty(0)
    new_rows = int((times > (last or 0)).sum())
    due = None
    performance = None
    for trigger in spec.parsed_triggers:
        if trigger.kind == "every" and (last is None or now - last >= trigger.every_s * 1e6):
            due = due or trigger.text()
        if trigger.kind == "labels" and new_rows >= trigger.rows:
            due = due or f"{trigger.text()} ({new_rows:,} new labelled rows)"
        if trigger.kind == "performance" and performance is None and label is not None:
            performance = _performance(ws, spec, trigger, label, now)
        if trigger.kind == "estimate" and performance is None:
            performance = _estimate(ws, spec, trigger)
    facts = TriggerFacts(
        forced=force,
        new_alert=new_alert,
        firing_alert=firing,
        schedule_due=due,
        performance=performance,
        labelled_rows=len(times) if rows is not None else spec.min_rows,
        new_labelled_rows=new_rows,
        retrained_before=bool(ws.loops.history(spec.name, spec.project, 1)),
        waiting=None if waiting is None else f"challenger {waiting.challenger}",
    )
    return facts, loop


def _needs_rows(spec: LoopSpec, force: bool, new_alert: str | None) -> bool:
    """Whether deciding needs the labelled rows (they are read from the log only then)."""
    kinds = {t.kind for t in spec.parsed_triggers}
    return bool(kinds - {"every", "manual"}) or force or new_alert is not None


def _alerts(ws: Workspace, loop: Loop) -> tuple[str | None, str | None, Loop]:
    """(an alert of a trigger opened or reopened since the loop last looked, one firing now,
    the loop with its cursor moved)."""
    targets = {t.target for t in loop.spec.parsed_triggers if t.kind == "alert"}
    if not targets:
        return None, None, loop
    seen = newest = loop.state.alerts_seen_us
    new_alert = firing = None
    for alert in ws.alerts.alerts(loop.spec.project, limit=1000):
        if alert.target not in targets or not alert.rule_id:
            continue
        opened, changed = _us(alert.opened_at), _us(alert.updated_at)
        text = f"alert:{alert.target} #{alert.id} ({alert.condition})"
        if alert.state == "firing":
            firing = firing or text
        if opened > seen or (alert.state == "firing" and changed > seen):
            newest = max(newest, opened, changed)
            new_alert = new_alert or text
    if newest != seen:
        loop = ws.loops.remember(loop, replace(loop.state, alerts_seen_us=newest))
    return new_alert, firing, loop


def _performance(
    ws: Workspace, spec: LoopSpec, trigger: Trigger, label: str, now: int
) -> str | None:
    """The trigger's text when the champion's metric on its newest labelled rows (at most
    `retry_rows`) is surely worse than on the first ones it served, by the trigger's margin."""
    model = model_name(ws, spec)
    champion = version_or_none(ws, f"{model}@champion", spec.project)
    if champion is None:
        return None
    rows = loop_data.labelled(ws, spec.deployment, label, start_us=0, end_us=now, version=champion)
    count = min(spec.retry_rows, len(rows) // 2)
    if count < spec.min_rows:
        return None
    metric = trigger.target or spec.watch_metric
    first, last = rows.iloc[:count], rows.iloc[-count:]
    check = performance_drop(
        (last[label].to_numpy(), last[loop_data.OUTPUT].to_numpy()),
        (first[label].to_numpy(), first[loop_data.OUTPUT].to_numpy()),
        margin=trigger.margin,
        confidence=spec.confidence,
        metric=metric,
        lower_is_better=metric in LOWER_IS_BETTER,
    )
    return f"{trigger.text()}: {check.detail}" if check.dropped else None


def _estimate(ws: Workspace, spec: LoopSpec, trigger: Trigger) -> str | None:
    """The trigger's text when the newest drift monitor run's label-free accuracy estimate is
    surely below the champion's registered accuracy by the trigger's margin."""
    from loopml.monitoring.monitors import report_document

    model = model_name(ws, spec)
    try:
        baseline = ws.registry.resolve(f"{model}@champion", spec.project).metrics.get("accuracy")
    except LoopmlError:
        return None
    for monitor in ws.monitors.list(spec.project):
        if monitor.deployment != spec.deployment or monitor.reference is None:
            continue
        newest = ws.monitors.history(monitor.name, spec.project, 1)
        if not newest or baseline is None:
            continue
        document = report_document(newest[0].id, project=spec.project, workspace=ws)
        found = (document.get("performance") or {}).get("estimated") or {}
        if "accuracy" not in found:
            continue
        check = estimate_drop(
            float(found["accuracy"]),
            float(found.get("accuracy_standard_error") or 0.0),
            baseline=float(baseline),
            margin=trigger.margin,
            confidence=spec.confidence,
            rows=int(found.get("rows") or 0),
        )
        return f"{trigger.text()}: {check.detail}" if check.dropped else None
    return None


# -- retraining -------------------------------------------------------------------------------


def _retrain(
    ws: Workspace, loop: Loop, trigger: str, tell: Say, clock: Callable[[], int]
) -> LoopRun:
    spec = loop.spec
    model = model_name(ws, spec)
    champion = version_or_none(ws, f"{model}@champion", spec.project)
    started = ws.loops.start_run(loop, trigger, champion)
    tell(f"loop {spec.name}: run {started.id} started by {trigger}")
    try:
        return _retrain_steps(
            ws, spec, started, model=model, champion=champion, tell=tell, clock=clock
        )
    except LoopmlError as exc:
        return _fail(ws, spec, started, str(exc), tell)
    except Exception as exc:  # a pipeline or model error: the champion stays, people hear
        return _fail(ws, spec, started, f"{type(exc).__name__}: {exc}", tell)


def _retrain_steps(
    ws: Workspace,
    spec: LoopSpec,
    started: LoopRun,
    *,
    model: str,
    champion: int | None,
    tell: Say,
    clock: Callable[[], int],
) -> LoopRun:
    label = loop_data.label_of(ws, spec)  # one read of the monitor's summary for the whole run
    built = loop_data.build(
        ws,
        spec,
        started.id,
        label,
        now_us=clock(),
        champion_until_us=_champion_until(ws, spec, champion),
    )
    current = replace(
        started,
        train_data=built.train_ref,
        holdout_data=built.holdout_ref,
        data_until_us=built.until_us,
    )
    tell(
        f"loop {spec.name}: training data {built.train_ref} ({built.train_rows:,} rows), "
        f"holdout {built.holdout_ref} ({built.holdout_rows:,} rows, {spec.holdout_mode})"
    )
    pipeline_run, challenger, failure = _train(ws, spec, model, built.train_ref)
    current = replace(current, pipeline_run=pipeline_run, challenger=challenger)
    if failure is not None:
        return _fail(ws, spec, current, failure, tell)
    if challenger is None:
        return _fail(
            ws, spec, current, f"pipeline run {pipeline_run} registered no {model} version", tell
        )
    if champion is None:
        raise InvalidInput(
            f"Model {model} has no champion to compare with.",
            f"Promote a first version with `loopml models promote {model} VERSION`.",
        )
    if challenger == champion:
        return _finish(
            ws,
            current,
            RunState.HELD,
            "the pipeline returned the champion itself (same data and code): nothing new",
        )
    return _judge(
        ws, spec, current, model=model, holdout_rows=built.holdout_rows, tell=tell, now=clock()
    )


def _champion_until(ws: Workspace, spec: LoopSpec, champion: int | None) -> int:
    """The end of the champion's own training data from the log: the data time of the loop
    run that made it (0 when no loop run did: it was trained on none of the log)."""
    for past in ws.loops.history(spec.name, spec.project, 50):
        if (
            champion is not None
            and champion in (past.challenger, past.refit)
            and past.data_until_us
        ):
            return int(past.data_until_us)
    return 0


def _judge(
    ws: Workspace,
    spec: LoopSpec,
    current: LoopRun,
    *,
    model: str,
    holdout_rows: int,
    tell: Say,
    now: int,
) -> LoopRun:
    """Score challenger and champion on the run's holdout and carry out the decision."""
    from loopml.domain.data_checks import parse_checks
    from loopml.monitoring.gate import gate

    assert current.challenger is not None
    assert current.champion is not None
    verdict = gate(
        ws,
        model=model,
        candidate=str(current.challenger),
        against=str(current.champion),
        data=str(current.holdout_data),
        rules=[*spec.promote_if, *spec.guards],
        label=loop_data.label_of(ws, spec),
        project=spec.project,
        confidence=spec.confidence,
        checks=parse_checks(spec.checks),
        horizon=spec.horizon,
    )
    scored = replace(
        current,
        scores={"champion": verdict.champion or {}, "challenger": verdict.candidate},
        rules=tuple(verdict.rules) + tuple(verdict.checks),
    )
    decision = decide_promotion(
        PromotionFacts(
            rule_results(verdict),
            verdict.checks,
            approve=spec.mode == "approve",
            can_wait=holdout_rows < spec.max_wait_rows,
        )
    )
    challenger, champion = int(current.challenger), int(current.champion)
    notes = "".join(f"; note: {note}" for note in verdict.notes)
    if decision.state in (RunState.HELD, RunState.WAITING):
        verb = "kept out" if decision.state is RunState.HELD else "waits"
        why = f"challenger {challenger} {verb}: {decision.reason}{notes}"
        tell(f"loop {spec.name}: {why}")
        return _finish(ws, scored, decision.state, why)
    if spec.refit:
        scored = _refit(ws, spec, scored, model, tell)
    winner = scored.refit or challenger
    if decision.state is RunState.AWAITING_APPROVAL:
        ws.registry.set_alias(model, "challenger", winner, project=spec.project)
        why = (
            f"challenger {winner} beat champion {champion}: {decision.reason}; waiting for "
            f"`loopml models promote {model} {winner}`"
        )
        tell(f"loop {spec.name}: {why}")
        return _finish(ws, scored, RunState.AWAITING_APPROVAL, why)
    watches.conclude(ws, spec, tell, now)  # one watch at a time
    ws.registry.promote(model, winner, project=spec.project)
    refit = f" (refit of {challenger} on its training and holdout rows)" if scored.refit else ""
    why = f"promoted {model} {winner}{refit} over {champion}: {decision.reason}"
    trained_on = scored.refit_data or str(scored.train_data)
    why += "".join(f"; {note}" for note in loop_data.follow_reference(ws, spec, trained_on))
    tell(f"loop {spec.name}: {why}")
    return _finish(
        ws, scored, RunState.PROMOTED, why, watch=watches.new_watch(spec, winner, champion, now)
    )


def _refit(ws: Workspace, spec: LoopSpec, run_: LoopRun, model: str, tell: Say) -> LoopRun:
    """The winner retrained on its training plus holdout rows (recorded as `refit`); on a
    failure the tested challenger is promoted as it is."""
    import tempfile
    from pathlib import Path

    import pandas as pd

    from loopml.monitoring.monitors import read_dataset

    train = read_dataset(ws, ws.data.resolve(str(run_.train_data), spec.project, record=False))
    held = read_dataset(ws, ws.data.resolve(str(run_.holdout_data), spec.project, record=False))
    frame = pd.concat([train.to_pandas(), held.to_pandas()], ignore_index=True)
    name = str(run_.train_data).rpartition("@")[0]
    with tempfile.TemporaryDirectory(prefix="loopml-refit-") as folder:
        path = Path(folder) / "train.parquet"
        frame.to_parquet(path, index=False)
        made = ws.data.add(
            path,
            name=name,
            project=spec.project,
            message=f"{run_.train_data} + {run_.holdout_data} (refit, loop {spec.name} run "
            f"{run_.id})",
        ).version
    data = f"{made.name}@{made.version}"
    _, refit, failure = _train(ws, spec, model, data)
    if failure is not None or refit is None:
        tell(f"loop {spec.name}: the refit failed ({failure}); promoting the tested challenger")
        return run_
    return replace(run_, refit=refit, refit_data=data)


def rule_results(verdict: Any) -> list[RuleResult]:
    """The promotion rules of a gate's result (`loopml.monitoring.gate.GateResult`) as the
    promotion decision takes them: a rule judged on the paired difference keeps its verdict
    (pass, fail or undecided), any other passes or fails."""
    results = []
    for text, ok, why in verdict.rules:
        found = verdict.comparisons.get(text)
        if found is not None:
            results.append(rule_result(text, found))
        else:
            results.append(RuleResult(text, Verdict.PASS if ok else Verdict.FAIL, why))
    return results


# -- a waiting challenger ---------------------------------------------------------------------


def _waiting(ws: Workspace, spec: LoopSpec) -> LoopRun | None:
    recent = ws.loops.history(spec.name, spec.project, 20)
    return next((r for r in recent if r.status == RunState.WAITING), None)


def _decide_waiting(
    ws: Workspace, spec: LoopSpec, waiting: LoopRun, tell: Say, now: int
) -> LoopRun:
    """Judge a waiting challenger again, its holdout grown by the labelled rows served since
    its data was read (it never trained on them)."""
    model = model_name(ws, spec)
    champion = version_or_none(ws, f"{model}@champion", spec.project)
    if champion != waiting.champion:
        why = f"{model}@champion moved to {champion} meanwhile"
        return _finish(ws, waiting, RunState.HELD, f"{waiting.reason}; {why}")
    label = loop_data.label_of(ws, spec)
    since = int(waiting.data_until_us or 0)
    holdout, rows = loop_data.grown_holdout(
        ws,
        spec,
        label,
        run_id=waiting.id,
        holdout_ref=str(waiting.holdout_data),
        since_us=since,
        now_us=now,
    )
    if holdout == waiting.holdout_data:
        return waiting  # no new labelled rows: nothing new to judge on
    grown = replace(waiting, holdout_data=holdout, data_until_us=now)
    try:
        return _judge(ws, spec, grown, model=model, holdout_rows=rows, tell=tell, now=now)
    except LoopmlError as exc:
        return _fail(ws, spec, grown, str(exc), tell)


# -- records ----------------------------------------------------------------------------------


def _finish(ws: Workspace, run_: LoopRun, state: RunState, reason: str, **changes: Any) -> LoopRun:
    check_move(RunState(run_.status), state)
    return ws.loops.finish_run(run_, str(state), reason, **changes)


def _fail(ws: Workspace, spec: LoopSpec, run_: LoopRun, why: str, tell: Say) -> LoopRun:
    tell(f"loop {spec.name}: run {run_.id} failed, the champion stays: {why}")
    ws.alerts.notice(spec.project, spec.name, f"retraining failed: {why}"[:480], spec.notify, None)
    return _finish(ws, run_, RunState.FAILED, why)


def _train(
    ws: Workspace, spec: LoopSpec, model: str, train_ref: str
) -> tuple[str, int | None, str | None]:
    """Run the pipeline on `train_ref`: (pipeline run id, the `model` version it registered,
    why it failed)."""
    from loopml.pipelines import run_pipeline
    from loopml.steps import load_pipeline

    roots = ws.settings.pipeline_roots
    pipeline = load_pipeline(spec.pipeline, roots)
    params = {**spec.params, spec.data_param: train_ref}
    result = run_pipeline(
        pipeline,
        params,
        project=spec.project,
        workspace=ws,
        tags={"loopml.loop": spec.name},
        use_cache=roots is None,  # a server never loads outputs another run's writer cached
    )
    if not result.ok:
        failed = [f"{s.name}: {s.error}" for s in result.steps.values() if s.error]
        why = "; ".join(failed) or str(result.run.status)
        return str(result.run.id), None, f"the challenger failed to train: {why}"
    step_runs = {s.run_id for s in result.steps.values() if s.run_id}
    versions = [v for v in ws.registry.versions(model, spec.project) if v.run_id in step_runs]
    return str(result.run.id), max((v.version for v in versions), default=None), None
