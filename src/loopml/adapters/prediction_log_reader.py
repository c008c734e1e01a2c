"""Reads the prediction log back: Arrow tables, filters pushed down, latest labels joined.

A read scans one deployment's folder (`predictions/deployment=<name>/`) with `pyarrow.dataset`
and hive partitioning, pruning `date=` folders outside the time range before opening any file.
Time ranges are half-open: `since_us <= time_us < until_us`. Feedback is joined by request id,
the latest label per request winning; feedback is assumed to come no earlier than its prediction,
so a read from `since_us` only scans feedback from `since_us` on.
"""

from __future__ import annotations

import functools
import operator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from loopml.adapters.prediction_log import (
    FEEDBACK_DIR,
    FEEDBACK_SCHEMA,
    PREDICTION_SCHEMA,
    PREDICTIONS_DIR,
    LogStorage,
    partition_dir,
)
from loopml.errors import InvalidInput

_MICROS_PER_DAY = 86_400_000_000
_LABELS_SCHEMA = pa.schema([("request_id", pa.string()), ("label_json", pa.string())])


def _date_of(time_us: int) -> str:
    days = pa.scalar(time_us // _MICROS_PER_DAY, pa.int32()).cast(pa.date32())
    return str(days.cast(pa.string()).as_py())


def _time_filter(since_us: int | None, until_us: int | None) -> ds.Expression | None:
    """Date-partition bounds (pruning whole folders) and the exact time bounds."""
    parts = []
    if since_us is not None:
        parts += [ds.field("date") >= _date_of(since_us), ds.field("time_us") >= since_us]
    if until_us is not None:
        parts += [ds.field("date") <= _date_of(until_us), ds.field("time_us") < until_us]
    return functools.reduce(operator.and_, parts) if parts else None


def _check_columns(columns: list[str] | None) -> list[str]:
    if columns is None:
        return list(PREDICTION_SCHEMA.names)
    unknown = sorted(set(columns) - set(PREDICTION_SCHEMA.names))
    if unknown:
        raise InvalidInput(
            f"Unknown prediction log columns: {', '.join(unknown)}.",
            f"Choose among: {', '.join(PREDICTION_SCHEMA.names)}.",
        )
    return list(columns)


def _check_deployment(deployment: str) -> None:
    if not deployment:
        raise InvalidInput("The deployment name is empty.", "Pass the name of a deployment.")


def _sorted(table: pa.Table, *, newest_first: bool) -> pa.Table:
    return table.sort_by([("time_us", "descending" if newest_first else "ascending")])


def _with_labels(table: pa.Table, labels: pa.Table) -> pa.Table:
    """`table` left-joined with `labels` on request_id (skipped when there are none)."""
    if labels.num_rows == 0:
        return table.append_column("label_json", pa.nulls(table.num_rows, pa.string()))
    return table.join(labels, keys="request_id")


class PredictionLogReader:
    """Reads predictions (with their latest labels) under `root_url`."""

    def __init__(self, root_url: str, storage_options: dict[str, Any] | None = None) -> None:
        self._storage = LogStorage(root_url, storage_options)

    def read(
        self,
        deployment: str,
        *,
        since_us: int | None = None,
        until_us: int | None = None,
        limit: int | None = None,
        columns: list[str] | None = None,
        with_feedback: bool = True,
    ) -> pa.Table:
        """Predictions of `deployment` in time order (newest first when `limit` is set).

        The result has `columns` (every record field by default), plus `label_json` (null when
        no feedback came) when `with_feedback`. An unknown deployment reads as an empty table.
        """
        _check_deployment(deployment)
        wanted = _check_columns(columns)
        needed = {*wanted, "time_us", *(["request_id"] if with_feedback else [])}
        read = [name for name in PREDICTION_SCHEMA.names if name in needed]
        where = _time_filter(since_us, until_us)
        if limit is not None:
            where = self._newest_only(deployment, where, limit)
        table = self._scan(PREDICTIONS_DIR, deployment, where, read)
        if limit is not None:
            newest = pc.select_k_unstable(
                table, min(limit, table.num_rows), [("time_us", "descending")]
            )
            table = table.take(newest)
        if with_feedback:
            ids = table["request_id"].combine_chunks() if limit is not None else None
            table = _with_labels(table, self._labels(deployment, since_us, ids))
            wanted.append("label_json")
        return _sorted(table, newest_first=limit is not None).select(wanted)

    def tail(self, deployment: str, n: int = 20) -> pa.Table:
        """The `n` newest predictions of `deployment`, newest first."""
        return self.read(deployment, limit=n)

    def get(self, request_id: str, deployment: str | None = None) -> dict[str, Any] | None:
        """One prediction (the served one before any shadow's) with `label_json`, or None."""
        match = ds.field("request_id") == request_id
        rows = self._scan(PREDICTIONS_DIR, deployment, match, list(PREDICTION_SCHEMA.names))
        if rows.num_rows == 0:
            return None
        first = rows.sort_by([("shadow", "ascending"), ("time_us", "ascending")]).to_pylist()[0]
        labels = self._scan(
            FEEDBACK_DIR, first["deployment"], match, ["request_id", "time_us", "label_json"]
        )
        latest = labels.sort_by([("time_us", "descending")]).column("label_json").to_pylist()
        return {**first, "label_json": latest[0] if latest else None}

    # -- internals ------------------------------------------------------------------------------

    def _newest_only(
        self, deployment: str, where: ds.Expression | None, limit: int
    ) -> ds.Expression | None:
        """`where`, narrowed to rows no older than the `limit`-th newest: found from the time
        column alone, so the wide columns are read only from the files that hold those rows."""
        times = self._scan(PREDICTIONS_DIR, deployment, where, ["time_us"])
        if times.num_rows <= limit:
            return where
        newest = pc.select_k_unstable(times, limit, [("time_us", "descending")])
        oldest_kept = pc.min(times["time_us"].take(newest)).as_py()
        bound = ds.field("time_us") >= oldest_kept
        return bound if where is None else where & bound

    def _labels(self, deployment: str, since_us: int | None, ids: pa.Array | None) -> pa.Table:
        """The latest `label_json` per request id of `deployment` (only of `ids` if given)."""
        where = _time_filter(since_us, None)
        if ids is not None:
            only = ds.field("request_id").isin(ids)
            where = only if where is None else where & only
        columns = ["request_id", "time_us", "label_json"]
        feedback = self._scan(FEEDBACK_DIR, deployment, where, columns)
        if feedback.num_rows == 0:
            return _LABELS_SCHEMA.empty_table()
        ordered = feedback.sort_by([("request_id", "ascending"), ("time_us", "ascending")])
        latest = ordered.group_by("request_id", use_threads=False).aggregate(
            [("label_json", "last")]
        )
        return latest.select(["request_id", "label_json_last"]).rename_columns(_LABELS_SCHEMA.names)

    def _scan(
        self,
        kind: str,
        deployment: str | None,
        where: ds.Expression | None,
        columns: list[str],
    ) -> pa.Table:
        """`columns` of the `kind` rows matching `where`, of one deployment or of all."""
        schema = PREDICTION_SCHEMA if kind == PREDICTIONS_DIR else FEEDBACK_SCHEMA
        relative = kind if deployment is None else partition_dir(kind, deployment)
        empty = schema.empty_table().select(columns)
        if not self._storage.isdir(relative):
            return empty
        partitions = ["date"] if deployment is not None else ["deployment", "date"]
        dataset = ds.dataset(
            self._storage.path(relative),
            schema=pa.schema([*schema, pa.field("date", pa.string())]),
            format="parquet",
            partitioning=ds.partitioning(
                pa.schema([(name, pa.string()) for name in partitions]), flavor="hive"
            ),
            filesystem=self._storage.fs,
        )
        file_columns = [name for name in columns if name != "deployment" or deployment is None]
        table = dataset.to_table(columns=file_columns, filter=where)
        if deployment is not None and "deployment" in columns:
            constant = pa.repeat(pa.scalar(deployment, pa.string()), table.num_rows)
            table = table.append_column("deployment", constant)
        return table.select(columns).cast(empty.schema)
