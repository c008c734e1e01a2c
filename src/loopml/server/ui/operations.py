"""Pages of what runs in production: deployments with their traffic over time, the latest
predictions and one prediction's whole record; monitors with drift and performance over windows
and, per feature, reference against current; alerts with their lifecycle; retrain loops with
their champion/challenger scores and decisions."""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from loopml.domain.refs import check_name
from loopml.errors import LoopmlError, NotFound
from loopml.monitoring.charts import Series, drift_chart, line_chart
from loopml.server.ui.views import Views

TRAFFIC_BUCKETS = 60
LATEST = 20
WINDOW_RUNS = 200


def add_operation_pages(router: APIRouter, views: Views) -> None:
    _deployment_pages(router, views)
    _monitor_pages(router, views)
    _alert_and_loop_pages(router, views)


def _deployment_pages(router: APIRouter, views: Views) -> None:
    ws = views.ws

    @router.get("/deployments", response_class=HTMLResponse)
    def deployments_page(request: Request) -> Response:
        p = views.page(request)
        rows = []
        for d in ws.deployments.list(p.project):
            try:
                serving = ws.registry.resolve(d.model_ref, p.project).ref
            except NotFound:
                serving = "— (nothing at that reference)"
            rows.append({"d": d, "serving": serving})
        return views.render(p, "deployments.html", "Deployments", "deployments", rows=rows)

    @router.get("/deployments/{name}", response_class=HTMLResponse)
    def deployment_page(request: Request, name: str, hours: float = 24.0) -> Response:
        p = views.page(request)
        deployment = ws.deployments.get(check_name(name, "deployment"), p.project)
        reader = views.log_reader()
        since = int((time.time() - max(0.01, min(hours, 24 * 90)) * 3600) * 1e6)
        traffic = reader.read(
            deployment.name,
            since_us=since,
            columns=["time_us", "latency_us", "model_version", "flags", "shadow"],
            with_feedback=False,
        )
        latest = reader.tail(deployment.name, LATEST).to_pylist()
        charts = _traffic_charts(traffic.to_pydict()) + _health_charts(views, p.project, name)
        return views.render(
            p, "deployment.html", f"Deployment {name}", "deployments", d=deployment,
            hours=hours, charts=charts, latest=latest, served=traffic.num_rows,
            probed=any(m.kind == "health" and m.deployment == name
                       for m in ws.monitors.list(p.project)),
        )  # fmt: skip

    @router.get("/deployments/{name}/predictions/{request_id}", response_class=HTMLResponse)
    def prediction_page(
        request: Request, name: str, request_id: str, explain: bool = False
    ) -> Response:
        p = views.page(request)
        deployment = ws.deployments.get(check_name(name, "deployment"), p.project)
        record = views.log_reader().get(request_id[:200], deployment.name)
        if record is None:
            raise NotFound(
                f"No prediction {request_id[:80]!r} in the log of {name}.",
                "Pick one from the deployment's latest predictions.",
            )
        inputs = _logged_inputs(record.get("inputs_json"))
        why = _explain(views, p.project, record, inputs) if explain else None
        return views.render(
            p, "prediction.html", f"Prediction {request_id[:16]}", "deployments",
            d=deployment, r=record, inputs=inputs, why=why,
        )  # fmt: skip


def _logged_inputs(text: str | None) -> dict[str, Any]:
    """A logged row's inputs by column; whatever the log holds (an older server's or another
    tool's row may not be a JSON object) is shown as it is, never a failed page."""
    try:
        inputs = json.loads(text) if text is not None else {}
    except (ValueError, TypeError):
        return {"(unreadable row)": text}
    return inputs if isinstance(inputs, dict) else {"": inputs}


