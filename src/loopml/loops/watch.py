"""The watch of a promoted champion: it is compared, on the labelled rows it served since its
promotion, with the champion it replaced on the same rows; surely worse beyond the margin (at
the loop's confidence) means a rollback and an alert. One watch at a time: a newer promotion
first concludes the running watch with the evidence so far."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from loopml.bootstrap import Workspace
from loopml.domain.loop_decisions import WatchFacts, WatchState, judge_watch, watch_rule
from loopml.domain.loops import LoopRun, LoopSpec
from loopml.errors import InvalidInput, LoopmlError
from loopml.loops.data import OUTPUT, TIME, label_of, labelled

Say = Callable[[str], None]
LOWER_IS_BETTER = frozenset({"log_loss", "mae", "rmse", "latency_p50_ms", "latency_p99_ms"})


def model_name(ws: Workspace, spec: LoopSpec) -> str:
    from loopml.domain.refs import parse_model_ref

    deployment = ws.deployments.get(spec.deployment, spec.project)
    return parse_model_ref(deployment.model_ref).name


def version_or_none(ws: Workspace, ref: str, project: str) -> int | None:
    try:
        return ws.registry.resolve(ref, project).version
    except LoopmlError:
        return None


def watching(ws: Workspace, spec: LoopSpec) -> list[LoopRun]:
    """The loop's runs whose watch is open, newest first."""
    return [
        r
        for r in ws.loops.history(spec.name, spec.project, 20)
        if r.watch.get("state") == WatchState.WATCHING
    ]


def judge(ws: Workspace, spec: LoopSpec, tell: Say, now: int) -> LoopRun | None:
    """Conclude or continue the watch of the loop's latest promotion at time `now`; returns
    the run when its watch changed."""
    start_approved(ws, spec, now)
    promoted = watching(ws, spec)
    if not promoted:
        return None
    watched, *older = promoted
    for stale in older:  # from before watches were one at a time
        set_watch(ws, stale, WatchState.SUPERSEDED, f"run {watched.id} promoted later", now)
    model = model_name(ws, spec)
    champion = version_or_none(ws, f"{model}@champion", spec.project)
    if champion != int(watched.watch["model"]):
        why = f"{model}@champion moved to {champion} meanwhile"
        return set_watch(ws, watched, WatchState.SUPERSEDED, why, now)
    return judge_traffic(ws, spec, watched, model, tell, now=now)


def judge_traffic(
    ws: Workspace,
    spec: LoopSpec,
    watched: LoopRun,
    model: str,
    tell: Say,
    *,
    now: int,
    concluding: bool = False,
) -> LoopRun | None:
    """Roll back when the new champion surely served worse than the old one would have on the
    same labelled rows; keep it when the watch is over (or `concluding`: a newer promotion
    ends it with the evidence so far, without a rollback); else go on watching."""
    new, previous = int(watched.watch["model"]), int(watched.watch["previous"])
    label = label_of(ws, spec)
    since = int(watched.watch["since_us"])
    rows = labelled(ws, spec.deployment, label, start_us=since, end_us=now, version=new)
    over = concluding or now >= int(watched.watch["until_us"])
    metric = spec.watch_metric
    outcome, scores = None, {"rows": float(len(rows))}
    if len(rows) >= spec.min_rows:
        outcome, served, before = _compare(ws, spec, model, previous, rows, label=label)
        scores |= {"served": served, "previous_on_same_rows": before}
    verdict = judge_watch(WatchFacts(len(rows), spec.min_rows, over, outcome))
    if verdict.state is WatchState.WATCHING:
        return None
    if concluding and verdict.state is WatchState.ROLLED_BACK:
        why = f"ended by a newer promotion, worse than {model} {previous}: {verdict.reason}"
        return set_watch(ws, watched, WatchState.KEPT, why, now, metric=metric, scores=scores)
    if verdict.state is WatchState.ROLLED_BACK:
        ws.registry.rollback(model, project=spec.project)
        why = (
            f"{model} {new} served {metric} {scores['served']:.4f} on {len(rows)} labelled rows; "
            f"{model} {previous} would have scored {scores['previous_on_same_rows']:.4f} "
            f"(margin {spec.rollback_margin:g}; {verdict.reason}): rolled back to {previous}"
        )
        tell(f"loop {spec.name}: {why}")
        ws.alerts.notice(spec.project, spec.name, f"rolled back: {why}"[:480], spec.notify, None)
        return set_watch(ws, watched, verdict.state, why, now, metric=metric, scores=scores)
    why = f"{model} {new} against {model} {previous} on the same rows: {verdict.reason}: kept"
    tell(f"loop {spec.name}: {why}")
    return set_watch(ws, watched, verdict.state, why, now, metric=metric, scores=scores)


