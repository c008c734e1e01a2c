"""Step outputs as files: a serializer chosen by the value's type, and the same bytes every time.

An artifact is named by the digest of its files, so `dump` must write identical bytes for equal
values, in any process. The serializers, tried in this order:

    parquet   pandas DataFrame or Series (`value.parquet` + `meta.json`: which of the two)
    numpy     numpy ndarray without Python objects (`value.npy`)
    json      None, bool, int, finite float, str, and lists/tuples/dicts of these with str keys
              (`value.json`, canonical; `meta.json` says whether the top level was a tuple)
    sklearn   scikit-learn estimators through the sklearn flavor (`model.skops` + `flavor.json`),
              and so every model flavor that says it stores step values, under its name
    pickle    anything else cloudpickle can write (`value.pkl`)

A value a serializer cannot store faithfully (a frame parquet would give back changed, an object
array, NaN in JSON, an estimator skops refuses) falls through to the next one. Pickle bytes are
stable for most values, but not across processes for sets of str (hash randomization). Heavy
libraries are imported inside the functions that use them, so importing this module stays light.
"""

from __future__ import annotations

import json
import math
import pickle
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loopml.adapters.flavors.base import flavors, loaded_class
from loopml.errors import AlreadyExists, IntegrityError, InvalidInput
from loopml.ports import Flavor

META_FILE = "meta.json"
META_SCHEMA_VERSION = 1
FLAVOR_FILE = "flavor.json"


class _Unsuitable(Exception):
    """This serializer cannot store the value faithfully; the next one is tried."""


@dataclass(frozen=True)
class _Serializer:
    name: str
    accepts: Callable[[Any], bool]
    write: Callable[[Any, Path], None]
    read: Callable[[Path], Any]


class TypedValueSerializer:
    """The `ValueSerializer` port: the first serializer that can store a value writes it."""

    def dump(self, value: Any, directory: Path) -> tuple[str, str]:
        _require_empty(directory)
        for serializer in serializers():
            if serializer.accepts(value) and _write_or_clear(serializer, value, directory):
                return serializer.name, _type_name(value)
        raise AssertionError("unreachable: the pickle serializer accepts every value")

    def load(self, serializer: str, directory: Path) -> Any:
        for candidate in serializers():
            if candidate.name == serializer:
                return candidate.read(directory)
        raise InvalidInput(
            f"Unknown step value serializer {serializer!r}.",
            f"Use one of: {', '.join(s.name for s in serializers())}.",
        )

    def may_hold_model(self, serializer: str) -> bool:
        return serializer == "pickle" or any(
            flavor.name == serializer and flavor.step_values for flavor in flavors()
        )


def _write_or_clear(serializer: _Serializer, value: Any, directory: Path) -> bool:
    """Write with `serializer`; on any failure leave `directory` empty. False means unsuitable."""
    try:
        serializer.write(value, directory)
    except BaseException as error:
        _clear(directory)
        if isinstance(error, _Unsuitable):
            return False
        raise
    return True


