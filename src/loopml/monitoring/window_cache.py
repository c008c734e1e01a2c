"""Summaries of a monitor window's settled hours, kept so that the next run folds only what is
new: a monitor over a day that runs every hour reads one hour of the log, not twenty-four.

A whole hour of the window whose end lies `SETTLE_US` behind the run's time is folded on its
own (`WindowFold`) and its state kept under a key made of everything the fold depends on: the
format, loopml's version, the monitor's stored reference summary (its digest: the reference's
bins and the columns' roles), the deployment, the hour, and the names of the files its rows and
their labels are read from (`PredictionReader.files_of`). Log files are never rewritten under a
name, so a file that comes late, a label for one of the hour's requests, a compaction or an
expiry changes the key and the hour is folded again; nothing is ever invalidated by hand. An
hour whose rows have request ids that carry no time is not kept (their labels may come in any
later hour's folder), nor is any hour of a deployment whose requests give event times.

What is kept is plain data, never code: JSON whose numpy arrays are base64 text with a dtype
from a short list, compressed with zstd. An entry that cannot be read back (damaged, another
format) is folded again and replaced. Entries not used for `KEEP_DAYS` days are removed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

CACHE_FORMAT = 1
"""Bumped whenever what a fold's state holds changes meaning."""
HOUR_US = 3_600_000_000
SETTLE_US = 60_000_000
"""How far behind the run's time an hour must end to be kept (its last rows flushed)."""
KEEP_DAYS = 8
_DTYPES = frozenset({"<f8", "<i8", "<u8", "|u1", "|b1"})
"""The array types a kept state may hold."""
_log = logging.getLogger("loopml.monitoring")


def settled_hours(start_us: int, end_us: int, now_us: int) -> list[int]:
    """The starts of the whole UTC hours inside `[start_us, end_us)` that ended at least
    `SETTLE_US` before `now_us`."""
    first = -(-start_us // HOUR_US) * HOUR_US
    last = min(end_us, now_us - SETTLE_US)
    return list(range(first, last - HOUR_US + 1, HOUR_US)) if last >= first + HOUR_US else []


def hour_key(summary_digest: str, deployment: str, hour_us: int, files: str) -> str:
    from loopml import __version__

    made = [CACHE_FORMAT, __version__, summary_digest, deployment, hour_us, files]
    return hashlib.sha256(json.dumps(made).encode()).hexdigest()


class HourCache:
    """Kept states of folded hours, one file each under `folder`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def get(self, key: str) -> dict[str, Any] | None:
        """The state kept under `key`; None when there is none or it cannot be read back."""
        path = self.folder / f"{key}.json.zst"
        try:
            data = path.read_bytes()
        except OSError:
            return None
        try:
            state = decode(data)
            if not isinstance(state, dict):
                raise TypeError("not a fold's state")
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            _log.warning("a kept monitor summary could not be read (%s); folding again", exc)
            return None
        os.utime(path)  # used: kept another KEEP_DAYS days
        return state

    def put(self, key: str, state: dict[str, Any]) -> None:
        """Keep `state` under `key` (whole or not at all); a failure to write only logs."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            path = self.folder / f"{key}.json.zst"
            part = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.part")
            part.write_bytes(encode(state))
            os.replace(part, path)
            self._prune()
        except OSError as exc:
            _log.warning("a monitor summary could not be kept (%s)", exc)

    def _prune(self) -> None:
        oldest = time.time() - KEEP_DAYS * 86_400
        for entry in os.scandir(self.folder):
            if entry.name.endswith(".zst") and entry.stat().st_mtime < oldest:
                Path(entry.path).unlink(missing_ok=True)


def encode(state: Any) -> bytes:
    """`state` (dicts, lists, numbers, text and numpy arrays) as compressed JSON."""
    import pyarrow as pa

    text = json.dumps(_packed(state), separators=(",", ":")).encode()
    packed: bytes = pa.compress(text, "zstd", asbytes=True)
    return len(text).to_bytes(8, "little") + packed


def decode(data: bytes) -> Any:
    """`encode`'s state back; ValueError, KeyError or TypeError for anything else."""
    import pyarrow as pa

    if len(data) < 8:
        raise ValueError("too short")
    size = int.from_bytes(data[:8], "little")
    if size > 1 << 30:
        raise ValueError("too large")
    try:
        text = pa.decompress(data[8:], size, "zstd", asbytes=True)
    except (pa.ArrowException, OSError) as exc:
        raise ValueError(f"not zstd: {exc}") from exc
    return _unpacked(json.loads(text))


def _packed(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            return {"$text": [None if v is None else str(v) for v in value.tolist()]}
        data = np.ascontiguousarray(value)
        return {"$array": data.dtype.str, "shape": list(data.shape),
                "data": base64.b64encode(data.tobytes()).decode()}  # fmt: skip
    if isinstance(value, dict):
        return {str(key): _packed(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_packed(item) for item in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _unpacked(value: Any) -> Any:
    if isinstance(value, dict):
        if "$array" in value:
            dtype = np.dtype(value["$array"])
            if dtype.str not in _DTYPES:
                raise ValueError(f"an array of type {dtype.str} is not kept")
            shape = tuple(int(n) for n in value["shape"])
            raw = base64.b64decode(value["data"], validate=True)
            return np.frombuffer(raw, dtype).reshape(shape).copy()
        if "$text" in value:
            return np.asarray(value["$text"], dtype=object)
        return {key: _unpacked(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_unpacked(item) for item in value]
    return value
