"""The tables a read of the prediction log gives, and the checks on what it is asked:
columns of the deployment's schema, time filters, labels joined, pieces of a window, and text
made safe to show (`loopml.adapters.prediction_log_reader` reads with these)."""

from __future__ import annotations

import bisect
import functools
import operator
from collections.abc import Iterator, Sequence
from typing import TypeVar

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from loopml.adapters.prediction_log import PREDICTION_SCHEMA
from loopml.adapters.prediction_log_files import LogStorage
from loopml.domain.jsonable import to_json
from loopml.errors import InvalidInput
from loopml.ports.prediction_log import INPUT_PREFIX, INPUTS, OUTPUT, PROBA

T = TypeVar("T")
LABELS_SCHEMA = pa.schema([("request_id", pa.string()), ("label_json", pa.string())])
_ALWAYS = {OUTPUT: pa.string(), PROBA: pa.list_(pa.float64())}
"""The typed columns every deployment's schema has (null in a log written without them)."""


def with_typed(typed: pa.Schema) -> pa.Schema:
    """A deployment's columns: the record's, then its typed columns (`typed`, from its schema
    registry), the output and the probabilities among them whether or not it wrote any."""
    missing = [(name, kind) for name, kind in _ALWAYS.items() if name not in typed.names]
    return pa.schema([*PREDICTION_SCHEMA, *missing, *typed])


def time_filter(
    since_us: int | None, until_us: int | None, *, time: str = "time_us"
) -> ds.Expression | None:
    """The exact time bounds, `since_us <= time < until_us`."""
    parts = []
    if since_us is not None:
        parts.append(ds.field(time) >= since_us)
    if until_us is not None:
        parts.append(ds.field(time) < until_us)
    return functools.reduce(operator.and_, parts) if parts else None


def both(left: ds.Expression, right: ds.Expression | None) -> ds.Expression:
    return left if right is None else left & right


def check_columns(columns: list[str] | None, schema: pa.Schema) -> list[str]:
    """`columns` of a deployment whose log has `schema` (`INPUTS` expanded); all by default."""
    if columns is None:
        return list(schema.names)
    typed = [name for name in schema.names if name.startswith(INPUT_PREFIX)]
    wanted = [name for column in columns for name in (typed if column == INPUTS else [column])]
    unknown = sorted(set(wanted) - {*PREDICTION_SCHEMA.names, *_ALWAYS, *typed})
    if unknown:
        raise InvalidInput(
            f"Unknown prediction log columns: {', '.join(unknown)}.",
            f"Choose among: {', '.join([*PREDICTION_SCHEMA.names, *_ALWAYS, INPUTS])}.",
        )
    return list(dict.fromkeys(wanted))


def check_deployment(deployment: str) -> None:
    if not deployment:
        raise InvalidInput("The deployment name is empty.", "Pass the name of a deployment.")


def check_known(deployment: str, known: list[str]) -> None:
    if deployment not in known:
        raise InvalidInput(
            f"The prediction log holds no rows of deployment {deployment!r}.",
            f"Deployments in the log: {', '.join(known) or 'none yet'}.",
        )


def in_time_order(table: pa.Table, *, newest_first: bool) -> pa.Table:
    return table.sort_by([("time_us", "descending" if newest_first else "ascending")])


def with_labels(table: pa.Table, labels: pa.Table) -> pa.Table:
    """`table` with the label of each row's request id from `labels` (one per id, sorted by
    id, as the reader's label queries give them), null where none came; rows keep their order.
    (A lookup, not Arrow's join, which takes no list column such as `proba`.) Only the labels
    whose ids lie between the table's least and greatest are hashed: a piece of a window
    meets an hour's labels a slice at a time, not all of them per piece."""
    labels = _ids_between(labels, table["request_id"])
    if labels.num_rows == 0:
        return table.append_column("label_json", pa.nulls(table.num_rows, pa.string()))
    where = pc.index_in(table["request_id"], value_set=labels["request_id"])
    return table.append_column("label_json", labels["label_json"].take(where))


def _ids_between(labels: pa.Table, ids: pa.ChunkedArray) -> pa.Table:
    """The rows of `labels` (sorted by `request_id`) whose id lies within the range of `ids`,
    found by bisection: two dozen lookups, not a comparison per label for every piece."""
    if labels.num_rows == 0:
        return labels
    bounds = pc.min_max(ids)
    if not bounds["min"].is_valid:
        return labels.slice(0, 0)
    column = _Sorted(labels["request_id"])
    start = bisect.bisect_left(column, bounds["min"].as_py())
    stop = bisect.bisect_right(column, bounds["max"].as_py(), lo=start)
    return labels.slice(start, stop - start)


class _Sorted(Sequence[str]):
    """A sorted string column as a sequence `bisect` can search, one value read per probe."""

    def __init__(self, column: pa.ChunkedArray) -> None:
        self._column = column

    def __len__(self) -> int:
        return len(self._column)

    def __getitem__(self, index: int) -> str:  # type: ignore[override]
        return self._column[index].as_py()  # type: ignore[no-any-return]


