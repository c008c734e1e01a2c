"""Health probes: a model server's readiness (`/v2/health/ready`), its error rate from its
Prometheus `/metrics`, and from the prediction log the rows it served in the window and their
p99 latency.

The probe's requests go through the guarded client (`loopml.adapters.outbound`) under the
workspace's policy (`Settings.target_policy`): on a team server, a probe URL on loopback or a
private network is not requested unless an admin allowed its range; the refusal is the run's
`error`, and the server counts as down.
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
import pyarrow.compute as pc

from loopml.adapters.outbound import OutboundClient
from loopml.bootstrap import Workspace, prediction_log_reader
from loopml.domain.records import Monitor, MonitorRun
from loopml.errors import InvalidInput, LoopmlError

PROBE_PATH = "/v2/health/ready"
PROBE_TIMEOUT_S = 5.0
PREDICTION_ENDPOINTS = frozenset({"predict", "v2_infer"})
MAX_READY_BYTES = 64 << 10
MAX_METRICS_BYTES = 8 << 20


def probe(
    ws: Workspace, monitor: Monitor, start: int, end: int
) -> tuple[MonitorRun, dict[str, Any]]:
    """One health check of `monitor` over `[start, end)`: the run to record and its report."""
    assert monitor.probe_url is not None
    client = OutboundClient(ws.settings.target_policy(), timeout_s=PROBE_TIMEOUT_S)
    started = time.perf_counter()
    status, ready, error = _ready(client, monitor.probe_url + PROBE_PATH)
    took_ms = (time.perf_counter() - started) * 1000
    counts = _request_counts(client, monitor.probe_url) if ready else None
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
        monitor.created_at,  # the store stamps the real time
        start,
        end,
        served.num_rows,
        0.0,
        (),
        digest,
    )
    return draft, document


def _ready(client: OutboundClient, url: str) -> tuple[int | None, bool, str | None]:
    """(HTTP status, ready, what went wrong) of the readiness endpoint at `url`."""
    try:
        answer = client.request("GET", url, max_bytes=MAX_READY_BYTES)
    except InvalidInput as exc:  # refused by the policy: the message and its fix
        return None, False, str(exc)
    except LoopmlError as exc:  # no answer
        return None, False, exc.message
    if not 200 <= answer.status < 300:
        moved = " (redirects are not followed)" if 300 <= answer.status < 400 else ""
        return answer.status, False, f"HTTP {answer.status}{moved}"
    try:
        said = json.loads(answer.body or b"{}")
    except ValueError:
        return answer.status, False, "the readiness answer is not JSON"
    ready = bool(said.get("ready", True)) if isinstance(said, dict) else False
    return answer.status, ready, None


def _request_counts(client: OutboundClient, base_url: str) -> tuple[int, int] | None:
    """(requests, non-2xx answers) to the prediction endpoints since the server started, from
    its Prometheus `/metrics`; None when they cannot be read."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        answer = client.request("GET", base_url + "/metrics", max_bytes=MAX_METRICS_BYTES)
        if answer.status != 200:
            return None
        total = errors = 0
        for family in text_string_to_metric_families(answer.body.decode()):
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
    except (LoopmlError, ValueError):
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
