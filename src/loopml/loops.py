"""The closed loop: retrain when monitoring says so, prove the challenger on fresh data,
promote it, watch it, roll it back if it disappoints.

    loops.create("churn-loop", deployment="churn-prod", pipeline="pipeline.py:churn",
                 triggers=["alert:churn-drift", "every:7d"],
                 train_data="reference + labelled predictions of the last 30d",
                 promote_if=["f1 >= champion.f1 + 0.005"], mode="auto")
    loops.run("churn-loop")      # what `loopml loop run` and the scheduler call

One run of a loop, holding its lease so that a second run of the same loop stops at once:
1. judge an open watch: the champion it promoted against the one it replaced, both scored on the
   labelled traffic the new one served since; worse by the margin -> roll back and alert;
2. see whether a trigger fired (an alert of a named monitor since the last run, a schedule
   that came due, or `force`); if none, stop;
3. build the training data: the base tables plus the recent labelled predictions, shuffled
   (seeded by the run) and cut into training rows and a holdout; both become dataset versions;
4. run the pipeline on the training version; the model version it registers is the challenger;
5. score champion and challenger on the same holdout, which the challenger never saw, and apply
   the promotion rule and guards; every score and rule outcome is kept on the run;
6. promote (mode auto) and open a watch, or leave the challenger under the `challenger` alias
   for a person to promote (mode approve), or keep the champion and say why.
A failure anywhere leaves the champion serving, records why, and raises an alert.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from loopml.bootstrap import Workspace, default_workspace
from loopml.domain.durations import parse_duration
from loopml.domain.gate_rules import parse_rule
from loopml.domain.loops import Loop, LoopRun, LoopSpec, check_spec, parse_train_data
from loopml.domain.records import PRODUCES_TAG, Monitor
from loopml.domain.refs import parse_model_ref
from loopml.errors import InvalidInput, LoopmlError

_log = logging.getLogger("loopml.loops")
LOWER_IS_BETTER = frozenset({"log_loss", "mae", "rmse", "latency_p50_ms", "latency_p99_ms"})

Say = Callable[[str], None]


@dataclass
class LoopOutcome:
    """What one `run` did: the watch it judged (if any) and the retraining it made (if any)."""

    loop: str
    triggered: str | None = None
    """The trigger that fired, or None when nothing called for retraining."""
    run: LoopRun | None = None
    watched: LoopRun | None = None
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "loop": self.loop,
            "triggered": self.triggered,
            "run": None if self.run is None else run_json(self.run),
            "watched": None if self.watched is None else run_json(self.watched),
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
    project: str | None = None,
    workspace: Workspace | None = None,
) -> Loop:
    """Save retrain policy `name`, after checking that everything it names exists: the
    deployment, the pipeline (and its data parameter), the monitors its alert triggers name,
    the base datasets, and the metrics of its rules."""
    from loopml.domain.alerts import parse_channel
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
        parse_channel(channel)
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
    )
    check_spec(spec)
    for trigger in spec.parsed_triggers:
        if trigger.kind == "alert":
            _check_alert_target(ws, trigger.target, deployment, project)
    recipe = parse_train_data(train_data)
    for base in recipe.bases:
        if base == "reference":
            _reference_monitor(ws, spec)
        else:
            ws.data.resolve(base, project, record=False)
    _label_of(ws, spec)
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


def _reference_monitor(ws: Workspace, spec: LoopSpec) -> Monitor:
    """The drift monitor of the loop's deployment whose reference `reference` means: the one an
    alert trigger names, else the only one."""
    drift = [
        m
        for m in ws.monitors.list(spec.project)
        if m.deployment == spec.deployment and m.reference is not None
    ]
    named = {t.target for t in spec.parsed_triggers if t.kind == "alert"}
    preferred = [m for m in drift if m.name in named] or drift
    if len(preferred) != 1:
        raise InvalidInput(
            f"'reference' needs one drift monitor on deployment {spec.deployment!r}; "
            f"there are {len(preferred)}.",
            "Name the base dataset version instead (e.g. churn@3 + labelled predictions of "
            "the last 30d), or make a monitor with `loopml monitor create --reference`.",
        )
    return preferred[0]


def _label_of(ws: Workspace, spec: LoopSpec) -> str:
    if spec.label:
        return spec.label
    from loopml.monitoring.monitors import roles

    drift = [
        m for m in ws.monitors.list(spec.project) if m.deployment == spec.deployment
    ]  # any monitor of the deployment that knows the label column
    for monitor in drift:
        label = roles(ws, monitor).get("label")
        if label:
            return str(label)
    raise InvalidInput(
        f"The label column of deployment {spec.deployment!r} is not known.",
        "Give --label COLUMN, or create its drift monitor with --label.",
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
    """Judge the loop's open watch, then retrain if a trigger fired (or `force`).

    `now_us` runs it as if now were that time (`loopml loop run --at TIME`, to replay a
    history served with its event times): the watch's window and verdict, the `every:`
    schedule and the recent labelled rows are all taken at that time; the records written keep
    their real creation times. A retraining remembered after that time (the loop's creation,
    or a later run) lies in the replay's future: an `every:` schedule is due."""
    ws = workspace or default_workspace()
    project = project or ws.project
    tell = say or (lambda _text: None)
    clock = _now_us if now_us is None else (lambda: now_us)
    with ws.loops.hold(name, project):
        loop = ws.loops.get(name, project)
        outcome = LoopOutcome(name)
        outcome.watched = _judge_watch(ws, loop, tell, clock())
        trigger, loop = _fired(ws, loop, force, clock())
        outcome.triggered = trigger
        if trigger is None:
            outcome.notes.append("no trigger fired")
            return outcome
        loop = ws.loops.remember(loop, replace(loop.state, last_retrain_us=clock()))
        outcome.run = _retrain(ws, loop, trigger, tell, clock)
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