def _explain(
    views: Views, project: str, record: dict[str, Any], inputs: dict[str, Any]
) -> dict[str, Any]:
    """The attributions of the model version that served `record`, as `/explain` gives them
    (the version is loaded once and kept, a few at a time); or why there are none."""
    from loopml.serving.bodies import request_rows
    from loopml.serving.explain import explain
    from loopml.serving.frames import batch_frame
    from loopml.serving.host import ModelHost

    ref = f"{record['model']}/{record['model_version']}"
    try:
        host = views.remember(
            ("host", project, ref),
            lambda: ModelHost(views.ws, record["deployment"], ref, project=project),
        )
        served = host.current
        rows, values = request_rows({"rows": [inputs]}, served.inputs)
        frame = batch_frame(rows, served.inputs, values=values)
        if frame.errors:
            why = next(iter(frame.errors.values()))
            return {"error": f"The logged row does not fit the model now: {why.rstrip('.')}."}
        answer = explain(served, frame.frame, served.reference)
    except LoopmlError as refused:
        return {"error": f"{refused.message} {refused.hint}"}
    except Exception as failed:  # a model that cannot score its own row: say so, do not fail
        return {"error": f"The model could not explain this row: {type(failed).__name__}."}
    ranked = sorted(answer["explanations"][0].items(), key=lambda kv: -abs(kv[1]))
    return {**answer, "ranked": ranked}


def _traffic_charts(columns: dict[str, list[Any]]) -> list[tuple[str, str]]:
    """Requests per minute, latency p50/p95/p99, the share of flagged rows and the model version
    over time, in TRAFFIC_BUCKETS equal buckets (vectorised over the log's columns)."""
    served = ~np.asarray(columns["shadow"], dtype=bool)
    when = np.asarray(columns["time_us"], dtype=np.int64)[served]
    if when.size == 0:
        return []
    latency = np.asarray(columns["latency_us"], dtype=float)[served] / 1000
    version = np.asarray(columns["model_version"], dtype=float)[served]
    flagged = np.asarray([bool(f) for f in np.asarray(columns["flags"])[served]], dtype=float)
    edges = np.linspace(when.min(), when.max() + 1, TRAFFIC_BUCKETS + 1)
    bucket = np.clip(np.searchsorted(edges, when, side="right") - 1, 0, TRAFFIC_BUCKETS - 1)
    order = np.argsort(bucket, kind="stable")
    bounds = np.searchsorted(bucket[order], np.arange(TRAFFIC_BUCKETS + 1))
    minutes = (edges[1] - edges[0]) / 60e6
    x, rate, p50, p95, p99, flags, model = [], [], [], [], [], [], []
    for b in range(TRAFFIC_BUCKETS):
        rows = order[bounds[b] : bounds[b + 1]]
        if rows.size == 0:
            continue
        x.append((edges[b] - edges[-1]) / 60e6)  # minutes before the newest
        rate.append(rows.size / minutes)
        q = np.percentile(latency[rows], [50, 95, 99])
        p50.append(q[0])
        p95.append(q[1])
        p99.append(q[2])
        flags.append(float(flagged[rows].mean()))
        model.append(float(version[rows][-1]))
    axis = "minutes before the newest request"

    def chart(title: str, *series: Series) -> tuple[str, str]:
        return title, line_chart(title, series, x_label=axis)

    return [
        chart("Requests per minute", Series("requests", x, rate)),
        chart("Latency (ms)", Series("p50", x, p50), Series("p95", x, p95), Series("p99", x, p99)),
        chart("Flagged rows (nulls, unseen categories)", Series("flagged share", x, flags)),
        chart("Model version serving", Series("version", x, model)),
    ]


def _health_charts(views: Views, project: str, deployment: str) -> list[tuple[str, str]]:
    """Error rate and availability over the probes of the deployment's health monitors (the
    server's own counts of requests answered with an error, between one probe and the next)."""
    charts = []
    for monitor in views.ws.monitors.list(project):
        if monitor.kind != "health" or monitor.deployment != deployment:
            continue
        runs = views.ws.monitors.history(monitor.name, project, limit=WINDOW_RUNS)[::-1]
        reports = _reports(views, runs)
        x = list(range(1, len(reports) + 1))
        rate = [
            (i, r["error_rate"])
            for i, r in zip(x, reports, strict=True)
            if r.get("error_rate") is not None
        ]
        errors = Series("error rate", [i for i, _ in rate], [v for _, v in rate])
        down = Series("down", x, [float(r.get("down", 0)) for r in reports])
        title = f"Error rate and availability ({monitor.name})"
        charts.append((title, line_chart(title, [errors, down], x_label="probe")))
    return charts


