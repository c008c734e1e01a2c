"""Reads the prediction log back: Arrow tables, filters pushed down, latest labels joined.

A read scans one deployment's folder (`predictions/deployment=<name>/`) with `pyarrow.dataset`
and hive partitioning, pruning `date=` folders outside the time range before opening any file.
Time ranges select by the row's time, its event time when the request gave one and else its
serving time, and are half-open: `since_us <= coalesce(event_time_us, time_us) < until_us`.
Rows with an event time sit in their own tree (`predictions/_event_time/`, see
`loopml.adapters.prediction_log`), pruned by event day; it is scanned only when the deployment
has one, so a log without event times is read exactly as before (one more folder check).

Feedback is joined by request id, the latest label per request winning; feedback is assumed to
come no earlier than its prediction was served, so a read from `since_us` only scans feedback
from `since_us` on (from a day earlier when rows carry event times, which may lie up to a day
after their serving time).

A request id the server made (a UUIDv7) carries the time it was made: `get` and `served_ids`
read only the `date=` folders (and `served=` folders of the event-time tree) around that time.
Older ids (not UUIDv7) are looked up everywhere. Files written before the `client_id` or
`event_time_us` columns existed read with them null.
"""

from __future__ import annotations

import functools
import operator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from loopml.adapters.prediction_log import (
    EVENT_TIME_DIR,
    FEEDBACK_DIR,
    FEEDBACK_SCHEMA,
    PREDICTION_SCHEMA,
    PREDICTIONS_DIR,
    LogStorage,
    partition_dir,
)
from loopml.domain.event_time import MAX_AHEAD_US
from loopml.domain.request_ids import unix_ms_of
from loopml.errors import InvalidInput

_MICROS_PER_DAY = 86_400_000_000
ID_TIME_MARGIN_US = 600_000_000
"""How far a row's `time_us` may lie from the time its request id carries (both come from the
serving process's clock, a few milliseconds apart; the margin covers a clock stepped back)."""
_LABELS_SCHEMA = pa.schema([("request_id", pa.string()), ("label_json", pa.string())])


