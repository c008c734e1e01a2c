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

This module holds creating a loop and its runs; the facts of step 3 are gathered in
`loopml.loops.trigger_facts`, steps 2 and 4-6 are carried out in `loopml.loops.retraining`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from loopml.bootstrap import Workspace, default_workspace
from loopml.domain.durations import parse_duration
from loopml.domain.gate_rules import parse_rule
from loopml.domain.loop_decisions import RunState, TriggerPolicy, decide_trigger
from loopml.domain.loops import Loop, LoopRun, LoopSpec, check_spec, run_json
from loopml.domain.train_data import parse_train_data
from loopml.errors import InvalidInput
from loopml.loops import data as loop_data
from loopml.loops import watch as watches
from loopml.loops.retraining import decide_waiting, finish, retrain, rule_results, waiting_run
from loopml.loops.trigger_facts import gather_facts, timestamp_us
from loopml.loops.watch import LOWER_IS_BETTER, Say

__all__ = ["LOWER_IS_BETTER", "LoopOutcome", "create", "rule_results", "run", "run_due", "run_json"]

_log = logging.getLogger("loopml.loops")


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
        waiting = waiting_run(ws, loop.spec)
        if waiting is not None:
            waiting = outcome.decided = decide_waiting(ws, loop.spec, waiting, tell, clock())
            if waiting.status != RunState.WAITING:
                waiting = None
        facts, loop = gather_facts(ws, loop, force, waiting, clock())
        decision = decide_trigger(facts, TriggerPolicy(loop.spec.min_rows, loop.spec.retry_rows))
        outcome.triggered = decision.trigger
        if decision.trigger is None:
            outcome.notes.append(decision.reason)
            return outcome
        if waiting is not None:
            why = f"superseded by a retraining for {decision.trigger}"
            finish(ws, waiting, RunState.HELD, f"{waiting.reason}; {why}")
        loop = ws.loops.remember(loop, replace(loop.state, last_retrain_us=clock()))
        outcome.run = retrain(ws, loop, decision.trigger, tell, clock)
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
        if failed is not None and _now_us() - timestamp_us(failed.updated_at) < RETRY_S * 1_000_000:
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