def conclude(ws: Workspace, spec: LoopSpec, tell: Say, now: int) -> None:
    """Before a new promotion: end the running watch with the evidence so far."""
    model = model_name(ws, spec)
    for watched in watching(ws, spec):
        judged = judge_traffic(ws, spec, watched, model, tell, now=now, concluding=True)
        if judged is None:  # too few rows: judge_watch keeps it when concluding
            set_watch(ws, watched, WatchState.KEPT, "ended by a newer promotion", now)


def start_approved(ws: Workspace, spec: LoopSpec, now: int) -> None:
    """A challenger a person promoted (mode approve) is watched from the first run that sees
    it as champion."""
    waiting = [
        r
        for r in ws.loops.history(spec.name, spec.project, 20)
        if r.status == "awaiting-approval" and r.challenger
    ]
    if not waiting:
        return
    model = model_name(ws, spec)
    champion = version_or_none(ws, f"{model}@champion", spec.project)
    for run_ in waiting:
        if run_.challenger is None or run_.challenger != champion:
            continue
        approved = replace(
            run_,
            status="promoted",
            reason=f"{run_.reason}; promoted by a person",
            watch=new_watch(spec, run_.challenger, run_.champion, now),
        )
        ws.loops.update_run(approved, "loop.approved")
        return


def new_watch(spec: LoopSpec, model: int, previous: int | None, now: int) -> dict[str, Any]:
    return {
        "state": str(WatchState.WATCHING),
        "since_us": now,
        "until_us": now + spec.watch_s * 1_000_000,
        "model": model,
        "previous": previous,
    }


def _compare(
    ws: Workspace, spec: LoopSpec, model: str, previous: int, rows: Any, *, label: str
) -> tuple[Any, float, float]:
    """The paired rule `new >= old - margin` on the watched rows, and both scores."""
    import numpy as np

    from loopml.domain.paired import PAIRED_METRICS, PairedRows, decide

    metric = spec.watch_metric
    if metric not in PAIRED_METRICS:
        raise InvalidInput(
            f"The watch compares {metric!r}, which served predictions do not give.",
            "Put a metric of the predictions themselves (accuracy, f1, rmse, ...) first in "
            "--promote-if.",
        )
    version = ws.registry.resolve(f"{model}/{previous}", spec.project)
    inputs = [c["name"] for c in version.signature.get("inputs", [])]
    loaded = ws.registry.load(version.ref, project=spec.project)
    features = rows[inputs] if inputs else rows.drop(columns=[label, OUTPUT, TIME])
    truth = rows[label].to_numpy()
    served, before = rows[OUTPUT].to_numpy(), np.asarray(loaded.predict(features))
    op, margin = watch_rule(spec.rollback_margin, metric in LOWER_IS_BETTER)
    outcome = decide(
        PairedRows(truth, served, before),
        metric=metric,
        op=op,
        margin=margin,
        confidence=spec.confidence,
    )
    return outcome, outcome.candidate, outcome.champion


def set_watch(
    ws: Workspace, run_: LoopRun, state: WatchState, why: str, now: int, **more: Any
) -> LoopRun:
    watch = {**run_.watch, "state": str(state), "why": why, "ended_us": now, **more}
    return ws.loops.update_run(replace(run_, watch=watch), f"loop.watch_{state}")
