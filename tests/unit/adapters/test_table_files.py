"""Reading table files: CSV, TSV and Parquet read into the same table; anything else is refused
with an error that names the file and says what was expected."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from loopml.adapters.table_files import describe_table_file, is_tabular, read_table
from loopml.domain.profile import NumericStats
from loopml.domain.table_schema import LogicalType
from loopml.errors import InvalidInput, NotFound

EXPECTED = pa.table({"age": [31, 45, None], "plan": ["free", "pro", "free"]})


def write_text(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("name", "text"),
    [
        pytest.param("users.csv", "age,plan\n31,free\n45,pro\n,free\n", id="csv"),
        pytest.param("users.tsv", "age\tplan\n31\tfree\n45\tpro\n\tfree\n", id="tsv"),
        pytest.param("USERS.CSV", "age,plan\n31,free\n45,pro\n,free\n", id="upper-suffix"),
    ],
)
def test_delimited_files_read_into_typed_tables(tmp_path: Path, name: str, text: str) -> None:
    table = read_table(write_text(tmp_path / name, text))

    assert table.equals(EXPECTED)


@pytest.mark.parametrize("suffix", [".parquet", ".pq"])
def test_parquet_files_read_into_tables(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"users{suffix}"
    pq.write_table(EXPECTED, path)

    assert read_table(path).equals(EXPECTED)


def test_describe_table_file_gives_schema_and_profile(tmp_path: Path) -> None:
    path = write_text(tmp_path / "t.csv", "x,flag\n1,true\n2,false\n3,true\n4,true\n")

    schema, profile = describe_table_file(path)

    assert schema.column("x").logical_type is LogicalType.INTEGER
    assert schema.column("flag").logical_type is LogicalType.BOOLEAN
    stats = profile.column("x").stats
    assert isinstance(stats, NumericStats)
    assert (profile.rows, stats.mean) == (4, 2.5)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.csv", True),
        ("a.tsv", True),
        ("a.parquet", True),
        ("a.PQ", True),
        ("a.png", False),
        ("a.csv.gz", False),
        ("csv", False),
    ],
)
def test_is_tabular_goes_by_suffix(name: str, expected: bool) -> None:
    assert is_tabular(Path(name)) is expected


def test_a_file_of_another_kind_is_refused_with_what_was_expected(tmp_path: Path) -> None:
    path = tmp_path / "cat.png"
    path.write_bytes(b"\x89PNG\r\n")

    with pytest.raises(InvalidInput) as raised:
        read_table(path)

    assert str(path) in raised.value.message
    assert "is not a CSV or Parquet file (suffix '.png')" in raised.value.message
    assert ".csv, .tsv or .parquet" in raised.value.hint
    assert "without a profile" in raised.value.hint


def test_a_corrupt_parquet_file_is_invalid_input(tmp_path: Path) -> None:
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"this is not parquet at all")

    with pytest.raises(InvalidInput, match="could not be read as Parquet") as raised:
        read_table(path)

    assert str(path) in raised.value.message
    assert "without a profile" in raised.value.hint


def test_a_ragged_csv_is_invalid_input(tmp_path: Path) -> None:
    path = write_text(tmp_path / "ragged.csv", "a,b\n1,2\n3,4,5\n")

    with pytest.raises(InvalidInput, match="could not be read as CSV"):
        read_table(path)


def test_a_missing_file_is_not_found(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.csv"

    with pytest.raises(NotFound, match=r"nowhere\.csv"):
        read_table(path)


def test_a_directory_is_not_a_table_file(tmp_path: Path) -> None:
    path = tmp_path / "partitioned.parquet"
    path.mkdir()

    with pytest.raises(InvalidInput, match="is a directory"):
        read_table(path)
