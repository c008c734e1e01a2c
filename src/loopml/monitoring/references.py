"""A monitor's reference: the dataset version it compares windows with, read once when the
monitor is made, with the model's predictions on it (`prediction`), its label column, and the
model's importance per input; summarised (`loopml.monitoring.drift.summarize`) and kept as JSON.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from loopml.adapters.flavors.base import has_probabilities
from loopml.bootstrap import Workspace
from loopml.errors import InvalidInput, LoopmlError
from loopml.monitoring.drift import summarize
from loopml.monitoring.importance import model_importance

PREDICTION = "prediction"
"""The reference column holding the model's outputs on the reference rows."""


def served_columns(
    table: pa.Table, inputs: list[str] | None, label: str | None
) -> tuple[pa.Table, str | None]:
    """The reference's columns a served row can be compared on (the model's inputs, its
    prediction, the label), and the label column: the one given, else the only column the
    model does not take. Unknown inputs (no model): every column, the label as given."""
    if inputs is None:
        return table, label
    others = [c for c in table.column_names if c not in inputs and c != PREDICTION]
    if label is None and len(others) == 1:
        label = others[0]
    unserved = [c for c in others if c != label]
    return table.drop_columns(unserved), label


def with_predictions(
    ws: Workspace, table: pa.Table, deployment: str, model: str | None, project: str
) -> tuple[pa.Table, list[str], list[str] | None, dict[str, Any] | None]:
    """`table` with the model's predictions on it as a `prediction` column, the columns to
    read as categories (a classifier's predictions), the model's inputs and its importance
    per input ({"weights", "source"}), when a model is known (its inputs and importance are
    None when not, or when its signature does not name them)."""
    if model is None:
        try:
            model = ws.deployments.get(deployment, project).model_ref
        except LoopmlError:
            return table, [], None, None  # no stored deployment, no model: no prediction drift
    version = ws.registry.resolve(model, project)
    loaded = ws.registry.load(version.ref, project=project)
    inputs = [column["name"] for column in version.signature.get("inputs", [])]
    missing = [name for name in inputs if name not in table.column_names]
    if missing:
        raise InvalidInput(
            f"The reference lacks the model's inputs {missing}.",
            "Give the dataset the model was trained on as the reference.",
        )
    frame = table.select(inputs).to_pandas() if inputs else table.to_pandas()
    predicted = np.asarray(loaded.predict(frame))
    categorical = [PREDICTION] if has_probabilities(loaded) else []
    column = pa.array(predicted.astype(str) if categorical else predicted)
    importance = None
    if inputs:
        weights, source = model_importance(loaded.raw, inputs)
        importance = {"weights": weights, "source": source}
    return table.append_column(PREDICTION, column), categorical, inputs or None, importance


def read_dataset(ws: Workspace, version: Any) -> pa.Table:
    from loopml.adapters.table_files import read_table

    manifest = ws.data.manifest(version)
    (relative, blob), *others = manifest.files.items()
    if others:
        raise InvalidInput(
            f"Dataset {version.name}@{version.version} holds {len(manifest.files)} files.",
            "Use a version made from one table file as the reference.",
        )
    with tempfile.TemporaryDirectory(prefix="loopml-reference-") as folder:
        path = Path(folder) / Path(relative).name
        ws.blobs.get_file(blob.digest, path)
        return read_table(path)


def summarize_reference(
    ws: Workspace,
    reference: str,
    *,
    deployment: str,
    model: str | None,
    label: str | None,
    project: str,
) -> tuple[str, dict[str, Any]]:
    """The dataset version `reference` pinned (`name@version`) and what a monitor keeps of it:
    its summary, with the model's predictions on it as a `prediction` column and the label
    read as categories unless it holds numbers, the `roles` of those columns, and the model's
    `importance` per input (see `loopml.monitoring.monitors.create`)."""
    version = ws.data.resolve(reference, project, record=False)
    pinned = f"{version.name}@{version.version}"
    if version.schema is None:
        raise InvalidInput(
            f"Dataset {pinned} has no table profile, so it cannot be a reference.",
            "Use a version made from one CSV, TSV or Parquet file (`loopml data add FILE`).",
        )
    table = read_dataset(ws, version)
    if label is not None and label not in table.column_names:
        raise InvalidInput(
            f"The reference {pinned} has no column {label!r} to take labels from.",
            f"Choose among: {', '.join(table.column_names)}.",
        )
    table, categorical, inputs, importance = with_predictions(ws, table, deployment, model, project)
    table, label = served_columns(table, inputs, label)
    roles = {
        "label": label,
        "prediction": PREDICTION if PREDICTION in table.column_names else None,
    }
    if label is not None and table.schema.field(label).type != pa.float64():
        categorical.append(label)
    summary = {
        **summarize(table, categorical=categorical).to_dict(),
        "roles": roles,
        "importance": importance,
    }
    return pinned, summary
