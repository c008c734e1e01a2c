"""One batch of `/predict` requests answered: one model call, each request's answer (or its
422), the served rows' ids made in one call, and one append of every served row to the log
(into room reserved before the requests were queued). A batch of V2 requests for an
all-numeric signature (`Job.tensors`) is answered the same way from their matrices, each with
its slice of the model's outputs as arrays (`TensorAnswer`)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from loopml.serving.frames import (
    BatchFrame,
    RequestError,
    ServedRows,
    batch_frame,
    column_types,
    logged_inputs,
    matrix_frame,
)

if TYPE_CHECKING:
    from loopml.serving.app import Server
    from loopml.serving.batching import Job
    from loopml.serving.host import ModelHost, Served


def _outputs(values: Any) -> list[Any]:
    return values.tolist() if hasattr(values, "tolist") else list(values)


def _given(values: Any) -> Any:
    """What a model returned, as a numpy array (a pandas series or frame becomes one), or as a
    list when it is neither."""
    if isinstance(values, np.ndarray | list):
        return values
    return np.asarray(values) if hasattr(values, "__array__") else list(values)


def _joined(parts: list[Any]) -> Any:
    """Slices of the model's answer, one per served request, as one: a numpy array stays one
    (the log keeps it typed)."""
    if all(isinstance(part, np.ndarray) for part in parts):
        return parts[0] if len(parts) == 1 else np.concatenate(parts)
    return [value for part in parts for value in part]


@dataclass(frozen=True)
class _Answer:
    served: Served
    """The model version that answered the whole batch."""
    predictions: list[Any]
    probabilities: list[Any] | None
    latency_us: int
    given: tuple[Any, Any] = (None, None)
    """The predictions and the probabilities as the model gave them (numpy arrays, usually),
    for the log."""


@dataclass(frozen=True)
class TensorAnswer:
    """A V2 request's answer from its batch: the version that answered, the rows' ids, and
    the model's predictions and probabilities (None unless asked for) for its rows."""

    served: Served
    ids: list[str]
    predictions: Any
    probabilities: Any


@dataclass
class _Logged:
    """The served rows of one batch, gathered for one append to the log."""

    prepared: BatchFrame
    spans: list[range] = field(default_factory=list)
    """The batch's input rows that were served, request by request."""
    ids: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    outputs: list[Any] = field(default_factory=list)
    """Per served request, its slice of the model's predictions (as the model gave them)."""
    probs: list[Any] = field(default_factory=list)
    """Likewise for the probabilities, when the model gave them."""
    times: list[int | None] | None = None
    """Per row, its event time; None when no request of the batch gave one."""
    client_ids: list[str | None] = field(default_factory=list)
    """Per row, the id its request gave (V2's `id`), if any."""

    def add(
        self,
        prepared: BatchFrame,
        span: range,
        ids: list[str],
        given: tuple[Any, Any],
        *,
        times: list[int] | None = None,
        client_id: str | None = None,
    ) -> None:
        self.spans.append(span)
        self.ids += ids
        self.client_ids += [client_id] * len(ids)
        self.flags += prepared.flags[span.start : span.stop]
        self.outputs.append(given[0])
        if given[1] is not None:
            self.probs.append(given[1])
        if self.times is not None:
            self.times += times if times is not None else [None] * len(ids)


def answer_batch(server: Server, host: ModelHost, jobs: Sequence[Job]) -> list[Any]:
    """One model call for every request of the batch; a request whose rows do not convert
    gets its 422 and the others their predictions."""
    started = time.perf_counter_ns()
    served = host.current  # the whole batch is answered by this version, even mid-swap
    tensors = jobs[0].tensors is not None  # a batcher takes one kind of job (`Server.batcher`)
    try:
        prepared = _prepared(jobs, served)
    except RequestError as changed:
        return [changed] * len(jobs)
    try:
        if served.array_input and prepared.values is not None:
            features = prepared.values  # no data frame is ever built for this batch
        else:
            features = served.features(prepared.frame)
        count = prepared.rows
        wants_proba = served.has_proba and (
            server.log_probabilities or any(j.probabilities for j in jobs)
        )
        both = getattr(served.model, "predict_with_proba", None) if wants_proba else None
        if both is not None and count:  # one pass for both (a booster's flavor offers it)
            labels, probabilities_given = both(features)
            given, given_proba = _given(labels), _given(probabilities_given)
        else:
            given = _given(served.model.predict(features)) if count else []
            given_proba = (
                _given(served.model.predict_proba(features)) if wants_proba and count else None
            )
        predictions = given if tensors else _outputs(given)
        probabilities = None if given_proba is None or tensors else _outputs(given_proba)
    except Exception as exc:
        error = RequestError(
            422, f"The model could not predict these rows: {type(exc).__name__}: {exc}"
        )
        return [error] * len(jobs)
    latency_us = (time.perf_counter_ns() - started) // 1000
    answer = _Answer(served, predictions, probabilities, latency_us, (given, given_proba))
    return _split(server, host, jobs, prepared, answer)


