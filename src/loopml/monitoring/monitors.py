"""Monitors over the prediction log: a deployment's served rows in a sliding window, compared
with a reference dataset version summarised once, every run stored and audited.

    monitor = create("churn-drift", deployment="churn-prod", reference="churn@3", window="1h")
    result = run("churn-drift")           # one evaluation over the latest window
    result.report.drifted_features ; result.run.id

The window is `[now - window, now)` of the deployment's log, shadow rows left out (they were
never answered). Inputs come from the log's JSON column, parsed for the whole window at once by
Arrow. Columns of the reference the model does not take (a label, an id) are not compared.
A run that has nothing to look at (no rows, no shared column) stores nothing and says why.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from loopml.bootstrap import Workspace, default_workspace, prediction_log_reader
from loopml.domain.alerts import parse_condition
from loopml.domain.durations import parse_duration
from loopml.domain.records import Alert, Monitor, MonitorRun
from loopml.errors import InvalidInput, LoopmlError
from loopml.monitoring.drift import DriftReport, Reference, compare, summarize
from loopml.monitoring.jsonl import read_objects as parse_inputs
from loopml.monitoring.performance import evaluate, json_values
from loopml.monitoring.quality import check, coerce

LOG_COLUMNS = [
    "request_id",
    "time_us",
    "model",
    "model_version",
    "inputs_json",
    "output_json",
    "proba_json",
    "shadow",
]
VOLUME_HISTORY = 10
"""Previous windows whose median row count is the volume norm."""


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
    `label` names the reference's label column, compared with the labels fed back."""
    ws = workspace or default_workspace()
    project = project or ws.project
    window_s, every_s = _seconds(window), _seconds(every)
    pinned, digest = None, None
    if reference is not None:
        version = ws.data.resolve(reference, project, record=False)
        pinned = f"{version.name}@{version.version}"
        if version.schema is None:
            raise InvalidInput(
                f"Dataset {pinned} has no table profile, so it cannot be a reference.",
                "Use a version made from one CSV, TSV or Parquet file (`loopml data add FILE`).",
            )
        table = read_dataset(ws, version)
        if label is not None and label not in table.column_names:
            raise InvalidInput(
                f"The reference {pinned} has no column {label!r} to take labels from.",
                f"Choose among: {', '.join(table.column_names)}.",
            )
        table, categorical = _with_predictions(ws, table, deployment, model, project)
        roles = {
            "label": label,
            "prediction": PREDICTION if PREDICTION in table.column_names else None,
        }
        if label is not None and table.schema.field(label).type != pa.float64():
            categorical.append(label)
        summary = {**summarize(table, categorical=categorical).to_dict(), "roles": roles}
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
        return _probe(ws, monitor, start, end)
    stored = json.loads(ws.blobs.read_bytes(monitor.summary_digest))
    reference = Reference.from_dict(stored)
    served = read_served(ws, monitor.deployment, start, end)
    window = parse_inputs(served["inputs_json"])
    roles = stored.get("roles") or {}
    if served.num_rows and roles.get("prediction"):
        window = window.append_column(PREDICTION, json_values(served["output_json"]))
    if served.num_rows and roles.get("label"):
        window = window.append_column(roles["label"], json_values(served["label_json"]))
    if window.num_rows == 0:
        raise InvalidInput(
            f"Deployment {monitor.deployment!r} served no rows between {_when(start)} and "
            f"{_when(end)}, so monitor {name!r} has nothing to compare; nothing was stored.",
            "Check the deployment name and that the server logs predictions, or widen the "
            "window (`loopml monitor create ... --window 1d`).",
        )
    window, violations = coerce(window, reference)
    previous = [r.rows for r in ws.monitors.history(name, project, VOLUME_HISTORY)]
    quality = check(window, reference, violations, previous)
    shared = [column for column in reference.kinds if column in window.column_names]
    if not shared:
        raise InvalidInput(
            f"The served rows of {monitor.deployment!r} share no column with the reference "
            f"{monitor.reference} ({', '.join(reference.kinds)}); nothing was stored.",
            "Point the monitor at the dataset the model was trained on.",
        )
    report = compare(reference, window, columns=shared)
    performance = evaluate(
        served["output_json"],
        served["label_json"],
        _model_metrics(ws, served, project),
        served["proba_json"],
    )
    estimated = performance.get("estimated", {})
    document = {
        "monitor": name,
        "deployment": monitor.deployment,
        "reference": monitor.reference,
        "window_start_us": start,
        "window_end_us": end,
        **report.to_dict(),
        "quality_issues": quality["issue_count"],
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
        window.num_rows,
        report.drift_share,
        tuple(report.drifted_features),
        digest,
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


PROBE_PATH = "/v2/health/ready"
PROBE_TIMEOUT_S = 5.0


def _probe(ws: Workspace, monitor: Monitor, start: int, end: int) -> MonitorResult:
    """One health check: the server's readiness, and from the log the rows served in the
    window and their p99 latency."""
    import urllib.error
    import urllib.request

    assert monitor.probe_url is not None
    status, error = None, None
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(monitor.probe_url + PROBE_PATH, timeout=PROBE_TIMEOUT_S) as r:
            status = r.status
            ready = bool(json.loads(r.read() or b"{}").get("ready", status == 200))
    except urllib.error.HTTPError as exc:
        exc.close()
        status, ready, error = exc.code, False, f"HTTP {exc.code}"
    except (OSError, ValueError) as exc:
        ready, error = False, f"{type(exc).__name__}: {exc}"
    took_ms = (time.perf_counter() - started) * 1000
    counts = _request_counts(monitor.probe_url) if ready else None
    previous = _previous_counts(ws, monitor)
    log = prediction_log_reader(ws.settings).read(
        monitor.deployment,
        since_us=start,
        until_us=end,
        columns=["latency_us", "shadow"],
        with_feedback=False,
    )
    served = log.filter(pc.invert(pc.fill_null(log["shadow"], False)))
    latencies = served["latency_us"].to_numpy()
    document: dict[str, Any] = {
        "schema_version": 1,
        "kind": "health",
        "monitor": monitor.name,
        "deployment": monitor.deployment,
        "url": monitor.probe_url + PROBE_PATH,
        "window_start_us": start,
        "window_end_us": end,
        "down": 0 if ready else 1,
        "ready": ready,
        "status": status,
        "error": error,
        "probe_ms": round(took_ms, 3),
        "rows": int(served.num_rows),
        "p99_latency_ms": float(np.percentile(latencies, 99) / 1000) if len(latencies) else None,
        "requests_total": None if counts is None else counts[0],
        "errors_total": None if counts is None else counts[1],
        "error_rate": _error_rate(counts, previous),
    }
    digest = ws.blobs.put_bytes(json.dumps(document).encode()).digest
    draft = MonitorRun(
        0,
        monitor.project,
        monitor.name,
        monitor.created_at,
        start,
        end,
        served.num_rows,
        0.0,
        (),
        digest,
    )
    return _record(ws, draft, document, None)


PREDICTION_ENDPOINTS = frozenset({"predict", "v2_infer"})


def _request_counts(base_url: str) -> tuple[int, int] | None:
    """(requests, non-2xx answers) to the prediction endpoints since the server started, from
    its Prometheus `/metrics`; None when they cannot be read."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    try:
        with urllib.request.urlopen(base_url + "/metrics", timeout=PROBE_TIMEOUT_S) as answer:
            text = answer.read().decode()
        total = errors = 0
        for family in text_string_to_metric_families(text):
            if family.name != "loopml_requests":
                continue
            for sample in family.samples:
                if not sample.name.endswith("_total"):
                    continue
                if sample.labels.get("endpoint") in PREDICTION_ENDPOINTS:
                    total += int(sample.value)
                    if not sample.labels.get("status", "").startswith("2"):
                        errors += int(sample.value)
        return total, errors
    except (OSError, ValueError):
        return None


def _previous_counts(ws: Workspace, monitor: Monitor) -> tuple[int, int] | None:
    runs = ws.monitors.history(monitor.name, monitor.project, 1)
    if not runs:
        return None
    before = json.loads(ws.blobs.read_bytes(runs[0].report_digest))
    if before.get("requests_total") is None:
        return None
    return int(before["requests_total"]), int(before["errors_total"])


def _error_rate(now: tuple[int, int] | None, before: tuple[int, int] | None) -> float | None:
    """Share of prediction requests answered with an error since the previous probe (since the
    server started, the first time or after a restart)."""
    if now is None:
        return None
    total, errors = now
    if before is not None and before[0] <= total and before[1] <= errors:
        total, errors = total - before[0], errors - before[1]
    return errors / total if total else 0.0


def run_due(
    *, now_us: int | None = None, project: str | None = None, workspace: Workspace | None = None
) -> list[tuple[str, MonitorResult | Exception]]:
    """Run every monitor whose last run is at least its schedule ago (or that never ran); a
    monitor that cannot run now (no rows yet) is reported, not fatal."""
    ws = workspace or default_workspace()
    project = project or ws.project
    now = now_us if now_us is not None else time.time_ns() // 1000
    done: list[tuple[str, MonitorResult | Exception]] = []
    for monitor in ws.monitors.list(project):
        last = ws.monitors.history(monitor.name, project, 1)
        if last and now - last[0].window_end_us < monitor.every_s * 1_000_000:
            continue
        try:
            done.append(
                (monitor.name, run(monitor.name, now_us=now, project=project, workspace=ws))
            )
        except LoopmlError as exc:
            done.append((monitor.name, exc))
    return done


ALERT_HISTORY = 50
_ON_EVERY_RUN = frozenset({"rows", "drift_share", "drifted_count"})
"""Fields kept on the run record itself; any other is read from the stored reports."""
"""Runs an alert rule can look back over (`for N windows`, `for DURATION`)."""


def _recent(
    ws: Workspace, latest: MonitorRun, document: dict[str, Any], deployment: str | None
) -> list[tuple[int, dict[str, Any]]]:
    """(window end, report fields) of the monitor's latest runs, newest first. Older runs'
    per-feature numbers are read from their stored reports only if a rule asks for them."""
    runs = ws.monitors.history(latest.monitor, latest.project, ALERT_HISTORY)
    wants_documents = any(
        parse_condition(rule.condition).field not in _ON_EVERY_RUN
        for rule in ws.alerts.rules_for(latest.project, latest.monitor, deployment)
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


def read_served(ws: Workspace, deployment: str, start_us: int, end_us: int) -> pa.Table:
    """The rows `deployment` answered in `[start_us, end_us)` (shadow rows left out), with the
    latest label fed back for each (null where none came)."""
    log = prediction_log_reader(ws.settings).read(
        deployment, since_us=start_us, until_us=end_us, columns=LOG_COLUMNS, with_feedback=True
    )
    return log.filter(pc.invert(pc.fill_null(log["shadow"], False)))


def _model_metrics(ws: Workspace, served: pa.Table, project: str) -> dict[str, float]:
    """The evaluation metrics registered with the model version that served most rows."""
    if served.num_rows == 0:
        return {}
    counts = served.group_by(["model", "model_version"]).aggregate([("model", "count")])
    top = counts.sort_by([("model_count", "descending")]).slice(0, 1).to_pylist()[0]
    try:
        version = ws.registry.resolve(f"{top['model']}/{top['model_version']}", project)
    except LoopmlError:  # the version was deleted or lives elsewhere: nothing to compare with
        return {}
    return dict(version.metrics)


PREDICTION = "prediction"
"""The reference column holding the model's outputs on the reference rows."""


def _with_predictions(
    ws: Workspace, table: pa.Table, deployment: str, model: str | None, project: str
) -> tuple[pa.Table, list[str]]:
    """`table` with the model's predictions on it as a `prediction` column (and the columns to
    read as categories: a classifier's predictions), when a model is known."""
    if model is None:
        try:
            model = ws.deployments.get(deployment, project).model_ref
        except LoopmlError:
            return table, []  # no stored deployment, no model given: no prediction drift
    version = ws.registry.resolve(model, project)
    loaded = ws.registry.load(version.ref, project=project)
    inputs = [column["name"] for column in version.signature.get("inputs", [])]
    missing = [name for name in inputs if name not in table.column_names]
    if missing:
        raise InvalidInput(
            f"The reference lacks the model's inputs {missing}.",
            "Give the dataset the model was trained on as the reference.",
        )
    frame = table.select(inputs).to_pandas() if inputs else table.to_pandas()
    predicted = np.asarray(loaded.predict(frame))
    categorical = [PREDICTION] if callable(getattr(loaded.raw, "predict_proba", None)) else []
    column = pa.array(predicted.astype(str) if categorical else predicted)
    return table.append_column(PREDICTION, column), categorical


def read_dataset(ws: Workspace, version: Any) -> pa.Table:
    from loopml.adapters.tables import read_table

    manifest = ws.data.manifest(version)
    (relative, blob), *others = manifest.files.items()
    if others:
        raise InvalidInput(
            f"Dataset {version.name}@{version.version} holds {len(manifest.files)} files.",
            "Use a version made from one table file as the reference.",
        )
    with tempfile.TemporaryDirectory(prefix="loopml-reference-") as folder:
        path = Path(folder) / Path(relative).name
        ws.blobs.get_file(blob.digest, path)
        return read_table(path)


def _seconds(value: str | int) -> int:
    if isinstance(value, int):
        if value <= 0:
            raise InvalidInput(f"The duration {value} s is not positive.", "Give 10m, 1h, ...")
        return value
    return parse_duration(value)


def _when(time_us: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(time_us / 1e6, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
