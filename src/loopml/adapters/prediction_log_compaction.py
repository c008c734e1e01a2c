"""Compaction and expiry of the prediction log (its layout: `loopml.adapters.prediction_log_files`).

Every server process writes a file per flush into the folder of the hour it serves in: 3,600
files an hour per process. Compaction merges the files of each hour that has closed (ended
`min_age_s` ago) into one `compact-` file, streaming record batches (memory stays at a few row
groups whatever the hour holds), row groups ordered by time so a read of a time range or of one
request id (UUIDv7 ids are time-ordered) skips most of them by their statistics. What comes to
a merged hour later (labels days late) is merged with its like, not into the hour's large file,
until it grows to a quarter of it (`KEEP_FACTOR`).

Atomic for readers, and finished by the next run when killed: the merged file names the files
it replaces in its footer and appears whole (a rename, or one PUT) before any of them is
deleted; readers leave out the files a compact file beside them replaces. A run killed after the
merged file appeared leaves files that are already replaced (deleted first by the next run); a
run killed before leaves a dot-file (local) or nothing. A row written into an hour while it is
compacted lands in a new `part-` file that the merged file does not name, and is merged by the
next run. One compaction at a time: the caller holds a lease (`loopml.services.log_upkeep`).

Expiry removes the folders of hours (or, for logs written before hour folders, days) that ended
before a given time, file by file; a reader that listed one of them lists again.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from loopml.adapters.prediction_log import FEEDBACK_SCHEMA, PREDICTION_SCHEMA
from loopml.adapters.prediction_log_files import (
    COMPACT_PREFIX,
    FEEDBACK_DIR,
    KINDS,
    REPLACES,
    Folder,
    LogStorage,
    partition_dir,
)
from loopml.adapters.prediction_log_tables import read_ahead, scan_pieces
from loopml.domain.log_upkeep import FolderChange, UpkeepReport
from loopml.ports.prediction_log import is_typed

ZSTD_LEVEL = 6
"""A merged file's compression: 4 points of storage fewer than zstd's level 1, for a tenth more
time in a background job (the servers' small files stay at level 1)."""
ROW_GROUP_ROWS = 16_384
"""Rows per row group of a merged file, which is in time order throughout (some 3.5 MB at 12
features): a lookup by id reads the one or two groups whose times hold the id's, not a piece's
worth (9 of an hour's 257 when each group was sorted on its own); readers of a window join
groups into pieces of `PIECE_ROWS`."""


KEEP_FACTOR = 4
"""A file more than this many times the size of all smaller files of its folder together is
left as it is, and only the smaller ones are merged: labels that come days late to a merged
hour make a small file beside it, not a rewrite of the hour (each byte is rewritten about
log4 of its folder's growth times, not once per late label)."""


def _to_merge(sizes: dict[str, int]) -> list[str]:
    """The files of a folder (name -> bytes) to merge into one: from the largest down, a file
    more than `KEEP_FACTOR` times the size of all smaller ones together stays; the first that
    is not, and every smaller one, are merged."""
    order = sorted(sizes, key=lambda n: (sizes[n], n), reverse=True)
    below = sum(sizes.values())
    for index, name in enumerate(order):
        below -= sizes[name]
        if sizes[name] <= KEEP_FACTOR * below:
            return order[index:]
    return []


DELTA_COLUMNS = {"time_us": "DELTA_BINARY_PACKED", "request_id": "DELTA_BYTE_ARRAY"}
"""Columns a merged file stores as deltas: a row group is in time order, so its times are small
steps and its UUIDv7 ids share their leading (time) digits with the id before. On the
benchmark's log this halves the times' bytes and takes a fifth off the ids'."""


STATISTICS_COLUMNS = ("time_us", "event_time_us", "request_id")
"""The columns whose row groups' minimum and maximum a merged file keeps: what reads skip row
groups by (a time range, an id). Statistics of every column made the footer of a merged hour
of 4.2M rows 716 KB, read and parsed by every lookup."""


def _encodings(schema: pa.Schema) -> dict[str, Any]:
    """How a merged file encodes its columns: times and ids as deltas, floats plain, the rest
    in dictionaries; statistics only where reads use them. A dictionary is made per row
    group, and one per 16,384 rows of a feature with many distinct values costs more than it
    saves (40 points of storage on the benchmark's log, against plain floats and zstd)."""
    delta = {name: kind for name, kind in DELTA_COLUMNS.items() if name in schema.names}
    plain = {f.name for f in schema if pa.types.is_floating(f.type)} | set(delta)
    dictionary = [name for name in schema.names if name not in plain]
    pruned_by = [name for name in STATISTICS_COLUMNS if name in schema.names]
    return {"use_dictionary": dictionary, "column_encoding": delta, "write_statistics": pruned_by}


def _unregistered(dataset: ds.Dataset, schema: pa.Schema) -> pa.Schema:
    """Typed columns (`input.*`, `output`, `proba`) some file of `dataset` holds and the
    deployment's registry does not list: a file written by another tool. A merge by the
    registry alone would drop them; they are registered first (readers then see them too)."""
    found: dict[str, pa.DataType] = {}
    for fragment in dataset.get_fragments():
        for field in fragment.physical_schema:
            if is_typed(field.name) and field.name not in schema.names:
                found.setdefault(field.name, field.type)
    return pa.schema(list(found.items()))


def _batches_in_time_order(dataset: ds.FileSystemDataset) -> Iterator[pa.Table]:
    """The dataset's rows in time order, as tables of ROW_GROUP_ROWS (the last one smaller),
    read a file at a time, one piece ahead (Arrow's dataset scan read far ahead of a writer
    busy compressing), holding only the rows that may still have earlier ones to come.

    Each file's least time is in its footer's statistics; the files are read in that order, so
    while file k is read every row not yet read is no earlier than its least time: rows before
    that bound are released, sorted, and every row released later is no earlier (the bound only
    grows). Files overlap by the span of one flush, so about that much is held, whatever order
    their names give. A file without time statistics (another tool's) makes each group sorted
    on its own."""
    fragments = list(dataset.get_fragments())
    lows = [_least_time(fragment) for fragment in fragments]
    known = [low for low in lows if low is not None]
    if len(known) < len(lows):
        yield from _groups_sorted_apart(dataset)
        return
    # by least time, not by name: a name is the writer's clock when it wrote the file, and a
    # writer that fell behind (or retried) wrote older rows under a later name
    order = sorted(range(len(fragments)), key=lambda k: (known[k], k))
    fragments = [fragments[k] for k in order]
    through = [known[k] for k in order]  # no file after k starts before file k does

    def pieces() -> Iterator[tuple[int, pa.Table]]:
        for k, fragment in enumerate(fragments):
            alone = ds.FileSystemDataset([fragment], dataset.schema, dataset.format,
                                         dataset.filesystem)  # fmt: skip
            for piece in scan_pieces(alone, dataset.schema.names, None, ROW_GROUP_ROWS):
                yield through[k], piece

    held: list[pa.Table] = []
    ready = _Groups()
    released = -(2**63)
    for bound, piece in read_ahead(pieces()):
        held.append(piece)
        if bound <= released or sum(table.num_rows for table in held) < RELEASE_ROWS:
            continue  # nothing more can go than went last time: no copy of the held rows
        released = bound
        table = pa.concat_tables(held)
        early = pc.less(table["time_us"], bound)
        held = [table.filter(pc.invert(early))]
        yield from ready.add(table.filter(early).sort_by("time_us"))
    if held:
        yield from ready.add(pa.concat_tables(held).sort_by("time_us"))
    yield from ready.rest()


RELEASE_ROWS = 4 * ROW_GROUP_ROWS
"""Rows held before those that can go are sorted and let go (a copy of the held rows each
time: not once a piece)."""


class _Groups:
    """Sorted runs of rows, each no earlier than the one before, cut into row groups."""

    def __init__(self) -> None:
        self._pending: list[pa.Table] = []
        self._rows = 0

    def add(self, run: pa.Table) -> Iterator[pa.Table]:
        self._pending.append(run)
        self._rows += run.num_rows
        while self._rows >= ROW_GROUP_ROWS:
            joined = pa.concat_tables(self._pending)
            yield joined.slice(0, ROW_GROUP_ROWS)
            self._pending = [joined.slice(ROW_GROUP_ROWS)]
            self._rows -= ROW_GROUP_ROWS

    def rest(self) -> Iterator[pa.Table]:
        if self._rows:
            yield pa.concat_tables(self._pending)


def _least_time(fragment: ds.ParquetFileFragment) -> int | None:
    """The least `time_us` in the file, from its footer's statistics (None when it has none)."""
    metadata = fragment.metadata
    names = metadata.schema.names
    if "time_us" not in names:
        return None
    column = names.index("time_us")
    least = 2**63 - 1  # a file without rows holds nothing back
    for group in range(metadata.num_row_groups):
        statistics = metadata.row_group(group).column(column).statistics
        if statistics is None or not statistics.has_min_max:
            return None
        least = min(least, int(statistics.min))
    return least


def _groups_sorted_apart(dataset: ds.FileSystemDataset) -> Iterator[pa.Table]:
    """The dataset's rows as tables of ROW_GROUP_ROWS, each sorted by time on its own."""
    pending: list[pa.Table] = []
    count = 0
    for table in read_ahead(scan_pieces(dataset, dataset.schema.names, None, ROW_GROUP_ROWS)):
        pending.append(table)
        count += table.num_rows
        while count >= ROW_GROUP_ROWS:
            joined = pa.concat_tables(pending)
            yield joined.slice(0, ROW_GROUP_ROWS).sort_by("time_us")
            pending, count = [joined.slice(ROW_GROUP_ROWS)], joined.num_rows - ROW_GROUP_ROWS
    if count:
        yield pa.concat_tables(pending).sort_by("time_us")


class LogCompactor:
    """Compacts and expires the prediction log under one root."""

    def __init__(
        self,
        storage: LogStorage,
        *,
        clock_us: Callable[[], int] = lambda: time.time_ns() // 1000,
        pause: Callable[[str], None] = lambda step: None,
    ) -> None:
        """`pause(step)` is called between the steps of a folder's compaction (`merged`,
        `deleted`): the kill tests stop a run there."""
        self._storage = storage
        self._clock_us = clock_us
        self._pause = pause

    def deployments(self) -> list[str]:
        """Every deployment with rows or labels in the log."""
        names: set[str] = set()
        for kind in KINDS:
            names.update(self._storage.deployments(kind))
        return sorted(names)

    def _folders(self, deployments: Sequence[str] | None) -> Iterator[tuple[str, str, Folder]]:
        for deployment in deployments if deployments is not None else self.deployments():
            for kind in KINDS:
                for folder in self._storage.folders(partition_dir(kind, deployment)):
                    yield deployment, kind, folder

    # -- compaction -----------------------------------------------------------------------------

    def compact(
        self,
        *,
        min_age_s: float,
        deployments: Sequence[str] | None = None,
        dry_run: bool = False,
    ) -> UpkeepReport:
        """Merge the files of every folder whose hour ended `min_age_s` ago or more."""
        report = UpkeepReport(dry_run)
        closed_before = self._clock_us() - int(min_age_s * 1_000_000)
        for deployment, kind, folder in self._folders(deployments):
            span = folder.served_span
            if span is None or span[1] > closed_before:
                continue  # still being written to (or not a folder loopml made)
            change = self._compact_folder(deployment, kind, folder, report, dry_run)
            if change is not None:
                report.add(deployment, change)
        return report

    def _compact_folder(
        self, deployment: str, kind: str, folder: Folder, report: UpkeepReport, dry_run: bool
    ) -> FolderChange | None:
        live = self._storage.live(folder)
        leftovers = [name for name in folder.files if name not in live]
        if not dry_run:  # merged by a run that stopped before deleting them, or half-written
            self._delete(folder, [*leftovers, *folder.scratch])
            report.finished += len(leftovers)
        if len(live) < 2:
            return None
        sizes = {name: self._storage.size(folder.path(name)) for name in live}
        merging = sorted(_to_merge(sizes))  # by name: by time
        if len(merging) < 2:
            return None
        before = sum(sizes[name] for name in merging)
        paths = [self._storage.path(folder.path(name)) for name in merging]
        schema = self._file_schema(deployment, kind)
        dataset = self._storage.dataset(paths, schema)
        foreign = _unregistered(dataset, schema) if kind != FEEDBACK_DIR else pa.schema([])
        if len(foreign) and not dry_run:  # a file another tool wrote: its columns are kept
            self._storage.add_typed(deployment, foreign)
            schema = self._file_schema(deployment, kind)
            dataset = self._storage.dataset(paths, schema)
        if dry_run:
            rows = self._storage.rows_in(paths)
            return FolderChange(folder.relative, len(merging), 1, rows, before, before)
        name = f"{COMPACT_PREFIX}{self._clock_us()}-{uuid.uuid4().hex}.parquet"
        tagged = schema.with_metadata({REPLACES: json.dumps(merging).encode()})
        rows = 0
        with (
            self._storage.writing(folder.path(name)) as local,
            pq.ParquetWriter(
                local,
                tagged,
                compression="zstd",
                compression_level=ZSTD_LEVEL,
                **_encodings(tagged),
            ) as out,  # fmt: skip
        ):
            for table in _batches_in_time_order(dataset):
                out.write_table(table.replace_schema_metadata(tagged.metadata), ROW_GROUP_ROWS)
                rows += table.num_rows
        self._pause("merged")
        self._delete(folder, merging)
        self._pause("deleted")
        after = self._storage.size(folder.path(name))
        return FolderChange(folder.relative, len(merging), 1, rows, before, after)

    def _file_schema(self, deployment: str, kind: str) -> pa.Schema:
        """The columns of the folder's files: the record's, and the deployment's typed columns
        (all its versions' together: a merged file has every column of its parts)."""
        if kind == FEEDBACK_DIR:
            return pa.schema([f for f in FEEDBACK_SCHEMA if f.name != "deployment"])
        fields = [f for f in PREDICTION_SCHEMA if f.name != "deployment"]
        return pa.schema([*fields, *self._storage.typed(deployment)])

    def _delete(self, folder: Folder, names: Iterable[str]) -> None:
        for name in names:
            self._storage.delete(folder.path(name))

    # -- expiry ---------------------------------------------------------------------------------

    def expire(
        self,
        *,
        before_us: int,
        deployments: Sequence[str] | None = None,
        dry_run: bool = False,
    ) -> UpkeepReport:
        """Remove every folder whose hour (or day) ended at or before `before_us`: rows served,
        and labels that came, before then."""
        report = UpkeepReport(dry_run)
        for deployment, _, folder in self._folders(deployments):
            span = folder.served_span
            if span is None or span[1] > before_us:
                continue
            live = self._storage.live(folder)
            paths = [self._storage.path(folder.path(name)) for name in live]
            rows = self._storage.rows_in(paths)
            size = sum(self._storage.size(folder.path(name)) for name in folder.files)
            if not dry_run:
                # the compact files last: while any part is left, the rows a reader sees are
                # a subset, never a double
                ordered = sorted(folder.files, key=lambda n: n.startswith(COMPACT_PREFIX))
                self._delete(folder, ordered)
                self._storage.remove_empty(folder.relative)
            report.add(deployment, FolderChange(folder.relative, len(folder.files), 0, rows,
                                                size, 0))  # fmt: skip
        return report