def _require_empty(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    if any(directory.iterdir()):
        raise AlreadyExists(
            f"Cannot write a step value into {directory}: the folder is not empty.",
            "Pass a new, empty folder.",
        )


def _clear(directory: Path) -> None:
    for entry in directory.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _type_name(value: Any) -> str:
    return f"{type(value).__module__}.{type(value).__qualname__}"


def _existing(directory: Path, name: str) -> Path:
    path = directory / name
    if not path.is_file():
        raise IntegrityError(
            f"The step value file {name} is missing from {directory}.",
            "The artifact was stored incompletely; rerun the step that produced it with "
            "--no-cache.",
        )
    return path


def _canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _write_meta(directory: Path, kind: str, **extra: Any) -> None:
    meta = {"kind": kind, "schema_version": META_SCHEMA_VERSION, **extra}
    (directory / META_FILE).write_bytes(_canonical_json(meta))


def _read_json(directory: Path, name: str) -> Any:
    return json.loads(_existing(directory, name).read_bytes().decode("utf-8"))


# parquet: pandas frames and series
def _is_pandas_frame_or_series(value: Any) -> bool:
    return type(value) in (loaded_class("pandas", "DataFrame"), loaded_class("pandas", "Series"))


def _write_parquet(value: Any, directory: Path) -> None:
    import pandas as pd
    import pyarrow.parquet as pq

    series = isinstance(value, pd.Series)
    if series and not _is_json_scalar(value.name):
        raise _Unsuitable
    table = _arrow_table(value.to_frame() if series else value)
    pq.write_table(table, directory / "value.parquet", compression="snappy", version="2.6")
    extra = {"name": value.name} if series else {}
    if getattr(value.index, "freq", None) is not None:  # parquet keeps no DatetimeIndex freq
        extra["index_freq"] = value.index.freqstr
    _write_meta(directory, "series" if series else "frame", **extra)


def _arrow_table(frame: Any) -> Any:
    """The frame as an Arrow table, or _Unsuitable when parquet would not give it back equal."""
    import pyarrow as pa
    from pandas.api.types import infer_dtype

    if any("mixed" in infer_dtype(level) for level in _levels(frame.columns)):
        raise _Unsuitable  # pyarrow would turn the labels into strings
    try:
        table = pa.Table.from_pandas(frame, preserve_index=None)
    except (pa.ArrowException, ValueError, TypeError) as error:
        raise _Unsuitable from error
    if not all(map(_round_trips, table.schema.types)):
        raise _Unsuitable
    if _dtypes(frame) != _dtypes(table.slice(0, 0).to_pandas()):
        raise _Unsuitable  # e.g. object columns of str come back as the str dtype in pandas 3
    return table


def _levels(index: Any) -> list[Any]:
    return list(getattr(index, "levels", [index]))


def _dtypes(frame: Any) -> list[Any]:
    """The dtypes parquet must give back: of the columns, the index levels and the label levels."""
    labels = [*_levels(frame.index), *_levels(frame.columns)]
    return [*frame.dtypes, *(level.dtype for level in labels)]


def _round_trips(arrow_type: Any) -> bool:
    """Parquet gives categoricals back only for string categories, and nested values as arrays."""
    import pyarrow as pa

    if pa.types.is_dictionary(arrow_type):
        value_type = arrow_type.value_type
        return bool(pa.types.is_string(value_type) or pa.types.is_large_string(value_type))
    return not pa.types.is_nested(arrow_type)


def _read_parquet(directory: Path) -> Any:
    import pyarrow.parquet as pq

    meta = _read_json(directory, META_FILE)
    frame = pq.read_table(_existing(directory, "value.parquet")).to_pandas()
    if meta.get("index_freq"):
        frame.index = type(frame.index)(frame.index, freq=meta["index_freq"])
    if meta.get("kind") == "series":
        return frame.iloc[:, 0].rename(meta.get("name"))
    return frame


# numpy: plain arrays
def _is_plain_array(value: Any) -> bool:
    return type(value) is loaded_class("numpy", "ndarray") and not value.dtype.hasobject


def _write_numpy(value: Any, directory: Path) -> None:
    import numpy as np

    np.save(directory / "value.npy", value, allow_pickle=False)


def _read_numpy(directory: Path) -> Any:
    import numpy as np

    return np.load(_existing(directory, "value.npy"), allow_pickle=False)


# json: canonical JSON data
def _is_json_scalar(value: Any) -> bool:
    if type(value) is float:
        return math.isfinite(value)
    return value is None or type(value) in (bool, int, str)


def _is_json_value(value: Any) -> bool:
    if type(value) in (list, tuple):
        return all(_is_json_value(item) for item in value)
    if type(value) is dict:
        return all(type(k) is str and _is_json_value(v) for k, v in value.items())
    return _is_json_scalar(value)


def _write_json(value: Any, directory: Path) -> None:
    try:
        data = _canonical_json(value)
    except UnicodeEncodeError as error:  # a lone surrogate in a str
        raise _Unsuitable from error
    (directory / "value.json").write_bytes(data)
    _write_meta(directory, "tuple" if type(value) is tuple else "value")


def _read_json_value(directory: Path) -> Any:
    value = _read_json(directory, "value.json")
    return tuple(value) if _read_json(directory, META_FILE).get("kind") == "tuple" else value


# model flavors that store step values (sklearn estimators, through skops), made byte-stable
def _flavor_serializer(flavor: Flavor) -> _Serializer:
    def write(value: Any, directory: Path) -> None:
        try:
            info = flavor.save(value, directory)
        except InvalidInput as error:  # the flavor cannot store it; cloudpickle may
            raise _Unsuitable from error
        (directory / FLAVOR_FILE).write_bytes(_canonical_json(info))

    def read(directory: Path) -> Any:
        info = _read_json(directory, FLAVOR_FILE)
        for name in flavor.files:
            _existing(directory, name)
        return flavor.load(directory, info, trust_pickle=False).raw

    return _Serializer(flavor.name, flavor.accepts, write, read)


# pickle: everything else
def _write_pickle(value: Any, directory: Path) -> None:
    import cloudpickle

    try:
        data = cloudpickle.dumps(value)
    except (pickle.PicklingError, TypeError, AttributeError, ValueError, RecursionError) as error:
        raise InvalidInput(
            f"Cannot store the step's return value of type {_type_name(value)}: cloudpickle "
            f"cannot serialize it ({error}).",
            "A step must return something serializable: a DataFrame, an array, JSON data, a "
            "model, or a picklable object (not a lock, a socket, a generator or an open file).",
        ) from error
    (directory / "value.pkl").write_bytes(data)


def _read_pickle(directory: Path) -> Any:
    import cloudpickle

    return cloudpickle.loads(_existing(directory, "value.pkl").read_bytes())


def serializers() -> tuple[_Serializer, ...]:
    """Tried in order on dump; looked up by name on load."""
    return (
        _Serializer("parquet", _is_pandas_frame_or_series, _write_parquet, _read_parquet),
        _Serializer("numpy", _is_plain_array, _write_numpy, _read_numpy),
        _Serializer("json", _is_json_value, _write_json, _read_json_value),
        *(_flavor_serializer(flavor) for flavor in flavors() if flavor.step_values),
        _Serializer("pickle", lambda value: True, _write_pickle, _read_pickle),
    )
