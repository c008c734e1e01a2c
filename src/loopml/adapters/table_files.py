"""Reading tabular files (CSV, TSV, Parquet) into Arrow tables, to infer schemas and profiles."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from loopml.errors import InvalidInput, NotFound

if TYPE_CHECKING:  # Arrow is imported by the functions that read, so `is_tabular` stays light
    import pandas as pd
    import pyarrow as pa

    from loopml.domain.profile import TableProfile
    from loopml.domain.table_schema import TableSchema

FORMATS = {".csv": "CSV", ".tsv": "TSV", ".parquet": "Parquet", ".pq": "Parquet"}
"""Tabular formats by lowercase file suffix."""

_FALLBACK_HINT = "or add it as plain files without a profile."


def is_tabular(path: Path) -> bool:
    """True when `path` has a suffix `read_table` reads."""
    return path.suffix.lower() in FORMATS


def read_table(path: Path) -> pa.Table:
    """The table in the CSV, TSV or Parquet file at `path`, read with all cores."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    file_format = _format_of(path)
    try:
        if file_format == "Parquet":
            return pq.read_table(path, use_threads=True)
        delimiter = "\t" if file_format == "TSV" else ","
        return pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(use_threads=True),
            parse_options=pacsv.ParseOptions(delimiter=delimiter),
        )
    except (pa.ArrowException, OSError) as exc:
        raise InvalidInput(
            f"{path} could not be read as {file_format}: {exc}",
            f"Check that the file is valid {file_format}, {_FALLBACK_HINT}",
        ) from exc


def read_frame(paths: Sequence[Path]) -> pd.DataFrame | None:
    """The first tabular file among `paths` as a pandas data frame, or None if none is."""
    for path in paths:
        if is_tabular(path):
            frame: pd.DataFrame = read_table(path).to_pandas()
            return frame
    return None


def describe_table_file(path: Path) -> tuple[TableSchema, TableProfile]:
    """The inferred schema of the table file at `path`, and its profile."""
    from loopml.domain.profile import profile_table
    from loopml.domain.table_schema import infer_schema

    table = read_table(path)
    schema = infer_schema(table)
    return schema, profile_table(table, schema)


def _format_of(path: Path) -> str:
    if not path.exists():
        raise NotFound(f"No file at {path}.", "Check the path, and that the file was not moved.")
    file_format = FORMATS.get(path.suffix.lower())
    if file_format is None:
        raise InvalidInput(
            f"{path} is not a CSV or Parquet file (suffix {path.suffix!r}).",
            f"Give a .csv, .tsv or .parquet file, {_FALLBACK_HINT}",
        )
    if not path.is_file():
        raise InvalidInput(
            f"{path} is a directory, not a {file_format} file.",
            f"Give one {file_format} file, {_FALLBACK_HINT}",
        )
    return file_format