def _date_of(time_us: int) -> str:
    days = pa.scalar(time_us // _MICROS_PER_DAY, pa.int32()).cast(pa.date32())
    return str(days.cast(pa.string()).as_py())


def _time_filter(
    since_us: int | None, until_us: int | None, *, day: str = "date", time: str = "time_us"
) -> ds.Expression | None:
    """Day-partition bounds (pruning whole folders) and the exact time bounds."""
    parts = []
    if since_us is not None:
        parts += [ds.field(day) >= _date_of(since_us), ds.field(time) >= since_us]
    if until_us is not None:
        parts += [ds.field(day) <= _date_of(until_us), ds.field(time) < until_us]
    return functools.reduce(operator.and_, parts) if parts else None


def _event_filter(since_us: int | None, until_us: int | None) -> ds.Expression | None:
    """The event-time tree's bounds for a window of the rows' time (its `date=` is event day)."""
    return _time_filter(since_us, until_us, time="event_time_us")


def _served_filter(since_us: int | None, until_us: int | None) -> ds.Expression | None:
    """The event-time tree's bounds for a range of serving time (`served=` is serving day)."""
    return _time_filter(since_us, until_us, day="served")


def _and(left: ds.Expression, right: ds.Expression | None) -> ds.Expression:
    return left if right is None else left & right


def _id_window(request_ids: list[str]) -> tuple[int | None, int | None]:
    """The `time_us` range rows of these ids lie in; unbounded if any id carries no time."""
    times = [unix_ms_of(request_id) for request_id in request_ids]
    known = [t for t in times if t is not None]
    if len(known) < len(times):
        return None, None
    return min(known) * 1000 - ID_TIME_MARGIN_US, max(known) * 1000 + ID_TIME_MARGIN_US


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


def _as_text(table: pa.Table) -> pa.Table:
    """`table` with every string column valid UTF-8: a column holding bytes that are not (a
    file another tool wrote) is decoded with replacement characters, so showing a record never
    fails on it. For the few rows a person looks at, not for whole windows."""
    for index, field in enumerate(table.schema):
        if field.type != pa.string():
            continue
        column = table.column(index)
        try:
            column.validate(full=True)
        except pa.ArrowInvalid:
            raw = column.cast(pa.binary()).to_pylist()
            text = [None if v is None else v.decode("utf-8", "replace") for v in raw]
            table = table.set_column(index, field, pa.array(text, pa.string()))
    return table


class PredictionLogReader:
    """Reads predictions (with their latest labels) under `root_url`."""

    def __init__(
        self,
        root_url: str = "",
        storage_options: dict[str, Any] | None = None,
        *,
        storage: LogStorage | None = None,
    ) -> None:
        self._storage = storage or LogStorage(root_url, storage_options)

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
        timed = self._has_event_times(deployment)
        by_event = _event_filter(since_us, until_us) if timed else None
        if limit is not None:
            where, by_event = self._newest_only(deployment, where, by_event, limit)
        table = self._scan(PREDICTIONS_DIR, deployment, where, read)
        if timed:
            table = pa.concat_tables([table, self._scan_events(deployment, by_event, read)])
        if limit is not None:
            newest = pc.select_k_unstable(
                table, min(limit, table.num_rows), [("time_us", "descending")]
            )
            table = table.take(newest)
        if with_feedback:
            ids = table["request_id"].combine_chunks() if limit is not None else None
            labels_since = since_us - MAX_AHEAD_US if timed and since_us is not None else since_us
            table = _with_labels(table, self._labels(deployment, labels_since, ids))
            wanted.append("label_json")
        return _sorted(table, newest_first=limit is not None).select(wanted)

    def tail(self, deployment: str, n: int = 20) -> pa.Table:
        """The `n` newest predictions of `deployment`, newest first (text that is not UTF-8,
        which another writer may have left, shown with replacement characters)."""
        return _as_text(self.read(deployment, limit=n))

    def get(self, request_id: str, deployment: str | None = None) -> dict[str, Any] | None:
        """One prediction (the served one before any shadow's) with `label_json`, or None."""
        match = ds.field("request_id") == request_id
        since_us, until_us = _id_window([request_id])
        where = _and(match, _time_filter(since_us, until_us))
        rows = self._scan(PREDICTIONS_DIR, deployment, where, list(PREDICTION_SCHEMA.names))
        if rows.num_rows == 0 and self._has_event_times(deployment):
            served = _and(match, _served_filter(since_us, until_us))
            rows = self._scan_events(deployment, served, list(PREDICTION_SCHEMA.names))
        if rows.num_rows == 0:
            return None
        ordered = rows.sort_by([("shadow", "ascending"), ("time_us", "ascending")])
        first = _as_text(ordered.slice(0, 1)).to_pylist()[0]
        labels = self._scan(
            FEEDBACK_DIR,
            first["deployment"],
            _and(match, _time_filter(since_us, None)),
            ["request_id", "time_us", "label_json"],
        )
        latest = _as_text(labels.sort_by([("time_us", "descending")]).slice(0, 1))
        latest = latest.column("label_json").to_pylist()
        return {**first, "label_json": latest[0] if latest else None}

    def served_ids(self, deployment: str, request_ids: list[str]) -> set[str]:
        """Which of `request_ids` the log holds a prediction of, for `deployment`: one read,
        limited to the days the ids' own times span."""
        _check_deployment(deployment)
        if not request_ids:
            return set()
        since_us, until_us = _id_window(request_ids)
        where = _and(ds.field("request_id").isin(request_ids), _time_filter(since_us, until_us))
        found = self._scan(PREDICTIONS_DIR, deployment, where, ["request_id"])
        ids = set(found["request_id"].to_pylist())
        rest = [rid for rid in request_ids if rid not in ids]
        if rest and self._has_event_times(deployment):
            only = ds.field("request_id").isin(rest)
            served = _and(only, _served_filter(since_us, until_us))
            ids |= set(
                self._scan_events(deployment, served, ["request_id"])["request_id"].to_pylist()
            )
        return ids

    # -- internals ------------------------------------------------------------------------------

    def _newest_only(
        self,
        deployment: str,
        where: ds.Expression | None,
        by_event: ds.Expression | None,
        limit: int,
    ) -> tuple[ds.Expression | None, ds.Expression | None]:
        """`where` (and `by_event`, for the event-time tree), narrowed to rows served no earlier
        than the `limit`-th newest: found from the time column alone, so the wide columns are
        read only from the files that hold those rows."""
        times = self._scan(PREDICTIONS_DIR, deployment, where, ["time_us"])
        if self._has_event_times(deployment):
            times = pa.concat_tables([times, self._scan_events(deployment, by_event, ["time_us"])])
        if times.num_rows <= limit:
            return where, by_event
        newest = pc.select_k_unstable(times, limit, [("time_us", "descending")])
        oldest_kept = pc.min(times["time_us"].take(newest)).as_py()
        bound = ds.field("time_us") >= oldest_kept
        return _and(bound, where), _and(bound, by_event)

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

    def _has_event_times(self, deployment: str | None) -> bool:
        """Whether some row of `deployment` (of any, if None) carries an event time."""
        where = EVENT_TIME_DIR if deployment is None else partition_dir(EVENT_TIME_DIR, deployment)
        return self._storage.isdir(where)

    def _scan_events(
        self, deployment: str | None, where: ds.Expression | None, columns: list[str]
    ) -> pa.Table:
        """`columns` of the event-time tree's rows matching `where`."""
        return self._scan(EVENT_TIME_DIR, deployment, where, columns, days=["served", "date"])

    def _scan(
        self,
        kind: str,
        deployment: str | None,
        where: ds.Expression | None,
        columns: list[str],
        *,
        days: list[str] | None = None,
    ) -> pa.Table:
        """`columns` of the `kind` rows matching `where`, of one deployment or of all."""
        schema = FEEDBACK_SCHEMA if kind == FEEDBACK_DIR else PREDICTION_SCHEMA
        relative = kind if deployment is None else partition_dir(kind, deployment)
        empty = schema.empty_table().select(columns)
        if not self._storage.isdir(relative):
            return empty
        partitions = days or ["date"]
        if deployment is None:
            partitions = ["deployment", *partitions]
        dataset = ds.dataset(
            self._storage.path(relative),
            schema=pa.schema([*schema, *(pa.field(d, pa.string()) for d in days or ["date"])]),
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
