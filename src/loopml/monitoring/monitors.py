"""Monitors over the prediction log: a deployment's served rows in a sliding window, compared
with a reference dataset version summarised once, every run stored and audited.

    monitor = create("churn-drift", deployment="churn-prod", reference="churn@3", window="1h")
    result = run("churn-drift")           # one evaluation over the latest window
    result.report.drifted_features ; result.run.id

The window is `[now - window, now)` of the deployment's log by each row's time (its event time
when the request gave one, else its serving time), shadow rows left out (they were never
answered); `run(name, now_us=...)` (`loopml monitor run --at TIME`) evaluates as if now were
that time, so a history served with its event times replays window by window.

Inputs come from the log's JSON column, parsed for the whole window at once by Arrow and read
as the reference's column kinds (`loopml.monitoring.json_columns`): whatever the log holds, a value
a column cannot read (a boolean in a numeric column, an object, NaN) is null in the window and
a finding of the report's quality section, counted by column and kind with example
request ids, and the run completes. Columns of the reference the model does not take (a label, an
id) are not compared. A run that has nothing to look at (no rows, no shared column) stores nothing
and says why.

The drift share counts the model's inputs only; the label (against the labels fed back) and the
prediction (against the model's outputs on the reference) are compared and reported apart
(`label_drift`, `prediction_drift`). `weighted_drift` is the share of the model's importance on
the drifted inputs, from importances read once when the monitor is made (`importance_source`
says whether they were the model's or equal weights). The alerts a run fired and resolved are
on its result (`MonitorResult.alerts`).

`run_due` (the schedulers' call) isolates failures: a monitor that fails is reported and
recorded as a notice alert on it (told to the channels of the rules on it), resolved by its next
successful run; no run is stored for it, so its rules see no fake healthy window. A monitor
whose window is empty is skipped, not failed.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from loopml.bootstrap import Workspace, default_workspace
from loopml.domain.alerts import MAX_RESOLVE_AFTER, parse_condition
from loopml.domain.durations import parse_duration
from loopml.domain.importance import MODEL
from loopml.domain.records import Alert, Monitor, MonitorRun
from loopml.errors import InvalidInput, LoopmlError
from loopml.monitoring.drift import DriftReport, Reference
from loopml.monitoring.health import probe
from loopml.monitoring.references import PREDICTION, read_dataset, summarize_reference
from loopml.monitoring.window import fold_window, read_served, read_window

__all__ = [
    "PREDICTION",
    "MonitorResult",
    "NothingToMonitor",
    "create",
    "failure_text",
    "read_dataset",
    "read_served",
    "read_window",
    "report_document",
    "roles",
    "run",
    "run_due",
]
"""What callers take from here; `read_served` and `read_window` live in
`loopml.monitoring.window`, `read_dataset` and `PREDICTION` in `loopml.monitoring.references`."""

_log = logging.getLogger("loopml.monitoring")
VOLUME_HISTORY = 10
"""Previous windows whose median row count is the volume norm."""
FAILED = "monitor run"
"""What a failure notice of a monitor is about: its condition reads `monitor run failed: ...`."""


class NothingToMonitor(InvalidInput):
    """The window holds no served row: nothing compared, nothing stored; not a failure."""


@dataclass(frozen=True)
class MonitorResult:
    run: MonitorRun
    report: DriftReport | None
    """The drift report (None for a health probe)."""
    alerts: list[Alert]
    """Alerts this run fired or resolved."""
    document: dict[str, Any]
    """What was stored: the report with the window, quality, or the probe's findings."""


def create(
    name: str,
    *,
    deployment: str,
    reference: str | None = None,
    probe: str | None = None,
    label: str | None = None,
    model: str | None = None,
    window: str | int = "1h",
    every: str | int = "10m",
    project: str | None = None,
    workspace: Workspace | None = None,
) -> Monitor:
    """Create (or replace) monitor `name`. With `reference` (a dataset version) it watches
    drift: the reference is summarised once, here, and stored. With `probe` (the server's base
    URL) it watches health. `window` and `every` are durations (`10m`, `1h`) or seconds.

    Drift of the model's output: the reference gets a `prediction` column, the predictions of
    `model` (default: the stored deployment's model) on the reference rows. Drift of the labels:
    `label` names the reference's label column, compared with the labels fed back; without it,
    when the model is known, the one reference column the model does not take is the label.
    Other columns the model does not take are left out: the server never sees them.

    The model's importance per input (`feature_importances_`, or the magnitudes of `coef_`) is
    read here, once, and kept with the summary: runs weigh drifted inputs by it
    (`weighted_drift`); a model without importances gives every input the same weight."""
    ws = workspace or default_workspace()
    project = project or ws.project
    window_s, every_s = _seconds(window), _seconds(every)
    pinned, digest = None, None
    if reference is not None:
        pinned, summary = summarize_reference(
            ws, reference, deployment=deployment, model=model, label=label, project=project
        )
        digest = ws.blobs.put_bytes(json.dumps(summary).encode()).digest
    monitor, _ = ws.monitors.save(
        name,
        project=project,
        deployment=deployment,
        reference=pinned,
        summary_digest=digest,
        window_s=window_s,
        every_s=every_s,
        probe_url=probe,
    )
    return monitor


