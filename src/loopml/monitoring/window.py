"""A monitor's window of the prediction log: the rows a deployment answered in it, and their
JSON read as the reference's column kinds.

`read_served` reads the log (shadow rows left out, the latest fed-back label joined on);
`read_window` reads the inputs, and the outputs and labels when the reference has those roles,
never failing on what the log holds (`loopml.monitoring.json_columns`): a value a column cannot
read is null, counted and listed with a few request ids to look it up.
A drift monitor folds its window piece by piece (`fold_window`, `WindowFold`): each piece of
the log is read, parsed and counted into the summaries the report is made of (quality counts,
drift bins and categories, the rows' hashes for duplicates, confusion counts, regression sums
and class probabilities on a grid), then dropped, so memory stays flat however long the
window.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from loopml.bootstrap import Workspace, prediction_log_reader
from loopml.domain.request_ids import UUID7_TEXT
from loopml.errors import IntegrityError, Unavailable
from loopml.monitoring.column_kinds import VECTOR, Parsed, Unreadable
from loopml.monitoring.drift import DriftCounts, Reference
from loopml.monitoring.json_columns import conform, read_objects, read_values
from loopml.monitoring.performance import PerformanceCounts, json_values
from loopml.monitoring.quality import QualityCounts
from loopml.monitoring.references import PREDICTION
from loopml.monitoring.window_cache import HOUR_US, HourCache, hour_key, settled_hours
from loopml.ports.prediction_log import (
    INPUT_PREFIX,
    INPUTS,
    OUTPUT,
    PIECE_ROWS,
    PROBA,
    LogChanged,
    PredictionReader,
)

LOG_COLUMNS = [
    "request_id",
    "time_us",
    "model",
    "model_version",
    "inputs_json",
    INPUTS,
    "output_json",
    OUTPUT,
    "proba_json",
    PROBA,
    "shadow",
]
_log = logging.getLogger("loopml.monitoring")
EXAMPLES = 3
"""Request ids kept per kind of unreadable value, to look the rows up (`loopml predictions`)."""


def read_served(
    ws: Workspace, deployment: str, start_us: int, end_us: int, *, extra: Sequence[str] = ()
) -> pa.Table:
    """The rows `deployment` answered whose time (event time, else serving time) lies in
    `[start_us, end_us)` (shadow rows left out), with the latest label fed back for each (null
    where none came); `extra` log columns (such as `event_time_us`) are added."""
    with _log_errors(deployment):
        log = prediction_log_reader(ws.settings).read(
            deployment,
            since_us=start_us,
            until_us=end_us,
            columns=[*LOG_COLUMNS, *extra],
            with_feedback=True,
        )
    return log.filter(pc.invert(pc.fill_null(log["shadow"], False)))


@contextmanager
def _log_errors(deployment: str) -> Iterator[None]:
    """The log's read errors as loopml's: a damaged file, a store that does not answer."""
    try:
        yield
    except pa.ArrowInvalid as exc:  # a file cut short or damaged, which Arrow cannot open
        raise IntegrityError(
            f"The prediction log of deployment {deployment!r} holds a file that cannot be read "
            "(cut short or damaged); nothing was stored.",
            "Move the file named in the log of this process out of the prediction log's "
            "folder, then run again.",
        ) from exc
    except OSError as exc:
        raise Unavailable(
            f"The prediction log of deployment {deployment!r} could not be read "
            f"({type(exc).__name__}); nothing was stored.",
            "Check that the artifact store answers; trying again may succeed.",
        ) from exc


def read_window(served: pa.Table, reference: Reference, roles: Mapping[str, Any]) -> Parsed:
    """The served rows' inputs, plus their outputs (`prediction`) and fed-back labels when the
    reference has those roles, each column read as the reference's kind; never raises on what
    the log holds."""
    sources: dict[str, Any] = {}
    if roles.get("prediction"):
        sources[PREDICTION] = lambda kind: read_outputs(served, kind)
    if roles.get("label"):
        sources[str(roles["label"])] = lambda kind: read_values(served["label_json"], kind)
    inputs = {name: kind for name, kind in reference.kinds.items() if name not in sources}
    parsed = read_inputs(served, inputs)
    table, found = parsed.table, list(parsed.unreadable)
    for name, read in sources.items():
        values = read(reference.kinds.get(name))
        if name in table.column_names:  # an input of that name: the role's column wins
            table = table.drop_columns([name])
        table = table.append_column(name, values.table["value"])
        found += [Unreadable(name, u.kind, u.rows) for u in values.unreadable]
    return Parsed(table, tuple(found))


def read_inputs(served: pa.Table, kinds: Mapping[str, str] | None = None) -> Parsed:
    """The served rows' inputs, one column per feature (read as `kinds`, when given): from the
    typed input columns, and from the JSON text of rows logged before those existed."""
    parsed = read_objects(served["inputs_json"], kinds)
    typed = {
        name.removeprefix(INPUT_PREFIX): served[name]
        for name in served.column_names
        if name.startswith(INPUT_PREFIX) and (kinds is None or name[len(INPUT_PREFIX) :] in kinds)
    }
    if not typed:
        return parsed
    read = conform(pa.table(typed), kinds)
    table = parsed.table
    for name in read.table.column_names:
        column = read.table[name]
        if name in table.column_names and table[name].null_count < table.num_rows:
            column = _either(column, table[name])
        table = table.drop_columns([name]) if name in table.column_names else table
        table = table.append_column(name, column)
    return Parsed(table, (*parsed.unreadable, *read.unreadable))


def read_outputs(served: pa.Table, kind: str | None = None) -> Parsed:
    """The served rows' outputs as one column, `value` (read as `kind`, when given): the typed
    output, and the one read from JSON text where a row has none."""
    text = served["output_json"]
    typed = served[OUTPUT] if OUTPUT in served.column_names else None
    if typed is None or typed.null_count == len(typed):
        return read_values(text, kind)
    read = conform(pa.table({"value": typed}), None if kind is None else {"value": kind})
    if text.null_count == len(text):
        return read
    from_text = read_values(text, kind)
    value = _either(read.table["value"], from_text.table["value"])
    return Parsed(pa.table({"value": value}), (*read.unreadable, *from_text.unreadable))


def read_scores(served: pa.Table) -> pa.ChunkedArray:
    """The served rows' class probabilities, a list of floats per row (null where the server
    computed none): typed, else read from JSON text."""
    typed = served[PROBA] if PROBA in served.column_names else None
    text = served["proba_json"]
    if typed is not None and text.null_count == len(text):
        return typed.cast(pa.list_(pa.float64()))
    from_text = json_values(text, VECTOR)
    return from_text if typed is None else _either(typed, from_text)


def _either(typed: pa.ChunkedArray, text: pa.ChunkedArray) -> pa.ChunkedArray:
    """Per row, the typed value, else the one read from JSON text (as text when the two
    kinds differ)."""
    if typed.type != text.type:
        try:
            text = text.cast(typed.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            typed, text = typed.cast(pa.string()), text.cast(pa.string())
    return pc.coalesce(typed, text)


def _ids(request_ids: pa.ChunkedArray) -> list[str | None]:
    """Request ids as text, whatever bytes another tool wrote there."""
    raw = request_ids.cast(pa.binary()).to_pylist()
    return [None if rid is None else rid.decode("utf-8", "replace") for rid in raw]


# -- a window of any length, folded piece by piece -------------------------------------------


class WindowFold:
    """A drift monitor's window, folded one piece of the log at a time (`add`): the quality
    counts, the drift summaries, the performance counts (`PerformanceCounts`), the unreadable
    values with a few of their request ids, and the rows each model version served. Memory
    holds the counts, not the window's rows."""

    def __init__(self, reference: Reference, roles: Mapping[str, Any]) -> None:
        self.reference, self.roles = reference, roles
        self.rows = 0
        self.quality = QualityCounts(reference)
        self.drift = DriftCounts(reference)
        self.performance = PerformanceCounts(
            (
                reference.kinds.get(PREDICTION) if roles.get("prediction") else None,
                reference.kinds.get(str(roles["label"])) if roles.get("label") else None,
            )
        )
        self._unreadable: dict[tuple[str, str], tuple[int, list[str | None]]] = {}
        self._models: dict[tuple[str, int], int] = {}

    def add(self, served: pa.Table) -> None:
        """Fold in one piece of the window (`read_served`'s columns, shadow rows left out)."""
        if served.num_rows == 0:
            return
        parsed = read_window(served, self.reference, self.roles)
        self.rows += served.num_rows
        for found in parsed.unreadable:
            count, examples = self._unreadable.get((found.column, found.kind), (0, []))
            wanted = found.rows[: EXAMPLES - len(examples)]
            examples = [*examples, *_ids(served["request_id"].take(pa.array(wanted)))]
            self._unreadable[found.column, found.kind] = (count + found.count, examples)
        self.quality.add(parsed.table, parsed.counts())
        self.drift.add(parsed.table)
        outputs = read_outputs(served, self.performance.kinds[0])
        self.performance.add_read(outputs, served["label_json"], read_scores(served))
        served_by = served.group_by(["model", "model_version"], use_threads=False)
        for row in served_by.aggregate([("model", "count")]).to_pylist():
            key = (row["model"], row["model_version"])
            self._models[key] = self._models.get(key, 0) + row["model_count"]

    def merge(self, other: WindowFold) -> None:
        """Another part of the window (folded on the same reference) into this one, as if its
        pieces had been added here."""
        self.rows += other.rows
        for key, (count, examples) in other._unreadable.items():
            had, kept = self._unreadable.get(key, (0, []))
            self._unreadable[key] = (had + count, [*kept, *examples][:EXAMPLES])
        self.quality.merge(other.quality)
        self.drift.merge(other.drift)
        self.performance.merge(other.performance)
        for served_by, rows in other._models.items():
            self._models[served_by] = self._models.get(served_by, 0) + rows

    def state(self) -> dict[str, Any]:
        """Everything folded, as plain values and numpy arrays (`window_cache` keeps it)."""
        return {
            "rows": self.rows,
            "unreadable": [[*key, count, examples] for key, (count, examples)
                           in self._unreadable.items()],
            "models": [[*key, rows] for key, rows in self._models.items()],
            "quality": self.quality.state(),
            "drift": self.drift.state(),
            "performance": self.performance.state(),
        }  # fmt: skip

    @classmethod
    def from_state(
        cls, reference: Reference, roles: Mapping[str, Any], state: Mapping[str, Any]
    ) -> WindowFold:
        """A fold back from its `state` (ValueError, KeyError or TypeError if it is not one)."""
        made = cls(reference, roles)
        made.rows = int(state["rows"])
        made._unreadable = {
            (str(column), str(kind)): (int(count), [None if e is None else str(e) for e in ids])
            for column, kind, count, ids in state["unreadable"]
        }
        made._models = {(str(model), int(version)): int(rows)
                        for model, version, rows in state["models"]}  # fmt: skip
        made.quality = QualityCounts.from_state(reference, state["quality"])
        made.drift = DriftCounts.from_state(reference, state["drift"])
        made.performance = PerformanceCounts.from_state(made.performance.kinds,
                                                        state["performance"])  # fmt: skip
        return made

    def unreadable(self) -> list[dict[str, Any]]:
        """The report's list of unreadable values: column, kind, count and a few request ids."""
        return [
            {"column": column, "kind": kind, "count": count, "examples": examples}
            for (column, kind), (count, examples) in sorted(self._unreadable.items())
        ]

    def unreadable_values(self) -> int:
        return sum(count for count, _ in self._unreadable.values())

    def comparable(self) -> list[str]:
        """The reference's columns the window can be compared on: those it has, less any whose
        every value was unreadable (no evidence either way: reported, never compared as calm)."""
        unreadable: dict[str, int] = {}
        for (column, _), (count, _) in self._unreadable.items():
            unreadable[column] = unreadable.get(column, 0) + count
        columns = self.quality.columns
        return [
            name
            for name in self.reference.kinds
            if name in self.quality.seen
            and not (unreadable.get(name) and columns[name].nulls == self.rows)
        ]

    def model_served_most(self) -> tuple[str, int] | None:
        """The (model, version) that served most of the window's rows."""
        if not self._models:
            return None
        return max(self._models, key=lambda key: self._models[key])


