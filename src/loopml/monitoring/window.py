"""A monitor's window of the prediction log: the rows a deployment answered in it, and their
JSON read as the reference's column kinds.

`read_served` reads the log (shadow rows left out, the latest fed-back label joined on);
`read_window` reads the inputs, and the outputs and labels when the reference has those roles,
never failing on what the log holds (`loopml.monitoring.json_columns`): a value a column cannot
read is null and listed by `describe_unreadable`, with a few request ids to look it up.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from loopml.bootstrap import Workspace, prediction_log_reader
from loopml.errors import IntegrityError, Unavailable
from loopml.monitoring.column_kinds import Parsed, Unreadable
from loopml.monitoring.drift import Reference
from loopml.monitoring.json_columns import read_objects, read_values
from loopml.monitoring.references import PREDICTION

LOG_COLUMNS = [
    "request_id",
    "time_us",
    "model",
    "model_version",
    "inputs_json",
    "output_json",
    "proba_json",
    "shadow",
]
EXAMPLES = 3
"""Request ids kept per kind of unreadable value, to look the rows up (`loopml predictions`)."""


def read_served(
    ws: Workspace, deployment: str, start_us: int, end_us: int, *, extra: Sequence[str] = ()
) -> pa.Table:
    """The rows `deployment` answered whose time (event time, else serving time) lies in
    `[start_us, end_us)` (shadow rows left out), with the latest label fed back for each (null
    where none came); `extra` log columns (such as `event_time_us`) are added."""
    try:
        log = prediction_log_reader(ws.settings).read(
            deployment,
            since_us=start_us,
            until_us=end_us,
            columns=[*LOG_COLUMNS, *extra],
            with_feedback=True,
        )
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
    return log.filter(pc.invert(pc.fill_null(log["shadow"], False)))


def read_window(served: pa.Table, reference: Reference, roles: Mapping[str, Any]) -> Parsed:
    """The served rows' inputs, plus their outputs (`prediction`) and fed-back labels when the
    reference has those roles, each column read as the reference's kind; never raises on what
    the log holds."""
    sources = {}
    if roles.get("prediction"):
        sources[PREDICTION] = "output_json"
    if roles.get("label"):
        sources[str(roles["label"])] = "label_json"
    inputs = {name: kind for name, kind in reference.kinds.items() if name not in sources}
    parsed = read_objects(served["inputs_json"], inputs)
    table, found = parsed.table, list(parsed.unreadable)
    for name, source in sources.items():
        values = read_values(served[source], reference.kinds.get(name))
        if name in table.column_names:  # an input of that name: the role's column wins
            table = table.drop_columns([name])
        table = table.append_column(name, values.table["value"])
        found += [Unreadable(name, u.kind, u.rows) for u in values.unreadable]
    return Parsed(table, tuple(found))


def comparable(window: pa.Table, reference: Reference, parsed: Parsed) -> list[str]:
    """The reference's columns the window can be compared on: those it has, less any whose
    every value was unreadable (no evidence either way: reported, never compared as calm)."""
    unreadable = parsed.counts()
    return [
        name
        for name in reference.kinds
        if name in window.column_names
        and not (unreadable.get(name) and window[name].null_count == window.num_rows)
    ]


def describe_unreadable(parsed: Parsed, request_ids: pa.ChunkedArray) -> list[dict[str, Any]]:
    """The report's list of unreadable values: column, kind, count and a few request ids."""
    return [
        {
            "column": found.column,
            "kind": found.kind,
            "count": found.count,
            "examples": _ids(request_ids.take(pa.array(found.rows[:EXAMPLES]))),
        }
        for found in sorted(parsed.unreadable, key=lambda u: (u.column, u.kind))
    ]


def _ids(request_ids: pa.ChunkedArray) -> list[str | None]:
    """Request ids as text, whatever bytes another tool wrote there."""
    raw = request_ids.cast(pa.binary()).to_pylist()
    return [None if rid is None else rid.decode("utf-8", "replace") for rid in raw]