def _monitor_pages(router: APIRouter, views: Views) -> None:
    ws = views.ws

    @router.get("/monitors", response_class=HTMLResponse)
    def monitors_page(request: Request) -> Response:
        p = views.page(request)
        rows = [
            {"m": m, "last": next(iter(ws.monitors.history(m.name, p.project, limit=1)), None)}
            for m in ws.monitors.list(p.project)
        ]
        return views.render(p, "monitors.html", "Monitors", "monitors", rows=rows)

    @router.get("/monitors/{name}", response_class=HTMLResponse)
    def monitor_page(request: Request, name: str, run: int | None = None) -> Response:
        p = views.page(request)
        monitor = ws.monitors.get(check_name(name, "monitor"), p.project)
        history = ws.monitors.history(monitor.name, p.project, limit=WINDOW_RUNS)[::-1]
        reports = _reports(views, history)  # each window's report, read once
        chosen = next((r for r in history if r.id == run), history[-1] if history else None)
        report = reports[history.index(chosen)] if chosen else {}
        charts = _window_charts(history, reports)
        return views.render(
            p, "monitor.html", f"Monitor {name}", "monitors", m=monitor, history=history[::-1],
            chosen=chosen, report=report, charts=charts,
            features=[_feature(f) for f in report.get("features", [])],
        )  # fmt: skip


def _reports(views: Views, runs: list[Any]) -> list[dict[str, Any]]:
    return [json.loads(views.ws.blobs.read_bytes(r.report_digest)) for r in runs]


def _window_charts(history: list[Any], reports: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Drift share, and each performance metric the reports hold, over the windows."""
    if not history:
        return []
    x = list(range(1, len(history) + 1))
    shares = Series("drift share", x, [r.drift_share for r in history])
    charts = [("Share of drifted columns", line_chart("Drift share", [shares], x_label="window"))]
    metrics: dict[str, list[tuple[int, float]]] = {}
    for i, report in enumerate(reports, start=1):
        for key, value in (report.get("performance") or {}).get("metrics", {}).items():
            if isinstance(value, int | float):
                metrics.setdefault(key, []).append((i, float(value)))
    if metrics:
        series = [
            Series(k, [a for a, _ in v], [b for _, b in v]) for k, v in sorted(metrics.items())
        ]
        charts.append(
            ("Performance on labelled rows", line_chart("Performance", series, x_label="window"))
        )
    return charts


def _feature(feature: dict[str, Any]) -> dict[str, Any]:
    """One feature of a drift report: its decision, the statistics behind it, and reference
    against current (CDFs for numbers, shares per category or token)."""
    title = f"{feature['name']}: reference and current"
    drawn = drift_chart(title, feature.get("chart") or {}, x_label=feature["name"])
    return {**feature, "drawn": drawn}


def _alert_and_loop_pages(router: APIRouter, views: Views) -> None:
    ws = views.ws

    @router.get("/alerts", response_class=HTMLResponse)
    def alerts_page(request: Request, state: str = "") -> Response:
        p = views.page(request)
        alerts = ws.alerts.alerts(p.project, state or None, limit=200)
        rules = ws.alerts.rules(p.project)
        return views.render(
            p, "alerts.html", "Alerts", "alerts", alerts=alerts, rules=rules, state=state
        )

    @router.get("/loops", response_class=HTMLResponse)
    def loops_page(request: Request) -> Response:
        p = views.page(request)
        loops = [
            {"loop": loop, "runs": ws.loops.history(loop.spec.name, p.project, limit=20)}
            for loop in ws.loops.list(p.project)
        ]
        return views.render(p, "loops.html", "Retrain loops", "loops", loops=loops)
