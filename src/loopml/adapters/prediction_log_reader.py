"""Reads the prediction log back: Arrow tables, filters pushed down, latest labels joined.

A read lists only the folders of one deployment that may hold rows of its time range (`date=`
and `hour=` folders; see `loopml.adapters.prediction_log_files`), takes their live files (a
compact file's replaced parts left out) and reads them, the exact time bounds pushed down to the
row groups; a file gone meanwhile (a compaction or an expiry ran) makes it list again.
Time ranges select by the row's time, its event time when the request gave one and else its
serving time, and are half-open: `since_us <= coalesce(event_time_us, time_us) < until_us`.
Rows with an event time sit in their own tree (`predictions/_event_time/`, see
`loopml.adapters.prediction_log`), pruned by event day; it is scanned only when the deployment
has one, so a log without event times is read exactly as before (one more folder check).

Feedback is joined by request id, the latest label per request winning. Labels sit in the hour
their request was made (its UUIDv7 says when), so the labels of the rows read come from the
feedback folders of those rows' hours alone, however late they came; a log written before hour
folders keeps labels by the day they came, read from the rows' first day on.

A request id the server made (a UUIDv7) carries the time it was made: `get` and `served_ids`
read only the hour folders (of both trees) around that time.
Older ids (not UUIDv7) are looked up everywhere. Files written before the `client_id` or
`event_time_us` columns existed read with them null.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from loopml.adapters.prediction_log import FEEDBACK_SCHEMA, PREDICTION_SCHEMA
from loopml.adapters.prediction_log_files import (
    EVENT_TIME_DIR,
    FEEDBACK_DIR,
    PREDICTIONS_DIR,
    READ_ATTEMPTS,
    Folder,
    Keep,
    LogStorage,
    all_timed,
    events_between,
    labels_between,
    partition_dir,
    request_times_us,
    served_between,
)
from loopml.adapters.prediction_log_newest import newest_only
from loopml.adapters.prediction_log_tables import (
    LABELS_SCHEMA,
    as_text,
    both,
    check_columns,
    check_deployment,
    check_known,
    in_time_order,
    joined,
    read_ahead,
    read_paths,
    scan_pieces,
    time_filter,
    with_labels,
    with_typed,
)
from loopml.domain.request_ids import text_bounds, unix_ms_of
from loopml.ports.prediction_log import PIECE_ROWS, LogChanged, is_typed

LOOKUP_THREADS = 8
"""Reads a lookup by id runs side by side (each waits on the store, not on the processor)."""
ID_NEAR_US = 5_000_000
"""Where a lookup by id looks first (a row's `time_us` is stamped a model call after its id);
only when the row is not there does it look `ID_TIME_MARGIN_US` either side."""
ID_TIME_MARGIN_US = 600_000_000
"""How far a row's `time_us` may lie from the time its request id carries (both come from the
serving process's clock, a few milliseconds apart; the margin covers a clock stepped back)."""


def _id_window(
    request_ids: list[str], margin_us: int = ID_TIME_MARGIN_US
) -> tuple[int | None, int | None]:
    """The `time_us` range rows of these ids lie in (within `margin_us` of the times the ids
    carry); unbounded if any id carries no time."""
    times = [unix_ms_of(request_id) for request_id in request_ids]
    known = [t for t in times if t is not None]
    if len(known) < len(times):
        return None, None
    return min(known) * 1000 - margin_us, max(known) * 1000 + margin_us


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
        check_deployment(deployment)
        schema = self._schema(deployment)
        wanted = check_columns(columns, schema)
        needed = {*wanted, "time_us", *(["request_id"] if with_feedback else [])}
        read = [name for name in schema.names if name in needed]
        timed = self._has_event_times(deployment)
        # rows without an event time were served in the window; those with one may have been
        # served up to MAX_AHEAD_US before their event, or any time after it
        where, by_event = time_filter(since_us, until_us), None
        folders = served_between(since_us, until_us)
        event_folders = events_between(since_us, until_us)
        if timed:
            by_event = time_filter(since_us, until_us, time="event_time_us")
        if limit is not None:
            where, by_event, folders = newest_only(
                self._storage, deployment, limit, where=where, by_event=by_event,
                folders=folders, event_folders=event_folders,
            )  # fmt: skip
        table = self._scan(PREDICTIONS_DIR, deployment, folders, where, read)
        if timed:
            events = self._scan(EVENT_TIME_DIR, deployment, event_folders, by_event, read)
            table = pa.concat_tables([table, events])
        if limit is not None:
            newest = pc.select_k_unstable(
                table, min(limit, table.num_rows), [("time_us", "descending")]
            )
            table = table.take(newest)
        if with_feedback:
            labels = self._labels(deployment, table, by_id=limit is not None)
            table = with_labels(table, labels)
            wanted.append("label_json")
        return in_time_order(table, newest_first=limit is not None).select(wanted)

    def read_batches(
        self,
        deployment: str,
        *,
        since_us: int | None = None,
        until_us: int | None = None,
        columns: list[str] | None = None,
        batch_rows: int = PIECE_ROWS,
    ) -> Iterator[pa.Table]:
        """The rows `read` gives (with `label_json`), in pieces of at most `batch_rows` rows and
        in no set order: folder by folder, each folder's labels read once and joined, so
        memory holds one piece and one hour's labels however long the window (and the next
        piece, read on a thread while the caller works on this one). A file that goes away
        meanwhile (a compaction or an expiry) raises `LogChanged`: start over."""
        check_deployment(deployment)
        full = self._schema(deployment)
        pieces = self._pieces(deployment, full, since_us=since_us, until_us=until_us,
                              columns=columns, batch_rows=batch_rows)  # fmt: skip
        return read_ahead(pieces)

    def files_of(self, deployment: str, since_us: int, until_us: int) -> str | None:
        """The names of the Parquet files that may hold `deployment`'s rows served in `[since_us,
        until_us)` and the labels of their requests (folders around the span by
        `ID_TIME_MARGIN_US`), as one text; None when it has rows by event time. Files are never
        rewritten under a name, so any change to those rows or labels changes the text."""
        check_deployment(deployment)
        if self._has_event_times(deployment):
            return None
        margin = since_us - ID_TIME_MARGIN_US, until_us + ID_TIME_MARGIN_US
        found = [*self._storage.folders(partition_dir(PREDICTIONS_DIR, deployment),
                                        served_between(since_us, until_us)),
                 *self._storage.folders(partition_dir(FEEDBACK_DIR, deployment),
                                        labels_between(*margin))]  # fmt: skip
        return json.dumps([[folder.relative, *folder.files] for folder in found])

    def _pieces(
        self,
        deployment: str,
        full: pa.Schema,
        *,
        since_us: int | None,
        until_us: int | None,
        columns: list[str] | None,
        batch_rows: int,
    ) -> Iterator[pa.Table]:
        wanted = check_columns(columns, full)
        read = [n for n in full.names if n in {*wanted, "time_us", "request_id"}]
        file_columns = [name for name in read if name != "deployment"]
        trees = [(PREDICTIONS_DIR, served_between(since_us, until_us), "time_us")]
        if self._has_event_times(deployment):
            trees.append((EVENT_TIME_DIR, events_between(since_us, until_us), "event_time_us"))
        schema = pa.schema([f for f in full if f.name != "deployment"])
        for kind, keep, time in trees:
            where = time_filter(since_us, until_us, time=time)
            for folder in self._storage.folders(partition_dir(kind, deployment), keep):
                paths = [self._storage.path(folder.path(n)) for n in self._storage.live(folder)]
                try:
                    # the folder's labels once, then its rows a piece at a time
                    hour_labels = self._folder_labels(deployment, folder)
                    dataset = self._storage.dataset(paths, schema)
                    for table in scan_pieces(
                        dataset, file_columns, where, batch_rows, where_reads=time
                    ):
                        labels = hour_labels
                        if labels is None or not all_timed(table["request_id"]):
                            labels = self._labels(deployment, table, by_id=True)
                        table = with_labels(table, labels)
                        if "deployment" in wanted:
                            name = pa.repeat(pa.scalar(deployment, pa.string()), table.num_rows)
                            table = table.append_column("deployment", name)
                        yield table.select([*wanted, "label_json"])
                except FileNotFoundError as exc:
                    raise LogChanged(
                        f"The prediction log of {deployment!r} changed while it was read "
                        "(a compaction or an expiry ran).",
                        "Read it again.",
                    ) from exc

    def _folder_labels(self, deployment: str, folder: Folder) -> pa.Table | None:
        """Every label of the requests `folder`'s rows were made in (the hours around it);
        None when its time cannot bound them (a folder loopml did not name): then each piece
        looks its ids' labels up, as it must for ids that carry no time."""
        span = folder.served_span
        if span is None:
            return None
        since, until = span[0] - ID_TIME_MARGIN_US, span[1] + ID_TIME_MARGIN_US
        low, high = text_bounds(since, until)  # the ids of those hours, not all their labels
        made = (ds.field("request_id") >= low) & (ds.field("request_id") < high)
        return self._labels_between(deployment, since, until, made)

    def tail(self, deployment: str, n: int = 20) -> pa.Table:
        """The `n` newest predictions of `deployment`, newest first (text that is not UTF-8,
        which another writer may have left, shown with replacement characters); typed inputs
        are also shown as JSON text in `inputs_json`, as older rows hold them."""
        return as_text(self.read(deployment, limit=n))

    def get(self, request_id: str, deployment: str | None = None) -> dict[str, Any] | None:
        """One prediction (the served one before any shadow's) with `label_json`, or None.

        The reads run side by side (`LOOKUP_THREADS`): each deployment's predictions in the
        hours the id's time names, and, when the id carries a time, the labels of that id in
        its hour's feedback folder, so a lookup costs about one read, not one after another.
        It reads the seconds around the id's time first (`ID_NEAR_US`), where the row is."""
        deployments = [deployment] if deployment else self._deployments()
        made_ms = unix_ms_of(request_id)
        for margin_us in (ID_NEAR_US, ID_TIME_MARGIN_US) if made_ms is not None else (None,):
            found = self._lookup(request_id, deployments, margin_us)
            if found is not None:
                return found
        return None

    def _lookup(
        self, request_id: str, deployments: list[str], margin_us: int | None
    ) -> dict[str, Any] | None:
        """`get`, reading the hours within `margin_us` of the time `request_id` names (every
        hour when None)."""
        match = ds.field("request_id") == request_id
        since_us, until_us = _id_window([request_id], margin_us or ID_TIME_MARGIN_US)
        hours = served_between(since_us, until_us)
        where = both(match, time_filter(since_us, until_us))
        made_ms = unix_ms_of(request_id)
        with ThreadPoolExecutor(LOOKUP_THREADS, thread_name_prefix="log-lookup") as pool:
            scans = [
                pool.submit(self._scan, PREDICTIONS_DIR, name, hours, where, None)
                for name in deployments
            ]
            labelled = {} if made_ms is None else {
                name: pool.submit(self._id_labels, name, request_id, made_ms * 1000)
                for name in deployments
            }  # fmt: skip
            found = [scan.result() for scan in scans]
            rows = joined(found) if found else PREDICTION_SCHEMA.empty_table()
            if rows.num_rows == 0:
                rows = self._get_by_event_time(match, since_us, until_us, deployments) or rows
            if rows.num_rows == 0:
                return None
            ordered = rows.sort_by([("shadow", "ascending"), ("time_us", "ascending")])
            first = as_text(ordered.slice(0, 1))
            name = first["deployment"][0].as_py()
            labels = (
                labelled[name].result()
                if name in labelled
                else self._labels(name, first, by_id=True)
            )
        latest = as_text(labels).column("label_json").to_pylist()
        record = {  # typed columns the row was written without are left out
            key: value
            for key, value in first.to_pylist()[0].items()
            if value is not None or not is_typed(key)
        }
        return {**record, "label_json": latest[0] if latest else None}

    def _id_labels(self, deployment: str, request_id: str, made_us: int) -> pa.Table:
        """The labels of `request_id` (made at `made_us`), from its hour's feedback folder."""
        since_us = made_us - ID_TIME_MARGIN_US  # the label came after its row was logged
        wanted = ds.field("request_id") == request_id
        return self._labels_between(deployment, since_us, made_us + 1, wanted)

    def _get_by_event_time(
        self,
        match: ds.Expression,
        since_us: int | None,
        until_us: int | None,
        deployments: list[str],
    ) -> pa.Table | None:
        """The rows matching `match` in the event-time trees, by the id's serving hours."""
        served_hours = served_between(since_us, until_us, day_key="served")
        found = [
            self._scan(EVENT_TIME_DIR, name, served_hours, match, None)
            for name in deployments
            if self._has_event_times(name)
        ]
        return joined(found) if found else None

    def served_ids(self, deployment: str, request_ids: list[str]) -> set[str]:
        """Which of `request_ids` the log holds a prediction of, for `deployment`: one read,
        limited to the hours the ids' own times span."""
        check_deployment(deployment)
        if not request_ids:
            return set()
        since_us, until_us = _id_window(request_ids)
        hours = served_between(since_us, until_us)
        where = both(ds.field("request_id").isin(request_ids), time_filter(since_us, until_us))
        found = self._scan(PREDICTIONS_DIR, deployment, hours, where, ["request_id"])
        ids = set(found["request_id"].to_pylist())
        rest = [rid for rid in request_ids if rid not in ids]
        if rest and self._has_event_times(deployment):
            served_hours = served_between(since_us, until_us, day_key="served")
            only = ds.field("request_id").isin(rest)
            events = self._scan(EVENT_TIME_DIR, deployment, served_hours, only, ["request_id"])
            ids |= set(events["request_id"].to_pylist())
        return ids

    def export(
        self,
        deployment: str,
        path: Path,
        *,
        since_us: int | None = None,
        until_us: int | None = None,
    ) -> int:
        """Write `deployment`'s rows of the window, with `label_json`, to the Parquet file
        `path`, piece by piece (`read_batches`: memory holds one piece, however long the
        window), each piece in time order; the file appears whole or not at all. Returns how
        many rows it holds."""
        check_deployment(deployment)
        check_known(deployment, self._deployments())
        full = self._schema(deployment)
        names = [n for n in full.names if n != "deployment"]
        schema = pa.schema([*(f for f in full if f.name in names),
                            pa.field("label_json", pa.string())])  # fmt: skip
        part = path.with_name(f".{path.name}.{os.getpid()}.part")
        try:
            for _ in range(READ_ATTEMPTS):
                rows = 0
                try:
                    pieces = self.read_batches(
                        deployment, since_us=since_us, until_us=until_us, columns=names
                    )
                    with pq.ParquetWriter(part, schema, compression="zstd") as out:
                        for piece in pieces:
                            out.write_table(in_time_order(piece, newest_first=False).cast(schema))
                            rows += piece.num_rows
                except LogChanged:
                    continue  # a compaction or an expiry ran: write it again
                os.replace(part, path)
                return rows
            raise LogChanged(
                f"The prediction log of {deployment!r} kept changing while it was exported.",
                "Try again; if it persists, check that one compaction runs at a time.",
            )
        finally:
            part.unlink(missing_ok=True)

    # -- internals ------------------------------------------------------------------------------

    def _labels(self, deployment: str, rows: pa.Table, *, by_id: bool) -> pa.Table:
        """The latest `label_json` per request id of `deployment`'s predictions `rows` (which
        need `request_id` and `time_us`), from the feedback folders of their requests' hours;
        only the labels of their ids when `by_id`, else every label in those folders."""
        if rows.num_rows == 0:
            return LABELS_SCHEMA.empty_table()
        made = request_times_us(rows["request_id"])
        earliest = [pc.min(made).as_py(), pc.min(rows["time_us"]).as_py()]
        since = min(t for t in earliest if t is not None) - ID_TIME_MARGIN_US
        until = None if made.null_count else pc.max(made).as_py() + 1  # no time: any hour
        ids = ds.field("request_id").isin(rows["request_id"].combine_chunks()) if by_id else None
        return self._labels_between(deployment, since, until, ids)

    def _labels_between(
        self, deployment: str, since_us: int, until_us: int | None, ids: ds.Expression | None
    ) -> pa.Table:
        """The latest label per request id among those of requests made in `[since_us,
        until_us)` (of the ids `ids` matches alone, if given)."""
        where = ds.field("time_us") >= since_us  # no label comes before its prediction
        if ids is not None:
            where = where & ids
        columns = ["request_id", "time_us", "label_json"]
        feedback = self._scan(FEEDBACK_DIR, deployment, labels_between(since_us, until_us),
                              where, columns)  # fmt: skip
        if feedback.num_rows == 0:
            return LABELS_SCHEMA.empty_table()
        ordered = feedback.sort_by([("request_id", "ascending"), ("time_us", "ascending")])
        ids = ordered["request_id"].combine_chunks()
        last = pc.fill_null(pc.not_equal(ids[:-1], ids[1:]), True)  # a run's last is its latest
        last = pa.concat_arrays([last, pa.array([True])])
        return ordered.filter(last).select(LABELS_SCHEMA.names)  # by id, as with_labels wants

    def _has_event_times(self, deployment: str | None) -> bool:
        """Whether some row of `deployment` (of any, if None) carries an event time."""
        where = EVENT_TIME_DIR if deployment is None else partition_dir(EVENT_TIME_DIR, deployment)
        return self._storage.isdir(where)

    def _schema(self, deployment: str) -> pa.Schema:
        """The log's columns for `deployment`: the record's, then its typed columns, with the
        typed output and probabilities always among them (null in a log that has none)."""
        return with_typed(self._storage.typed(deployment))

    def _deployments(self) -> list[str]:
        return self._storage.deployments(PREDICTIONS_DIR)

    def _scan(
        self,
        kind: str,
        deployment: str,
        keep: Keep,
        where: ds.Expression | None,
        columns: list[str] | None,
    ) -> pa.Table:
        """`columns` (all, when None) of `deployment`'s `kind` rows in the folders `keep`
        accepts matching `where`."""
        schema = FEEDBACK_SCHEMA if kind == FEEDBACK_DIR else self._schema(deployment)
        columns = list(schema.names) if columns is None else columns
        relative = partition_dir(kind, deployment)
        file_columns = [name for name in columns if name != "deployment"]
        table = self._storage.read_live(
            lambda: self._storage.folders(relative, keep),
            lambda paths: read_paths(self._storage, paths, where, file_columns, schema),
        )
        if "deployment" in columns:
            constant = pa.repeat(pa.scalar(deployment, pa.string()), table.num_rows)
            table = table.append_column("deployment", constant)
        return table.select(columns).cast(schema.empty_table().select(columns).schema)
