"""Whether a loop should retrain: the facts one run gathers for `decide_trigger` (an alert of
a trigger opened since the loop last looked, a schedule due, new labelled rows, a performance
drop of the champion on its own served rows, a drop of the label-free accuracy estimate)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from loopml.bootstrap import Workspace
from loopml.domain.loop_decisions import TriggerFacts, estimate_drop, performance_drop
from loopml.domain.loop_triggers import Trigger
from loopml.domain.loops import Loop, LoopRun, LoopSpec
from loopml.errors import LoopmlError
from loopml.loops import data as loop_data
from loopml.loops.watch import LOWER_IS_BETTER, model_name, version_or_none


def timestamp_us(value: Any) -> int:
    """A datetime as microseconds since the epoch."""
    return int(value.timestamp() * 1_000_000)


def gather_facts(
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
        opened, changed = timestamp_us(alert.opened_at), timestamp_us(alert.updated_at)
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