def fold_window(
    ws: Workspace,
    deployment: str,
    start_us: int,
    end_us: int,
    *,
    reference: Reference,
    roles: Mapping[str, Any],
    keep_as: str | None = None,
    now_us: int | None = None,
) -> WindowFold:
    """The window `[start_us, end_us)` of `deployment` folded piece by piece (`WindowFold`),
    read again from its start when a compaction or an expiry changed the log meanwhile. With
    `keep_as` (the monitor's stored reference summary), its whole hours settled by `now_us`
    are folded one at a time and kept, and taken from what was kept when their files have not
    changed since (`loopml.monitoring.window_cache`)."""
    reader = prediction_log_reader(ws.settings)
    hours = [] if keep_as is None else settled_hours(start_us, end_us, now_us or end_us)
    if not hours:
        return _fold(reader, deployment, start_us, end_us, reference=reference, roles=roles)[0]
    kept = HourCache(ws.settings.cache_dir / "monitor-hours")
    fold, cursor = WindowFold(reference, roles), start_us
    for hour in [*hours, None]:
        until = end_us if hour is None else hour
        if cursor < until:
            fresh = _fold(reader, deployment, cursor, until, reference=reference, roles=roles)
            fold.merge(fresh[0])
        if hour is None:
            break
        files = reader.files_of(deployment, hour, hour + HOUR_US)  # before the hour is read
        key = None if files is None else hour_key(keep_as or "", deployment, hour, files)
        part = None if key is None else _kept(kept.get(key), reference, roles)
        if part is None:  # not kept, or its files changed since
            part, timed = _fold(reader, deployment, hour, hour + HOUR_US, reference=reference,
                                roles=roles, check_ids=True)  # fmt: skip
            if key is not None and timed:
                kept.put(key, part.state())
        fold.merge(part)
        cursor = hour + HOUR_US
    return fold


