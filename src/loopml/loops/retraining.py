"""One retraining of a loop, and a waiting challenger judged again: the training data and
holdout built, the pipeline run, challenger and champion scored on the same fresh holdout, and
the decision carried out (promote after an optional refit and open a watch, wait for approval,
hold, wait for more rows); a failure anywhere leaves the champion serving and is recorded."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from loopml.bootstrap import Workspace
from loopml.domain.loop_decisions import (
    PromotionFacts,
    RuleResult,
    RunState,
    check_move,
    decide_promotion,
    rule_result,
)
from loopml.domain.loops import Loop, LoopRun, LoopSpec
from loopml.domain.paired import Verdict
from loopml.errors import InvalidInput, LoopmlError
from loopml.loops import data as loop_data
from loopml.loops import watch as watches
from loopml.loops.watch import Say, model_name, version_or_none


def retrain(
    ws: Workspace, loop: Loop, trigger: str, tell: Say, clock: Callable[[], int]
) -> LoopRun:
    """One retraining started by `trigger`, recorded as a loop run from start to decision; any
    failure ends it failed, the champion serving."""
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
    pipeline_run, challenger, failure = train_challenger(ws, spec, model, built.train_ref)
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
        return finish(
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
        return finish(ws, scored, decision.state, why)
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
        return finish(ws, scored, RunState.AWAITING_APPROVAL, why)
    watches.conclude(ws, spec, tell, now)  # one watch at a time
    ws.registry.promote(model, winner, project=spec.project)
    refit = f" (refit of {challenger} on its training and holdout rows)" if scored.refit else ""
    why = f"promoted {model} {winner}{refit} over {champion}: {decision.reason}"
    trained_on = scored.refit_data or str(scored.train_data)
    why += "".join(f"; {note}" for note in loop_data.follow_reference(ws, spec, trained_on))
    tell(f"loop {spec.name}: {why}")
    return finish(
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
    _, refit, failure = train_challenger(ws, spec, model, data)
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


def waiting_run(ws: Workspace, spec: LoopSpec) -> LoopRun | None:
    """The loop's challenger waiting for more labelled rows, if any."""
    recent = ws.loops.history(spec.name, spec.project, 20)
    return next((r for r in recent if r.status == RunState.WAITING), None)


def decide_waiting(ws: Workspace, spec: LoopSpec, waiting: LoopRun, tell: Say, now: int) -> LoopRun:
    """Judge a waiting challenger again, its holdout grown by the labelled rows served since
    its data was read (it never trained on them)."""
    model = model_name(ws, spec)
    champion = version_or_none(ws, f"{model}@champion", spec.project)
    if champion != waiting.champion:
        why = f"{model}@champion moved to {champion} meanwhile"
        return finish(ws, waiting, RunState.HELD, f"{waiting.reason}; {why}")
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


def finish(ws: Workspace, run_: LoopRun, state: RunState, reason: str, **changes: Any) -> LoopRun:
    """Record the run's move to `state` (refused unless the run's states allow it)."""
    check_move(RunState(run_.status), state)
    return ws.loops.finish_run(run_, str(state), reason, **changes)


def _fail(ws: Workspace, spec: LoopSpec, run_: LoopRun, why: str, tell: Say) -> LoopRun:
    tell(f"loop {spec.name}: run {run_.id} failed, the champion stays: {why}")
    ws.alerts.notice(spec.project, spec.name, f"retraining failed: {why}"[:480], spec.notify, None)
    return finish(ws, run_, RunState.FAILED, why)


def train_challenger(
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