def as_text(table: pa.Table) -> pa.Table:
    """`table` with every string column valid UTF-8: a column holding bytes that are not (a
    file another tool wrote) is decoded with replacement characters, so showing a record never
    fails on it; and typed columns written as JSON text into `inputs_json`, `output_json` and
    `proba_json` where those are null, as rows written before typed columns hold them. For the
    few rows a person looks at, not for whole windows."""
    typed = [name for name in table.column_names if name.startswith(INPUT_PREFIX)]
    if typed and "inputs_json" in table.column_names:
        values = table.select(typed).to_pylist()
        text = [
            None if all(v is None for v in row.values()) else to_json(
                {name.removeprefix(INPUT_PREFIX): value for name, value in row.items()}
            ).decode()
            for row in values
        ]  # fmt: skip
        table = _coalesced(table, "inputs_json", text)
    for name in (OUTPUT, PROBA):
        if name in table.column_names and f"{name}_json" in table.column_names:
            written = table[name].to_pylist()
            text = [None if v is None else to_json(v).decode() for v in written]
            table = _coalesced(table, f"{name}_json", text)
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


def _coalesced(table: pa.Table, name: str, text: list[str | None]) -> pa.Table:
    written = pc.coalesce(table[name], pa.array(text, pa.string()))
    return table.set_column(table.column_names.index(name), name, written)


def scan_pieces(
    dataset: ds.FileSystemDataset,
    columns: list[str],
    where: ds.Expression | None,
    rows: int,
    *,
    where_reads: str = "time_us",
) -> Iterator[pa.Table]:
    """`columns` of the rows of `dataset` that match `where` (on the column `where_reads`), in
    tables of at most `rows` rows, none empty: file by file, the row groups whose statistics
    may match read a piece's worth at a time, each piece's byte ranges fetched together (a few
    requests to S3, not one per column chunk). Arrow's dataset scan keeps a file's decoded
    row groups until it is done with the file: hundreds of MB for an hour merged into one."""
    import pyarrow.parquet as pq

    read = columns if where is None or where_reads in columns else [*columns, where_reads]
    target = pa.schema([dataset.schema.field(name) for name in read])
    pending: list[pa.Table] = []
    count = 0
    for fragment in dataset.get_fragments(filter=where):
        kept = fragment if where is None else fragment.subset(filter=where)
        groups = [(group.id, group.num_rows) for group in kept.row_groups]
        if not groups:
            continue
        file = pq.ParquetFile(fragment.open(), metadata=fragment.metadata, pre_buffer=True)
        present = [name for name in read if name in file.schema_arrow.names]
        for chunk in _chunks(groups, rows):
            table = _conformed(file.read_row_groups(chunk, columns=present), target)
            table = table if where is None else table.filter(where).select(columns)
            for start in range(0, table.num_rows, rows):  # a row group larger than a piece
                part = table.slice(start, rows)
                if count + part.num_rows > rows:
                    yield pa.concat_tables(pending)
                    pending, count = [], 0
                pending.append(part)
                count += part.num_rows
    if pending:
        yield pa.concat_tables(pending)


def _chunks(groups: list[tuple[int, int]], rows: int) -> Iterator[list[int]]:
    """Row groups (id, rows) in consecutive runs of at most `rows` rows (a larger group alone)."""
    chunk: list[int] = []
    count = 0
    for group, size in groups:
        if chunk and count + size > rows:
            yield chunk
            chunk, count = [], 0
        chunk.append(group)
        count += size
    if chunk:
        yield chunk


def read_ahead(items: Iterator[T]) -> Iterator[T]:
    """`items`, the next one made on a thread while the caller works on this one: reading a
    piece is Arrow's I/O and decoding, what callers do with it (folding, compressing) mostly
    Arrow's and numpy's kernels; all let go of the GIL, so on two cores they overlap. Memory
    holds one piece more."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1, thread_name_prefix="loopml-read-ahead") as pool:
        coming = pool.submit(next, items, None)
        while (item := coming.result()) is not None:
            coming = pool.submit(next, items, None)
            yield item


def _conformed(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """`table` in `schema`: a column the file was written without is null, others cast."""
    columns = [
        table[field.name] if field.name in table.column_names else pa.nulls(table.num_rows)
        for field in schema
    ]
    return pa.table(columns, names=schema.names).cast(schema)


def joined(tables: list[pa.Table]) -> pa.Table:
    """Rows of several deployments, whose typed input columns may differ."""
    return pa.concat_tables(tables, promote_options="permissive")


def read_paths(
    storage: LogStorage,
    paths: list[str],
    where: ds.Expression | None,
    columns: list[str],
    schema: pa.Schema,
) -> pa.Table:
    """`columns` of the rows of the Parquet files `paths` matching `where` (a file without a
    column, written before it existed, reads it as null)."""
    file_schema = pa.schema([f for f in schema if f.name != "deployment"])
    if not paths:
        return file_schema.empty_table().select(columns)
    return storage.dataset(paths, file_schema).to_table(columns=columns, filter=where)