def _prepared(jobs: Sequence[Job], served: Served) -> BatchFrame:
    """The batch's rows checked and converted: V2 matrices joined as they are; `/predict`
    rows from their values, or from the rows themselves."""
    parts = [job.tensors for job in jobs if job.tensors is not None]
    if not parts:
        values = _values(jobs, served.inputs)  # the rows themselves are read only without them
        rows = [] if values is not None else [row for job in jobs for row in job.rows]
        return batch_frame(rows, served.inputs, served.categories, values)
    names = tuple(name for name, _ in served.inputs)
    if any(part.names != names for part in parts):  # checked against a version swapped out
        raise RequestError(
            503, "The served model changed while these rows waited for it; send them again."
        )
    matrix = parts[0].matrix if len(parts) == 1 else np.concatenate([p.matrix for p in parts])
    nulls = parts[0].nulls if len(parts) == 1 else np.concatenate([p.nulls for p in parts])
    return matrix_frame(matrix, nulls, list(names), column_types(served.inputs))


def _values(jobs: Sequence[Job], signature: Sequence[tuple[str, str]]) -> Any:
    """The batch's field values as the requests' checks made them, when every request was
    checked against this signature (a live swap may have changed it since); else None."""
    names = tuple(name for name, _ in signature)
    if any(job.values is None or job.names != names for job in jobs):
        return None
    if len(jobs) == 1:
        return jobs[0].values
    return [values for job in jobs for values in job.values or ()]


def _refused(spans: list[range], prepared: BatchFrame) -> dict[int, int]:
    """Job index -> its first input row that could not be served."""
    if not prepared.errors:
        return {}
    first: dict[int, int] = {}
    bad = sorted(prepared.errors)
    for index, span in enumerate(spans):
        inside = [row for row in bad if span.start <= row < span.stop]
        if inside:
            first[index] = inside[0]
    return first


def _split(
    server: Server, host: ModelHost, jobs: Sequence[Job], prepared: BatchFrame, answer: _Answer
) -> list[Any]:
    spans, start = [], 0
    for job in jobs:
        spans.append(range(start, start + len(job.rows)))
        start += len(job.rows)
    refused = _refused(spans, prepared)
    ids = server.ids.new(sum(len(s) for i, s in enumerate(spans) if i not in refused))
    logged = _Logged(prepared)
    if any(job.event_times_us is not None for job in jobs):
        logged.times = []
    results: list[Any] = []
    position = 0  # kept-row (prediction) index
    for index, (job, span) in enumerate(zip(jobs, spans, strict=True)):
        if index in refused:
            bad = refused[index]
            position += int(prepared.kept[span.start : span.stop].sum())
            results.append(RequestError(422, f"Row {bad - span.start}: {prepared.errors[bad]}"))
            continue
        rows = len(span)
        job_ids = ids[len(logged.ids) : len(logged.ids) + rows]
        here = slice(position, position + rows)
        outputs = answer.predictions[here]
        probs = answer.probabilities[here] if answer.probabilities else None
        position += rows
        given, given_proba = answer.given
        given_slices = (given[here], None if given_proba is None else given_proba[here])
        if job.tensors is not None:
            wanted = given_slices[1] if job.probabilities else None
            results.append(TensorAnswer(answer.served, job_ids, given_slices[0], wanted))
        else:
            results.append(_result(answer.served, job, outputs, probs, job_ids))
        client_id = None if job.tensors is None else job.tensors.client_id
        logged.add(prepared, span, job_ids, given_slices, times=job.event_times_us,
                   client_id=client_id)  # fmt: skip
    if logged.ids:
        _log(server, host, logged, answer)
    server.telemetry.rows(host.deployment, len(logged.ids))
    return results


def _result(
    served: Served, job: Job, outputs: list[Any], probs: list[Any] | None, ids: list[str]
) -> dict[str, Any]:
    version = served.version
    result: dict[str, Any] = {
        "predictions": outputs,
        "request_ids": ids,
        "model": version.name,
        "model_version": version.version,
    }
    if job.probabilities and probs is not None:
        result["probabilities"] = probs
    return result


def _log(server: Server, host: ModelHost, logged: _Logged, answer: _Answer) -> None:
    if host.role != "shadow":  # a shadow's ids are never given out, nor labelled
        server.recent.add(host.deployment, logged.ids)
    if server.sink is None:
        return
    version = answer.served.version
    rows, inputs = logged_inputs(logged.prepared, logged.spans)
    server.sink.log_predictions(
        ServedRows(
            host.deployment,
            version.name,
            version.version,
            rows,
            _joined(logged.outputs),
            logged.ids,
            answer.latency_us,
            logged.flags,
            shadow=host.role == "shadow",
            probabilities=_joined(logged.probs) if logged.probs else None,
            event_times_us=logged.times,
            inputs=inputs,
            client_ids=logged.client_ids if any(logged.client_ids) else None,
        )
    )