def roles(ws: Workspace, monitor: Monitor) -> dict[str, Any]:
    """What the drift monitor's reference columns mean: `label` (the label column, or None)
    and `prediction`; empty for a health monitor."""
    if monitor.summary_digest is None:
        return {}
    stored = json.loads(ws.blobs.read_bytes(monitor.summary_digest))
    return dict(stored.get("roles") or {})


def run(
    name: str,
    *,
    now_us: int | None = None,
    project: str | None = None,
    workspace: Workspace | None = None,
) -> MonitorResult:
    """Evaluate monitor `name` over the window ending now (or at `now_us`); store the report."""
    ws = workspace or default_workspace()
    project = project or ws.project
    monitor = ws.monitors.get(name, project)
    end = now_us if now_us is not None else time.time_ns() // 1000
    start = end - monitor.window_s * 1_000_000
    if monitor.summary_digest is None:
        draft, document = probe(ws, monitor, start, end)
        return _record(ws, draft, document, None)
    stored = json.loads(ws.blobs.read_bytes(monitor.summary_digest))
    reference, roles = Reference.from_dict(stored), stored.get("roles") or {}
    window = fold_window(ws, monitor.deployment, start, end, reference=reference, roles=roles,
                         keep_as=monitor.summary_digest, now_us=end)  # fmt: skip
    if window.rows == 0:
        raise NothingToMonitor(
            f"Deployment {monitor.deployment!r} served no rows between {_when(start)} and "
            f"{_when(end)}, so monitor {name!r} has nothing to compare; nothing was stored.",
            "Check the deployment name and that the server logs predictions, or widen the "
            "window (`loopml monitor create ... --window 1d`).",
        )
    previous = [r.rows for r in ws.monitors.history(name, project, VOLUME_HISTORY)]
    quality = window.quality.report(previous, unreadable=window.unreadable())
    shared = window.comparable()
    if not shared:
        lost = window.unreadable_values()
        lost_text = f" ({lost} values could not be read)" if lost else ""
        raise InvalidInput(
            f"The served rows of {monitor.deployment!r} share no readable column with the "
            f"reference {monitor.reference} ({', '.join(reference.kinds)}){lost_text}; nothing "
            "was stored.",
            "Point the monitor at the dataset the model was trained on.",
        )
    kept = stored.get("importance") or {}
    report = window.drift.report(
        shared,
        label=roles["label"] if roles.get("label") in shared else None,
        prediction=PREDICTION if roles.get("prediction") and PREDICTION in shared else None,
        importance=kept.get("weights") if kept.get("source") == MODEL else None,
    )
    performance = window.performance.report(_model_metrics(ws, window.model_served_most(), project))
    estimated = performance.get("estimated", {})
    document = {
        "monitor": name,
        "deployment": monitor.deployment,
        "reference": monitor.reference,
        "window_start_us": start,
        "window_end_us": end,
        **report.to_dict(),
        "quality_issues": quality["issue_count"],
        "unreadable_values": quality["unreadable_values"],
        "quality": quality,
        **performance["metrics"],
        **{f"estimated_{k}": estimated[k] for k in ("accuracy", "roc_auc") if k in estimated},
        "performance": performance,
    }
    digest = ws.blobs.put_bytes(json.dumps(document).encode()).digest
    draft = MonitorRun(
        0,
        project,
        name,
        monitor.created_at,  # the store stamps the real time
        start,
        end,
        window.rows,
        report.drift_share,
        tuple(report.drifted_features),
        digest,
        report.weighted_drift,
    )
    return _record(ws, draft, document, report)


def _record(
    ws: Workspace, draft: MonitorRun, document: dict[str, Any], report: DriftReport | None
) -> MonitorResult:
    recorded = ws.monitors.record_run(draft)
    deployment = document.get("deployment")
    recent = _recent(ws, recorded, document, deployment)
    alerts = ws.alerts.evaluate(
        draft.project, draft.monitor, recent, draft.window_end_us, deployment
    )
    return MonitorResult(recorded, report, alerts, document)


def run_due(
    *, now_us: int | None = None, project: str | None = None, workspace: Workspace | None = None
) -> list[tuple[str, MonitorResult | Exception]]:
    """Run every monitor whose last run, or last failure, is at least its schedule ago (or that
    never ran). One that fails (any exception) is reported with its error and does not stop
    the others: it is recorded on a notice alert on it (`AlertService.failing`: opened and
    told once, then counted), resolved by its next success. One whose window is empty is
    reported with a `NothingToMonitor`, and neither stored nor alerted."""
    ws = workspace or default_workspace()
    project = project or ws.project
    now = now_us if now_us is not None else time.time_ns() // 1000
    failing = ws.alerts.failures(project, FAILED)
    done: list[tuple[str, MonitorResult | Exception]] = []
    for monitor in ws.monitors.list(project):
        if not _due(ws, monitor, failing.get(monitor.name), now):
            continue
        try:
            result = run(monitor.name, now_us=now, project=project, workspace=ws)
        except NothingToMonitor as exc:
            done.append((monitor.name, exc))
            continue
        except Exception as exc:  # one broken monitor must not stop the others
            _log.warning("monitor %s/%s failed", project, monitor.name, exc_info=exc)
            done.append((monitor.name, exc))
            _notice(ws, monitor, failure_text(ws, exc))
            continue
        done.append((monitor.name, result))
        if monitor.name in failing:
            _notice(ws, monitor, None)
    return done


