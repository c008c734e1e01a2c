"""TypedValueSerializer: each kind of step output round-trips, and equal values give equal bytes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import zipfile
from collections import namedtuple
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.pandas import column, data_frames, indexes, range_indexes
from sklearn.linear_model import LogisticRegression

from loopml.adapters.flavors.skops_canonical import ZIP_EPOCH
from loopml.adapters.step_values import TypedValueSerializer
from loopml.errors import AlreadyExists, IntegrityError, InvalidInput

SERIALIZER = TypedValueSerializer()
FEATURES = np.array([[0.0, 1.0], [1.0, 0.5], [2.0, 2.5], [3.0, 1.0], [4.0, 3.5], [5.0, 2.0]])
LABELS = np.array([0, 0, 0, 1, 1, 1])


class Point:
    """A plain class: stored with cloudpickle."""

    def __init__(self, x: float, y: float) -> None:
        self.x, self.y = x, y

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Point) and (self.x, self.y) == (other.x, other.y)

    def __hash__(self) -> int:
        return hash((self.x, self.y))


Pair = namedtuple("Pair", ["left", "right"])


def sample_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "count": [3, 1, 2],
            "score": [0.5, float("nan"), 2.25],
            "city": ["Lyon", "Oslo", None],
            "tier": pd.Categorical(["b", "a", "b"], categories=["c", "b", "a"], ordered=True),
            "seen": pd.to_datetime(
                ["2024-01-02 00:00:00", "2024-03-04 05:06:07", "2023-12-31 23:59:59"]
            ),
        },
        index=pd.Index(["r1", "r2", "r3"], name="row"),
    )


def fitted_model() -> LogisticRegression:
    return LogisticRegression().fit(FEATURES, LABELS)


def dump_sample(kind: str, directory: str) -> None:
    """Used by the subprocess determinism tests: dump one sample value into `directory`."""
    value = {"frame": sample_frame, "model": fitted_model}[kind]()
    SERIALIZER.dump(value, Path(directory))


def _roundtrip(value: Any, directory: Path) -> tuple[str, str, Any]:
    serializer, type_name = SERIALIZER.dump(value, directory)
    return serializer, type_name, SERIALIZER.load(serializer, directory)


def _files(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(directory.iterdir())}


def _dump_twice(value: Any, tmp_path: Path) -> tuple[dict[str, bytes], dict[str, bytes]]:
    SERIALIZER.dump(value, tmp_path / "first")
    SERIALIZER.dump(value, tmp_path / "second")
    return _files(tmp_path / "first"), _files(tmp_path / "second")


def test_dataframe_round_trips_through_parquet(tmp_path: Path) -> None:
    frame = sample_frame()

    serializer, type_name, loaded = _roundtrip(frame, tmp_path)

    assert (serializer, type_name) == ("parquet", "pandas.DataFrame")
    assert sorted(_files(tmp_path)) == ["meta.json", "value.parquet"]
    pd.testing.assert_frame_equal(loaded, frame)


@pytest.mark.parametrize(
    "series",
    [
        pd.Series([1.5, 2.5], name="price", index=pd.Index([10, 20], name="id")),
        pd.Series([1, 2, 3]),
        pd.Series(["x", "y"], name=0),
        pd.Series(pd.Categorical(["a", "b", "a"]), name="label"),
    ],
    ids=["named", "unnamed", "name-zero", "categorical"],
)
def test_series_round_trips_with_its_name(series: pd.Series, tmp_path: Path) -> None:
    serializer, type_name, loaded = _roundtrip(series, tmp_path)

    assert (serializer, type_name) == ("parquet", "pandas.Series")
    pd.testing.assert_series_equal(loaded, series)


def test_series_and_one_column_frame_are_different_artifacts(tmp_path: Path) -> None:
    series = pd.Series([1, 2], name="a")
    SERIALIZER.dump(series, tmp_path / "series")
    SERIALIZER.dump(series.to_frame(), tmp_path / "frame")

    assert _files(tmp_path / "series") != _files(tmp_path / "frame")
    assert isinstance(SERIALIZER.load("parquet", tmp_path / "frame"), pd.DataFrame)


@pytest.mark.parametrize(
    "frame",
    [
        pd.DataFrame({"a": pd.Categorical([1, 2, 1])}),
        pd.DataFrame({"a": pd.Series([1, "x"], dtype=object)}),
        pd.DataFrame({"a": [[1, 2], [3]]}),
        pd.DataFrame([[1, 2]], columns=["a", "a"]),
        pd.DataFrame([[1, 2]], columns=[1, "1"]),
        pd.DataFrame({"a": [1 + 2j]}),
    ],
    ids=[
        "int-categories",
        "mixed-objects",
        "lists",
        "duplicate-columns",
        "mixed-labels",
        "complex",
    ],
)
def test_frame_parquet_would_change_falls_through_to_pickle(
    frame: pd.DataFrame, tmp_path: Path
) -> None:
    serializer, _, loaded = _roundtrip(frame, tmp_path)

    assert serializer == "pickle"
    assert sorted(_files(tmp_path)) == ["value.pkl"]
    pd.testing.assert_frame_equal(loaded, frame)


@pytest.mark.parametrize(
    "frame",
    [
        pd.DataFrame({"a": pd.Series([b"x", None], dtype=object)}),
        pd.DataFrame({"a": pd.Series([Decimal("1.5"), Decimal("2")], dtype=object)}),
        pd.DataFrame(
            {"a": pd.array([1, None], dtype="Int64")}, index=pd.CategoricalIndex(["u", "v"])
        ),
        pd.DataFrame(
            [[1, 2.5]],
            columns=pd.MultiIndex.from_tuples([("x", "a"), ("y", "b")]),
            index=pd.MultiIndex.from_tuples([("k", 1)], names=["s", "n"]),
        ),
        pd.DataFrame({"a": [1, 2]}, index=pd.date_range("2024-01-01", periods=2, freq="W-MON")),
        pd.DataFrame({"p": pd.period_range("2024-01", periods=2, freq="M")}),
    ],
    ids=["bytes", "decimals", "nullable-int", "multi-index", "index-freq", "periods"],
)
def test_frames_parquet_keeps_stay_parquet(frame: pd.DataFrame, tmp_path: Path) -> None:
    serializer, _, loaded = _roundtrip(frame, tmp_path)

    assert serializer == "parquet"
    pd.testing.assert_frame_equal(loaded, frame)


def test_object_column_of_strings_comes_back_with_its_dtype(tmp_path: Path) -> None:
    # pandas 3 reads parquet strings as the str dtype, so such a frame is pickled there instead.
    frame = pd.DataFrame({"a": pd.Series(["x", None], dtype=object)})

    _, _, loaded = _roundtrip(frame, tmp_path)

    pd.testing.assert_frame_equal(loaded, frame)


@pytest.mark.parametrize(
    "array",
    [
        np.arange(12, dtype=np.int32).reshape(3, 4),
        np.linspace(0.0, 1.0, 5),
        np.array([True, False]),
        np.array(["ab", "c"]),
        np.array(["2024-01-01", "2024-02-01"], dtype="datetime64[D]"),
        np.asfortranarray(np.ones((2, 3), dtype=np.float32)),
        np.array(7, dtype=np.uint8),
    ],
    ids=["int32-2d", "float64", "bool", "unicode", "datetime64", "fortran", "0-d"],
)
def test_ndarray_round_trips_through_numpy(array: np.ndarray[Any, Any], tmp_path: Path) -> None:
    serializer, type_name, loaded = _roundtrip(array, tmp_path)

    assert (serializer, type_name) == ("numpy", "numpy.ndarray")
    assert loaded.dtype == array.dtype
    np.testing.assert_array_equal(loaded, array)


def test_object_array_falls_through_to_pickle(tmp_path: Path) -> None:
    array = np.array([1, "x", None], dtype=object)

    serializer, _, loaded = _roundtrip(array, tmp_path)

    assert serializer == "pickle"
    assert loaded.tolist() == [1, "x", None]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"b": [1, 2.5, None], "a": {"nested": [True, "é", {"deep": []}]}}, None),
        ([1, (2, 3), {"k": (4,)}], [1, [2, 3], {"k": [4]}]),
        ((1, "two", [3.0]), None),
        ("text", None),
        (None, None),
        (False, None),
        (10**30, None),
    ],
    ids=[
        "nested-dict",
        "inner-tuples-become-lists",
        "top-level-tuple",
        "str",
        "none",
        "bool",
        "big-int",
    ],
)
def test_json_values_round_trip(value: Any, expected: Any, tmp_path: Path) -> None:
    serializer, type_name, loaded = _roundtrip(value, tmp_path)

    assert serializer == "json"
    assert type_name == f"builtins.{type(value).__qualname__}"
    assert loaded == (value if expected is None else expected)
    assert type(loaded) is type(value)


def test_json_is_canonical(tmp_path: Path) -> None:
    SERIALIZER.dump({"b": 1, "a": [1.5, "ü"]}, tmp_path / "one")
    SERIALIZER.dump({"a": [1.5, "ü"], "b": 1}, tmp_path / "two")

    assert _files(tmp_path / "one") == _files(tmp_path / "two")
    assert (tmp_path / "one" / "value.json").read_bytes() == '{"a":[1.5,"ü"],"b":1}'.encode()


def test_list_and_tuple_are_different_artifacts(tmp_path: Path) -> None:
    SERIALIZER.dump([1, 2], tmp_path / "list")
    SERIALIZER.dump((1, 2), tmp_path / "tuple")

    assert _files(tmp_path / "list") != _files(tmp_path / "tuple")


@pytest.mark.parametrize(
    "value",
    [
        float("nan"),
        {"x": float("inf")},
        np.float64(1.5),
        Pair(1, 2),
        {1: "int key"},
        {"a", "b"},
        Point(1.0, 2.0),
    ],
    ids=["nan", "inf-inside", "numpy-scalar", "namedtuple", "int-key", "set", "custom-class"],
)
def test_values_json_cannot_keep_are_pickled_with_their_type(value: Any, tmp_path: Path) -> None:
    serializer, type_name, loaded = _roundtrip(value, tmp_path)

    assert serializer == "pickle"
    assert type_name == f"{type(value).__module__}.{type(value).__qualname__}"
    assert type(loaded) is type(value)
    assert loaded == value or (value != value and loaded != loaded)  # noqa: PLR0124 (NaN)


def test_local_function_round_trips_through_pickle(tmp_path: Path) -> None:
    offset = 3

    def shift(x: int) -> int:
        return x + offset

    serializer, _, loaded = _roundtrip(shift, tmp_path)

    assert serializer == "pickle"
    assert loaded(4) == 7


def test_fitted_model_round_trips_through_the_sklearn_flavor(tmp_path: Path) -> None:
    model = fitted_model()

    serializer, type_name, loaded = _roundtrip(model, tmp_path)

    assert serializer == "sklearn"
    assert type_name == "sklearn.linear_model._logistic.LogisticRegression"
    assert sorted(_files(tmp_path)) == ["flavor.json", "model.skops"]
    assert json.loads((tmp_path / "flavor.json").read_text())["flavor"] == "sklearn"
    np.testing.assert_array_equal(loaded.predict(FEATURES), model.predict(FEATURES))
    np.testing.assert_array_equal(loaded.predict_proba(FEATURES), model.predict_proba(FEATURES))


def test_skops_zip_carries_no_time_and_no_memory_addresses(tmp_path: Path) -> None:
    SERIALIZER.dump(fitted_model(), tmp_path)

    with zipfile.ZipFile(tmp_path / "model.skops") as archive:
        infos = archive.infolist()
        schema = archive.read("schema.json").decode()

    assert [info.filename for info in infos] == sorted(info.filename for info in infos)
    assert {info.date_time for info in infos} == {ZIP_EPOCH}
    data_files = [info.filename for info in infos if info.filename != "schema.json"]
    assert data_files == sorted(f"{n}.npy" for n in range(1, len(data_files) + 1))
    assert all(len(str(ident)) < 6 for ident in _ids(json.loads(schema)))


def _ids(node: Any) -> list[int]:
    if isinstance(node, list):
        return [i for item in node for i in _ids(item)]
    if not isinstance(node, dict):
        return []
    own = [node["__id__"]] if "__id__" in node else []
    return own + [i for item in node.values() for i in _ids(item)]


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(fitted_model(), id="sklearn"),
        pytest.param(np.arange(10.0).reshape(2, 5), id="numpy"),
        pytest.param({"b": [1, 2], "a": None}, id="json"),
        pytest.param(sample_frame(), id="parquet"),
    ],
)
def test_same_value_gives_identical_bytes_in_one_process(value: Any, tmp_path: Path) -> None:
    first, second = _dump_twice(value, tmp_path)

    assert first == second


def _dump_in_subprocess(kind: str, directory: Path, hash_seed: str) -> dict[str, bytes]:
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import test_step_values as t; "
        "t.dump_sample(sys.argv[2], sys.argv[3])"
    )
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    args = [sys.executable, "-c", code, str(Path(__file__).parent), kind, str(directory)]
    subprocess.run(args, check=True, env=env, capture_output=True)
    return _files(directory)


@pytest.mark.parametrize("kind", ["frame", "model"])
def test_same_value_gives_identical_bytes_across_processes(kind: str, tmp_path: Path) -> None:
    first = _dump_in_subprocess(kind, tmp_path / "first", hash_seed="1")
    second = _dump_in_subprocess(kind, tmp_path / "second", hash_seed="2")

    assert first == second
    dump_sample(kind, str(tmp_path / "here"))
    assert _files(tmp_path / "here") == first


def _generator() -> Any:
    return (i for i in range(3))


@pytest.mark.parametrize(
    ("make", "type_name"),
    [
        (threading.Lock, "_thread.lock"),
        (_generator, "builtins.generator"),
        (socket.socket, "socket.socket"),
        (lambda: {"key": threading.Lock()}, "builtins.dict"),
    ],
    ids=["lock", "generator", "socket", "dict-holding-lock"],
)
def test_unserializable_value_is_refused_and_leaves_no_file(
    make: Callable[[], Any], type_name: str, tmp_path: Path
) -> None:
    value = make()
    try:
        with pytest.raises(InvalidInput, match="cannot serialize") as caught:
            SERIALIZER.dump(value, tmp_path)
    finally:
        if isinstance(value, socket.socket):
            value.close()

    assert type_name in caught.value.message
    assert "a DataFrame, an array, JSON data, a model, or a picklable object" in caught.value.hint
    assert list(tmp_path.iterdir()) == []


def test_dump_refuses_a_folder_that_is_not_empty(tmp_path: Path) -> None:
    (tmp_path / "left-over.txt").write_text("x")

    with pytest.raises(AlreadyExists, match="not empty"):
        SERIALIZER.dump([1], tmp_path)


def test_unknown_serializer_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="Unknown step value serializer 'feather'") as caught:
        SERIALIZER.load("feather", tmp_path)

    from loopml.adapters.flavors.base import flavors

    stored = [f.name for f in flavors() if f.step_values]  # every flavor that stores steps
    assert (
        caught.value.hint
        == f"Use one of: {', '.join(['parquet', 'numpy', 'json', *stored, 'pickle'])}."
    )
    assert "sklearn" in stored


VALUES: dict[str, Callable[[], Any]] = {
    "frame": sample_frame,
    "array": lambda: np.arange(3),
    "json": lambda: {"a": 1},
    "model": fitted_model,
    "object": lambda: Point(1.0, 2.0),
}


@pytest.mark.parametrize(
    ("kind", "missing"),
    [
        ("frame", "value.parquet"),
        ("frame", "meta.json"),
        ("array", "value.npy"),
        ("json", "value.json"),
        ("json", "meta.json"),
        ("model", "model.skops"),
        ("model", "flavor.json"),
        ("object", "value.pkl"),
    ],
)
def test_missing_file_is_an_integrity_error_naming_it(
    kind: str, missing: str, tmp_path: Path
) -> None:
    serializer, _ = SERIALIZER.dump(VALUES[kind](), tmp_path)
    (tmp_path / missing).unlink()

    with pytest.raises(IntegrityError, match=missing.replace(".", r"\.")):
        SERIALIZER.load(serializer, tmp_path)


def test_importing_the_module_loads_no_heavy_library() -> None:
    code = (
        "import sys, loopml.adapters.step_values; print(sorted({'pandas', 'numpy', 'pyarrow', "
        "'sklearn', 'skops', 'cloudpickle'} & set(sys.modules)))"
    )

    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )

    assert result.stdout.strip() == "[]"


JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=15,
)


@settings(deadline=None, max_examples=50)
@given(value=JSON_VALUES)
def test_json_able_values_round_trip(value: Any, tmp_path_factory: pytest.TempPathFactory) -> None:
    directory = tmp_path_factory.mktemp("json")

    serializer, _, loaded = _roundtrip(value, directory)

    assert serializer == "json"
    assert loaded == value


NUMERIC_FRAMES = data_frames(
    columns=[
        column("count", dtype="int64"),
        column("ratio", dtype="float64"),
        column("flag", dtype="bool"),
    ],
    index=range_indexes(max_size=8) | indexes(dtype="int64", max_size=8),
)


@settings(deadline=None, max_examples=30)
@given(frame=NUMERIC_FRAMES)
def test_numeric_frames_round_trip_and_repeat_bytes(
    frame: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory
) -> None:
    directory = tmp_path_factory.mktemp("frame")

    serializer, _, loaded = _roundtrip(frame, directory / "a")

    assert serializer == "parquet"
    pd.testing.assert_frame_equal(loaded, frame)
    SERIALIZER.dump(frame, directory / "b")
    assert _files(directory / "a") == _files(directory / "b")