def _kept(
    state: dict[str, Any] | None, reference: Reference, roles: Mapping[str, Any]
) -> WindowFold | None:
    if state is None:
        return None
    try:
        return WindowFold.from_state(reference, roles, state)
    except (KeyError, ValueError, TypeError, IndexError, RecursionError) as exc:
        _log.warning("a kept monitor summary did not fit its reference (%s); folding again", exc)
        return None


def _fold(
    reader: PredictionReader,
    deployment: str,
    start_us: int,
    end_us: int,
    *,
    reference: Reference,
    roles: Mapping[str, Any],
    check_ids: bool = False,
) -> tuple[WindowFold, bool]:
    """`[start_us, end_us)` folded, and (with `check_ids`) whether every row's request id
    carries its time (a UUIDv7), so its labels can only be in the folders around it."""
    for _ in range(READ_ATTEMPTS):
        fold, timed = WindowFold(reference, roles), True
        try:
            with _log_errors(deployment):
                pieces = reader.read_batches(
                    deployment,
                    since_us=start_us,
                    until_us=end_us,
                    columns=LOG_COLUMNS,
                    batch_rows=PIECE_ROWS,
                )
                for piece in pieces:
                    if check_ids and timed:
                        made = pc.match_substring_regex(piece["request_id"], UUID7_TEXT,
                                                        ignore_case=True)  # fmt: skip
                        timed = made.null_count == 0 and bool(pc.all(made).as_py())
                    fold.add(piece.filter(pc.invert(pc.fill_null(piece["shadow"], False))))
        except LogChanged:
            continue
        return fold, timed
    raise Unavailable(
        f"The prediction log of deployment {deployment!r} kept changing while it was read; "
        "nothing was stored.",
        "Try again; if it persists, check that one compaction runs at a time.",
    )


READ_ATTEMPTS = 5
