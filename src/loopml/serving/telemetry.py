"""Prometheus metrics of the model server, in a registry of its own (no global state)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

if TYPE_CHECKING:
    from loopml.serving.host import ModelHost

LATENCY_BUCKETS_S = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, 4096, 10_000)


class Telemetry:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, hosts: Mapping[str, ModelHost], sink: Any) -> None:
        self._hosts = hosts
        self._sink = sink
        self.registry = CollectorRegistry()
        self._requests = Counter(
            "loopml_requests_total",
            "Requests by endpoint and status.",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self._latency = Histogram(
            "loopml_request_seconds",
            "Request latency.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self._batch = Histogram(
            "loopml_batch_rows",
            "Rows per model call (a batch of one or more requests).",
            ["deployment"],
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self._version = Gauge(
            "loopml_model_version",
            "Model version being served.",
            ["deployment", "model"],
            registry=self.registry,
        )
        self._queue = Gauge(
            "loopml_prediction_log_queue_rows",
            "Rows waiting to be written to the prediction log.",
            registry=self.registry,
        )
        self._log_refused = Counter(
            "loopml_prediction_log_refused_rows",
            "Rows refused with 503 (not served) because the prediction log had no room.",
            registry=self.registry,
        )
        self._invalid = Gauge(
            "loopml_prediction_log_invalid_rows",
            "Rows the prediction log took but could not store (they do not fit its schema).",
            registry=self.registry,
        )

    def request(self, endpoint: str, status: int, seconds: float) -> None:
        self._requests.labels(endpoint, str(status)).inc()
        self._latency.labels(endpoint).observe(seconds)

    def rows(self, deployment: str, count: int) -> None:
        self._batch.labels(deployment).observe(count)

    def log_refused(self, rows: int) -> None:
        self._log_refused.inc(rows)

    def render(self) -> bytes:
        for host in self._hosts.values():
            version = host.current.version
            self._version.labels(host.deployment, version.name).set(version.version)
        if self._sink is not None:
            stats = self._sink.stats()
            self._queue.set(stats.get("queue_depth", 0))
            self._invalid.set(stats.get("invalid_rows", 0))
        data: bytes = generate_latest(self.registry)
        return data