def _fired(ws: Workspace, loop: Loop, force: bool, now: int) -> tuple[str | None, Loop]:
    """The first trigger that fired, and the loop with its alert cursor moved past what it saw."""
    state = loop.state
    targets = {t.target for t in loop.spec.parsed_triggers if t.kind == "alert"}
    fired: str | None = "manual" if force else None
    if targets:
        seen = state.alerts_seen_us
        newest = seen
        for alert in ws.alerts.alerts(loop.spec.project, limit=1000):
            opened = _us(alert.opened_at)
            changed = _us(alert.updated_at)
            fresh = opened > seen or (alert.state == "firing" and changed > seen)
            if alert.target in targets and alert.rule_id and fresh:
                newest = max(newest, opened, changed)
                if fired is None:
                    fired = f"alert:{alert.target} #{alert.id} ({alert.condition})"
        if newest != seen:
            loop = ws.loops.remember(loop, replace(state, alerts_seen_us=newest))
    for trigger in loop.spec.parsed_triggers:
        last = state.last_retrain_us if state.last_retrain_us <= now else None
        due = last is None or now - last >= trigger.every_s * 1_000_000
        if fired is None and trigger.kind == "every" and due:
            fired = trigger.text()
    return fired, loop


def _us(value: Any) -> int:
    return int(value.timestamp() * 1_000_000)


def _retrain(
    ws: Workspace, loop: Loop, trigger: str, tell: Say, clock: Callable[[], int]
) -> LoopRun:
    spec = loop.spec
    model = _model_name(ws, spec)
    champion = _version_or_none(ws, f"{model}@champion", spec.project)
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
    from loopml.monitoring.gate import gate

    label = _label_of(ws, spec)  # one read of the monitor's summary for the whole run
    train_ref, holdout_ref, rows = _build_data(ws, spec, started.id, label, clock())
    current = replace(started, train_data=train_ref, holdout_data=holdout_ref)
    tell(f"loop {spec.name}: training data {train_ref} ({rows:,} rows), holdout {holdout_ref}")
    pipeline_run, challenger, failure = _train(ws, spec, model, train_ref)
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
        return ws.loops.finish_run(
            current,
            "held",
            "the pipeline returned the champion itself (same data and code): nothing new",
        )
    verdict = gate(
        ws,
        model=model,
        candidate=str(challenger),
        against=str(champion),
        data=holdout_ref,
        rules=[*spec.promote_if, *spec.guards],
        label=label,
        project=spec.project,
    )
    scored = replace(
        current,
        scores={"champion": verdict.champion or {}, "challenger": verdict.candidate},
        rules=tuple(verdict.rules) + tuple(verdict.checks),
    )
    failed = [rule for rule, ok, _ in (*verdict.rules, *verdict.checks) if not ok]
    if not verdict.passed:
        why = f"challenger {challenger} kept out: " + "; ".join(
            f"{rule} ({detail})" for rule, ok, detail in (*verdict.rules, *verdict.checks) if not ok
        )
        why += "".join(f"; note: {note}" for note in verdict.notes)
        tell(f"loop {spec.name}: {why}")
        return ws.loops.finish_run(scored, "held", why or f"failed: {failed}")
    summary = ", ".join(f"{r} ({d})" for r, _, d in verdict.rules)
    if spec.mode == "approve":
        ws.registry.set_alias(model, "challenger", challenger, project=spec.project)
        why = (
            f"challenger {challenger} beat champion {champion}: {summary}; waiting for "
            f"`loopml models promote {model} {challenger}`"
        )
        tell(f"loop {spec.name}: {why}")
        return ws.loops.finish_run(scored, "awaiting-approval", why)
    ws.registry.promote(model, challenger, project=spec.project)
    now = clock()
    watch = {
        "state": "watching",
        "since_us": now,
        "until_us": now + spec.watch_s * 1_000_000,
        "model": challenger,
        "previous": champion,
    }
    why = f"promoted {model} {challenger} over {champion}: {summary}"
    tell(f"loop {spec.name}: {why}")
    return ws.loops.finish_run(scored, "promoted", why, watch=watch)