def _due(ws: Workspace, monitor: Monitor, failure: Alert | None, now_us: int) -> bool:
    """Whether the monitor's schedule has come: since its last run, or its last failure (a
    failing monitor is tried again on its schedule, not at every tick)."""
    last = ws.monitors.history(monitor.name, monitor.project, 1)
    since = last[0].window_end_us if last else None
    if failure is not None:
        failed_us = int(failure.updated_at.timestamp() * 1_000_000)
        since = failed_us if since is None else max(since, failed_us)
    return since is None or now_us - since >= monitor.every_s * 1_000_000


def failure_text(ws: Workspace, error: BaseException) -> str:
    """What went wrong, for a notice people read: a loopml error's own words; any other error's
    type and first line, without the workspace's paths."""
    if isinstance(error, LoopmlError):
        text = str(error)
    else:
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        text = f"{type(error).__name__}: {first}" if first else type(error).__name__
    for path in {str(ws.settings.home), ws.settings.artifacts_url}:
        if path:
            text = text.replace(path, "<workspace>")
    return text


def _notice(ws: Workspace, monitor: Monitor, failure: str | None) -> None:
    """Open (`failure`) or resolve (None) the monitor's failure notice, told to the channels of
    the rules that listen to it; recording it must not stop the schedule either."""
    try:
        rules = ws.alerts.rules_for(monitor.project, monitor.name, monitor.deployment)
        channels = list(dict.fromkeys(c for rule in rules for c in rule.channels))
        if failure is None:
            ws.alerts.recovered(monitor.project, monitor.name, FAILED, channels)
        else:
            ws.alerts.failing(monitor.project, monitor.name, FAILED, failure, channels)
    except Exception:  # the database itself may be what fails: the log keeps it
        _log.exception("the failure notice of monitor %s/%s", monitor.project, monitor.name)


ALERT_HISTORY = 50
"""Runs an alert rule can look back over (`for N windows`, `for DURATION`) from the latest
run; a rule that resolves after N runs looks back as far from each of those (N - 1 more)."""
_ON_EVERY_RUN = frozenset({"rows", "drift_share", "drifted_count", "weighted_drift"})
"""Fields kept on the run record itself; any other is read from the stored reports."""


def _recent(
    ws: Workspace, latest: MonitorRun, document: dict[str, Any], deployment: str | None
) -> list[tuple[int, dict[str, Any]]]:
    """(window end, report fields) of the monitor's latest runs, newest first. Older runs'
    per-feature numbers are read from their stored reports only if a rule asks for them."""
    rules = ws.alerts.rules_for(latest.project, latest.monitor, deployment)
    after = max((min(rule.resolve_after, MAX_RESOLVE_AFTER) for rule in rules), default=1)
    runs = ws.monitors.history(latest.monitor, latest.project, ALERT_HISTORY + after - 1)
    wants_documents = any(
        parse_condition(rule.condition).field not in _ON_EVERY_RUN for rule in rules
    )
    recent = []
    for run in runs:
        if run.id == latest.id:
            fields = document
        elif wants_documents:
            fields = json.loads(ws.blobs.read_bytes(run.report_digest))
        else:
            fields = {
                "rows": run.rows,
                "drift_share": run.drift_share,
                "drifted_count": len(run.drifted),
                "weighted_drift": run.weighted_drift,
            }
        recent.append((run.window_end_us, fields))
    return recent


def report_document(
    run_id: int, *, project: str | None = None, workspace: Workspace | None = None
) -> dict[str, Any]:
    """The full stored report of monitor run `run_id` (JSON, `schema_version` 1)."""
    ws = workspace or default_workspace()
    found = ws.monitors.run(run_id, project or ws.project)
    document: dict[str, Any] = json.loads(ws.blobs.read_bytes(found.report_digest))
    return {"run": found.id, **document}


def _model_metrics(
    ws: Workspace, served_most: tuple[str, int] | None, project: str
) -> dict[str, float]:
    """The evaluation metrics registered with the model version that served most rows."""
    if served_most is None:
        return {}
    model, version = served_most
    try:
        found = ws.registry.resolve(f"{model}/{version}", project)
    except LoopmlError:  # the version was deleted or lives elsewhere: nothing to compare with
        return {}
    return dict(found.metrics)


def _seconds(value: str | int) -> int:
    if isinstance(value, int):
        if value <= 0:
            raise InvalidInput(f"The duration {value} s is not positive.", "Give 10m, 1h, ...")
        return value
    return parse_duration(value)


def _when(time_us: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(time_us / 1e6, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