def _fail(ws: Workspace, spec: LoopSpec, run_: LoopRun, why: str, tell: Say) -> LoopRun:
    tell(f"loop {spec.name}: run {run_.id} failed, the champion stays: {why}")
    ws.alerts.notice(spec.project, spec.name, f"retraining failed: {why}"[:480], spec.notify, None)
    return ws.loops.finish_run(run_, "failed", why)


def _model_name(ws: Workspace, spec: LoopSpec) -> str:
    deployment = ws.deployments.get(spec.deployment, spec.project)
    return parse_model_ref(deployment.model_ref).name


def _version_or_none(ws: Workspace, ref: str, project: str) -> int | None:
    try:
        return ws.registry.resolve(ref, project).version
    except LoopmlError:
        return None


# -- the training data ------------------------------------------------------------------------


def _build_data(
    ws: Workspace, spec: LoopSpec, run_id: int, label: str, now_us: int
) -> tuple[str, str, int]:
    """(training version, holdout version, training rows): the bases plus the recent labelled
    rows (of the window ending at `now_us`) not held out; the holdout is the rest of them."""
    import numpy as np
    import pandas as pd

    from loopml.monitoring.monitors import read_dataset

    recipe = spec.data
    recent = _recent_labelled(ws, spec, label, recipe.window_s, now_us)
    unreadable = int(recent.attrs.get("unreadable_rows", 0))
    left_out = f" ({unreadable} more held values that could not be read)" if unreadable else ""
    if len(recent) < spec.min_rows:
        raise InvalidInput(
            f"Only {len(recent)} labelled rows were served by {spec.deployment} in the last "
            f"{recipe.window_s} s{left_out}; the loop needs {spec.min_rows}.",
            "Feed back more labels (POST /feedback), widen the window of the training data, "
            "or lower --min-rows.",
        )
    order = np.random.default_rng(run_id).permutation(len(recent))
    cut = max(1, round(len(recent) * spec.holdout))
    holdout = recent.iloc[order[:cut]].reset_index(drop=True)
    fresh = recent.iloc[order[cut:]].reset_index(drop=True)
    bases, names = [], []
    base_versions = []
    for base in recipe.bases:
        ref = _reference_monitor(ws, spec).reference if base == "reference" else base
        assert ref is not None
        version = ws.data.resolve(ref, spec.project, record=False)
        base_versions.append(version)
        bases.append(read_dataset(ws, version).to_pandas())
        names.append((version.name, f"{version.name}@{version.version}"))
    columns = list(bases[0].columns) if bases else list(recent.columns)
    missing = [c for c in columns if c not in recent.columns]
    if missing:
        raise InvalidInput(
            f"The served rows lack the base data's columns {missing}.",
            "The base tables and the model's inputs (plus the label) must have the same columns.",
        )
    training = pd.concat([*(b[columns] for b in bases), fresh[columns]], ignore_index=True)
    source = f"{len(fresh):,} labelled predictions of {spec.deployment}"
    dataset = names[0][0] if len({n for n, _ in names}) == 1 else f"{spec.name}-train"
    with (
        tempfile.TemporaryDirectory(prefix="loopml-loop-") as folder,
        ws.tracking.start_run(
            project=spec.project,
            name=f"loop {spec.name} run {run_id}: training data",
            tags={"loopml.loop": spec.name, "loopml.kind": "loop-data"},
            capture_environment=False,
        ) as making,
    ):
        for version in base_versions:
            making.use_dataset(version)
        making.log_params(
            {
                "deployment": spec.deployment,
                "recent_window_s": recipe.window_s,
                "recent_rows": len(recent),
                "unreadable_rows_left_out": unreadable,
                "holdout_rows": len(holdout),
                "seed": run_id,
            }
        )
        train_path = Path(folder) / "train.parquet"
        holdout_path = Path(folder) / "holdout.parquet"
        training.to_parquet(train_path, index=False)
        holdout[columns].to_parquet(holdout_path, index=False)
        made = ws.data.add(
            train_path,
            name=dataset,
            project=spec.project,
            message=" + ".join([*(ref for _, ref in names), source])
            + f" (loop {spec.name} run {run_id})",
        ).version
        held = ws.data.add(
            holdout_path,
            name=f"{spec.name}-holdout",
            project=spec.project,
            message=f"{len(holdout):,} recent labelled rows held out (loop {spec.name} run "
            f"{run_id})",
        ).version
        refs = f"{made.name}@{made.version}", f"{held.name}@{held.version}"
        making.set_tags({f"{PRODUCES_TAG}train": refs[0], f"{PRODUCES_TAG}holdout": refs[1]})
    return refs[0], refs[1], len(training)


def _recent_labelled(ws: Workspace, spec: LoopSpec, label: str, window_s: int, end: int) -> Any:
    """The deployment's served rows of the `window_s` before `end` (by the rows' time: event
    time, else serving time) that have a label, as a DataFrame of the inputs plus the label
    column."""
    return _labelled(ws, spec.deployment, label, start_us=end - window_s * 1_000_000, end_us=end)


def _labelled(
    ws: Workspace, deployment: str, label: str, *, start_us: int, end_us: int, version: int = 0
) -> Any:
    """The labelled rows `deployment` served in the window (of model `version`, if given): the
    inputs, the label and the output (`__output`). A row holding a value that cannot be read
    (see `loopml.monitoring.jsonl`), or whose label or output is null, is left out; how many
    were unreadable is `frame.attrs["unreadable_rows"]`."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    from loopml.monitoring.jsonl import read_objects, read_values
    from loopml.monitoring.monitors import read_served

    served = read_served(ws, deployment, start_us, end_us)
    served = served.filter(pc.invert(pc.is_null(served["label_json"])))
    if version:
        served = served.filter(pc.equal(served["model_version"], version))
    if served.num_rows == 0:
        return pd.DataFrame()
    inputs = read_objects(served["inputs_json"])
    labels, outputs = read_values(served["label_json"]), read_values(served["output_json"])
    table = inputs.table.drop_columns(
        [c for c in (label, "__output") if c in inputs.table.column_names]
    )
    table = table.append_column(label, labels.table["value"])
    table = table.append_column("__output", outputs.table["value"])
    unreadable = inputs.bad_rows() | labels.bad_rows() | outputs.bad_rows()
    unscored = pc.or_(pc.is_null(table[label]), pc.is_null(table["__output"]))
    keep = pc.and_(pa.array(~unreadable), pc.invert(unscored))
    frame = table.filter(keep).to_pandas()
    frame.attrs["unreadable_rows"] = int(unreadable.sum())
    return frame


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


# -- the watch ---------------------------------------------------------------------------------


def _judge_watch(ws: Workspace, loop: Loop, tell: Say, now: int) -> LoopRun | None:
    """Conclude or continue the watch of the loop's latest promotion, at time `now`; returns
    the run when its watch changed."""
    spec = loop.spec
    recent = ws.loops.history(spec.name, spec.project, 20)
    _start_approved_watch(ws, spec, recent, now)
    promoted = [
        r
        for r in ws.loops.history(spec.name, spec.project, 20)
        if r.watch.get("state") == "watching"
    ]
    if not promoted:
        return None
    watched, *older = promoted
    for stale in older:  # a newer promotion ends any older watch
        _set_watch(ws, stale, "superseded", f"run {watched.id} promoted a newer champion", now)
    model = _model_name(ws, spec)
    new = int(watched.watch["model"])
    champion = _version_or_none(ws, f"{model}@champion", spec.project)
    if champion != new:
        return _set_watch(
            ws, watched, "superseded", f"{model}@champion moved to {champion} meanwhile", now
        )
    return _judge_traffic(ws, spec, watched, model, tell, now=now)


def _judge_traffic(
    ws: Workspace, spec: LoopSpec, watched: LoopRun, model: str, tell: Say, *, now: int
) -> LoopRun | None:
    """Roll back when the new champion served worse than the old one would have on the same
    labelled rows; keep it when the watch is over (at `now`); else go on watching."""
    new, previous = int(watched.watch["model"]), int(watched.watch["previous"])
    label = _label_of(ws, spec)
    since = int(watched.watch["since_us"])
    rows = _labelled(ws, spec.deployment, label, start_us=since, end_us=now, version=new)
    over = now >= int(watched.watch["until_us"])
    if len(rows) < spec.min_rows:
        if over:
            return _set_watch(
                ws,
                watched,
                "kept",
                f"only {len(rows)} labelled rows served by {new} during the watch "
                f"(fewer than {spec.min_rows}): not enough to judge",
                now,
            )
        return None
    metric = spec.watch_metric
    new_score, old_score = _watch_scores(
        ws, model, previous, rows, label=label, metric=metric, project=spec.project
    )
    worse = (
        new_score > old_score + spec.rollback_margin
        if metric in LOWER_IS_BETTER
        else new_score < old_score - spec.rollback_margin
    )
    scores = {"served": new_score, "previous_on_same_rows": old_score, "rows": len(rows)}
    if worse:
        ws.registry.rollback(model, project=spec.project)
        why = (
            f"{model} {new} served {metric} {new_score:.4f} on {len(rows)} labelled rows; "
            f"{model} {previous} would have scored {old_score:.4f} (margin "
            f"{spec.rollback_margin:g}): rolled back to {previous}"
        )
        tell(f"loop {spec.name}: {why}")
        ws.alerts.notice(spec.project, spec.name, f"rolled back: {why}"[:480], spec.notify, None)
        return _set_watch(ws, watched, "rolled-back", why, now, metric=metric, scores=scores)
    if over:
        why = (
            f"{model} {new} served {metric} {new_score:.4f} on {len(rows)} labelled rows "
            f"vs {old_score:.4f} for {model} {previous} on the same rows: kept"
        )
        tell(f"loop {spec.name}: {why}")
        return _set_watch(ws, watched, "kept", why, now, metric=metric, scores=scores)
    return None


def _start_approved_watch(ws: Workspace, spec: LoopSpec, recent: list[LoopRun], now: int) -> None:
    """A challenger a person promoted (mode approve) is watched from the first run that sees
    it as champion."""
    waiting = [r for r in recent if r.status == "awaiting-approval" and r.challenger]
    if not waiting:
        return
    model = _model_name(ws, spec)
    champion = _version_or_none(ws, f"{model}@champion", spec.project)
    for run_ in waiting:
        if run_.challenger != champion:
            continue
        watch = {
            "state": "watching",
            "since_us": now,
            "until_us": now + spec.watch_s * 1_000_000,
            "model": run_.challenger,
            "previous": run_.champion,
        }
        approved = replace(
            run_, status="promoted", reason=f"{run_.reason}; promoted by a person", watch=watch
        )
        ws.loops.update_run(approved, "loop.approved")
        return


def _watch_scores(
    ws: Workspace, model: str, previous: int, rows: Any, *, label: str, metric: str, project: str
) -> tuple[float, float]:
    """`metric` of what was served, and of the previous champion on the same inputs."""
    import numpy as np

    from loopml.monitoring.performance import score

    version = ws.registry.resolve(f"{model}/{previous}", project)
    inputs = [c["name"] for c in version.signature.get("inputs", [])]
    loaded = ws.registry.load(version.ref, project=project)
    features = rows[inputs] if inputs else rows.drop(columns=[label, "__output"])
    truth = rows[label].to_numpy()
    _, served = score(rows["__output"].to_numpy(), truth)
    _, before = score(np.asarray(loaded.predict(features)), truth)
    if metric not in served or metric not in before:
        raise InvalidInput(
            f"The watch compares {metric!r}, which served predictions do not give.",
            "Put a metric of the predictions themselves (accuracy, f1, rmse, ...) first in "
            "--promote-if.",
        )
    return float(served[metric]), float(before[metric])


def _set_watch(
    ws: Workspace, run_: LoopRun, state: str, why: str, now: int, **more: Any
) -> LoopRun:
    watch = {**run_.watch, "state": state, "why": why, "ended_us": now, **more}
    return ws.loops.update_run(replace(run_, watch=watch), f"loop.watch_{state}")
