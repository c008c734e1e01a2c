"""A loop's training data and holdout, read from the prediction log.

The training rows are the recipe's base tables plus its labelled predictions (all of them, or
those of a sliding window), with a recency weight column when the recipe asks for one. The
holdout is a share of the labelled rows served since the champion was trained (neither model
trained on them): the newest, by default, or a seeded random share. Both become dataset
versions, made by a tracked run so the lineage shows where they came from.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from loopml.bootstrap import Workspace
from loopml.domain.loop_decisions import split_rows, training_weights
from loopml.domain.loops import LoopSpec
from loopml.domain.records import PRODUCES_TAG, Monitor
from loopml.errors import InvalidInput, LoopmlError

TIME = "__time_us"
"""The column of a labelled row's time (event time, else serving time)."""
OUTPUT = "__output"


@dataclass(frozen=True)
class BuiltData:
    train_ref: str
    holdout_ref: str
    train_rows: int
    holdout_rows: int
    until_us: int
    """The time the data was read at: rows after it are new to the challenger."""


def reference_monitor(ws: Workspace, spec: LoopSpec) -> Monitor:
    """The drift monitor of the loop's deployment whose reference `reference` means: the one an
    alert trigger names, else the only one."""
    drift = [
        m
        for m in ws.monitors.list(spec.project)
        if m.deployment == spec.deployment and m.reference is not None
    ]
    named = {t.target for t in spec.parsed_triggers if t.kind == "alert"}
    preferred = [m for m in drift if m.name in named] or drift
    if len(preferred) != 1:
        raise InvalidInput(
            f"'reference' needs one drift monitor on deployment {spec.deployment!r}; "
            f"there are {len(preferred)}.",
            "Name the base dataset version instead (e.g. churn@3 + labelled predictions of "
            "the last 30d), or make a monitor with `loopml monitor create --reference`.",
        )
    return preferred[0]


def follow_reference(ws: Workspace, spec: LoopSpec, train_ref: str) -> list[str]:
    """Point the deployment's drift monitors at the new champion's training data (each a
    `monitor.saved` event in the audit trail, which keeps the references before): drift is
    then measured against what the serving model learned from. What changed, as notes."""
    from loopml.monitoring import monitors
    from loopml.monitoring.monitors import roles

    notes = []
    for monitor in ws.monitors.list(spec.project):
        if monitor.deployment != spec.deployment or monitor.reference in (None, train_ref):
            continue
        label = roles(ws, monitor).get("label")
        try:
            monitors.create(
                monitor.name,
                deployment=monitor.deployment,
                reference=train_ref,
                label=str(label) if label else None,
                window=monitor.window_s,
                every=monitor.every_s,
                project=spec.project,
                workspace=ws,
            )
        except LoopmlError as exc:  # the promotion stands; the monitor keeps its reference
            notes.append(f"drift monitor {monitor.name} kept {monitor.reference}: {exc.message}")
            continue
        notes.append(
            f"drift monitor {monitor.name} now compares with {train_ref} (was {monitor.reference})"
        )
    return notes


def label_of(ws: Workspace, spec: LoopSpec) -> str:
    if spec.label:
        return spec.label
    from loopml.monitoring.monitors import roles

    for monitor in ws.monitors.list(spec.project):  # any monitor that knows the label column
        if monitor.deployment == spec.deployment:
            label = roles(ws, monitor).get("label")
            if label:
                return str(label)
    raise InvalidInput(
        f"The label column of deployment {spec.deployment!r} is not known.",
        "Give --label COLUMN, or create its drift monitor with --label.",
    )


def labelled(
    ws: Workspace, deployment: str, label: str, *, start_us: int, end_us: int, version: int = 0
) -> Any:
    """The labelled rows `deployment` served in the window (of model `version`, if given): the
    inputs, the label, the output (`__output`) and the row's time (`__time_us`), oldest first.
    A row holding a value that cannot be read (see `loopml.monitoring.json_columns`), or whose label
    or output is null, is left out; how many were unreadable is
    `frame.attrs["unreadable_rows"]`."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    from loopml.monitoring.json_columns import read_values
    from loopml.monitoring.monitors import read_served
    from loopml.monitoring.window import read_inputs, read_outputs

    served = read_served(ws, deployment, max(0, start_us), end_us, extra=["event_time_us"])
    served = served.filter(pc.invert(pc.is_null(served["label_json"])))
    if version:
        served = served.filter(pc.equal(served["model_version"], version))
    if served.num_rows == 0:
        return pd.DataFrame()
    times = served["time_us"]
    if "event_time_us" in served.column_names:
        times = pc.coalesce(served["event_time_us"], times)
    inputs = read_inputs(served)
    labels, outputs = read_values(served["label_json"]), read_outputs(served)
    table = inputs.table.drop_columns(
        [c for c in (label, OUTPUT, TIME) if c in inputs.table.column_names]
    )
    table = table.append_column(label, labels.table["value"])
    table = table.append_column(OUTPUT, outputs.table["value"])
    table = table.append_column(TIME, times)
    unreadable = inputs.bad_rows() | labels.bad_rows() | outputs.bad_rows()
    unscored = pc.or_(pc.is_null(table[label]), pc.is_null(table[OUTPUT]))
    keep = pc.and_(pa.array(~unreadable), pc.invert(unscored))
    frame = table.filter(keep).to_pandas().sort_values(TIME, kind="stable")
    frame = frame.reset_index(drop=True)
    frame.attrs["unreadable_rows"] = int(unreadable.sum())
    return frame


def recent(ws: Workspace, spec: LoopSpec, label: str, end_us: int) -> Any:
    """The labelled rows the recipe takes at `end_us`: every one before it, or those of its
    sliding window."""
    window_s = spec.data.window_s
    start = 0 if window_s is None else end_us - window_s * 1_000_000
    return labelled(ws, spec.deployment, label, start_us=start, end_us=end_us)


def build(
    ws: Workspace,
    spec: LoopSpec,
    run_id: int,
    label: str,
    *,
    now_us: int,
    champion_until_us: int,
) -> BuiltData:
    """The training and holdout dataset versions at `now_us`. The holdout is drawn from the
    rows served after `champion_until_us` (the end of the champion's own training data; 0 when
    it was trained on none of the log), or from all of them when too few are that new."""
    import pandas as pd

    rows = recent(ws, spec, label, now_us)
    unreadable = int(rows.attrs.get("unreadable_rows", 0)) if len(rows) else 0
    if len(rows) < spec.min_rows:
        window = "ever" if spec.data.window_s is None else f"in the last {spec.data.window_s} s"
        left_out = f" ({unreadable} more held values that could not be read)" if unreadable else ""
        raise InvalidInput(
            f"Only {len(rows)} labelled rows were served by {spec.deployment} {window}"
            f"{left_out}; the loop needs {spec.min_rows}.",
            "Feed back more labels (POST /feedback), widen the window of the training data, "
            "or lower --min-rows.",
        )
    times = rows[TIME].to_numpy()
    fresh = np.flatnonzero(times > champion_until_us)
    pool = fresh if len(fresh) >= 20 else np.arange(len(rows))
    split = split_rows(
        times[pool],
        share=spec.holdout,
        mode=spec.holdout_mode,
        seed=run_id,
        most=spec.holdout_rows,
    )
    held_at = pool[split.holdout]
    train_at = np.setdiff1d(np.arange(len(rows)), held_at)
    bases, versions = _bases(ws, spec)
    columns = (
        list(bases[0].columns) if bases else [c for c in rows.columns if c not in (OUTPUT, TIME)]
    )
    missing = [c for c in columns if c not in rows.columns]
    if missing:
        raise InvalidInput(
            f"The served rows lack the base data's columns {missing}.",
            "The base tables and the model's inputs (plus the label) must have the same columns.",
        )
    fresh_rows = rows.iloc[train_at]
    training = pd.concat([*(b[columns] for b in bases), fresh_rows[columns]], ignore_index=True)
    if spec.data.weighted:
        training[spec.weight_column] = training_weights(
            fresh_rows[TIME].to_numpy(),
            bases=len(training) - len(fresh_rows),
            now_us=now_us,
            half_life_s=spec.data.half_life_s,
            half_life_rows=spec.data.half_life_rows,
        )
    holdout = rows.iloc[held_at][columns].reset_index(drop=True)
    refs = _save(
        ws,
        spec,
        run_id,
        training=training,
        holdout=holdout,
        versions=versions,
        fresh=len(fresh_rows),
        unreadable=unreadable,
    )
    return BuiltData(refs[0], refs[1], len(training), len(holdout), now_us)


def grown_holdout(
    ws: Workspace,
    spec: LoopSpec,
    label: str,
    *,
    run_id: int,
    holdout_ref: str,
    since_us: int,
    now_us: int,
) -> tuple[str, int]:
    """The holdout of a waiting challenger with the labelled rows served since `since_us`
    added (rows it never trained on): a new version of the holdout dataset, and its rows."""
    import pandas as pd

    from loopml.monitoring.monitors import read_dataset

    before = read_dataset(ws, ws.data.resolve(holdout_ref, spec.project, record=False))
    earlier = before.to_pandas()
    added = labelled(ws, spec.deployment, label, start_us=since_us, end_us=now_us)
    if len(added) == 0:
        return holdout_ref, len(earlier)
    holdout = pd.concat([earlier, added[list(earlier.columns)]], ignore_index=True)
    with tempfile.TemporaryDirectory(prefix="loopml-loop-") as folder:
        path = Path(folder) / "holdout.parquet"
        holdout.to_parquet(path, index=False)
        made = ws.data.add(
            path,
            name=f"{spec.name}-holdout",
            project=spec.project,
            message=f"{holdout_ref} + {len(added):,} labelled rows served since (loop "
            f"{spec.name} run {run_id}, waiting)",
        ).version
    return f"{made.name}@{made.version}", len(holdout)


def _bases(ws: Workspace, spec: LoopSpec) -> tuple[list[Any], list[Any]]:
    from loopml.monitoring.monitors import read_dataset

    tables, versions = [], []
    for base in spec.data.bases:
        ref: str | None = base
        if base == "reference":
            ref = spec.reference_pin or reference_monitor(ws, spec).reference
        assert ref is not None
        version = ws.data.resolve(ref, spec.project, record=False)
        versions.append(version)
        tables.append(read_dataset(ws, version).to_pandas())
    return tables, versions


def _save(
    ws: Workspace,
    spec: LoopSpec,
    run_id: int,
    *,
    training: Any,
    holdout: Any,
    versions: list[Any],
    fresh: int,
    unreadable: int,
) -> tuple[str, str]:
    names = [(v.name, f"{v.name}@{v.version}") for v in versions]
    source = f"{fresh:,} labelled predictions of {spec.deployment}"
    dataset = names[0][0] if len({n for n, _ in names}) == 1 else f"{spec.name}-train"
    with (
        tempfile.TemporaryDirectory(prefix="loopml-loop-") as folder,
        ws.tracking.start_run(
            project=spec.project,
            name=f"loop {spec.name} run {run_id}: training data",
            tags={"loopml.loop": spec.name, "loopml.kind": "loop-data"},
            capture_environment=False,
        ) as making,
    ):
        for version in versions:
            making.use_dataset(version)
        making.log_params(
            {
                "deployment": spec.deployment,
                "recipe": spec.data.text(),
                "recipe_kind": spec.data.kind,
                "labelled_rows": fresh + len(holdout),
                "unreadable_rows_left_out": unreadable,
                "holdout_rows": len(holdout),
                "holdout_mode": spec.holdout_mode,
                "seed": run_id,
            }
        )
        train_path, holdout_path = Path(folder) / "train.parquet", Path(folder) / "holdout.parquet"
        training.to_parquet(train_path, index=False)
        holdout.to_parquet(holdout_path, index=False)
        made = ws.data.add(
            train_path,
            name=dataset,
            project=spec.project,
            message=" + ".join([*(ref for _, ref in names), source])
            + f" (loop {spec.name} run {run_id})",
        ).version
        held = ws.data.add(
            holdout_path,
            name=f"{spec.name}-holdout",
            project=spec.project,
            message=f"{len(holdout):,} labelled rows held out ({spec.holdout_mode}; loop "
            f"{spec.name} run {run_id})",
        ).version
        refs = f"{made.name}@{made.version}", f"{held.name}@{held.version}"
        making.set_tags({f"{PRODUCES_TAG}train": refs[0], f"{PRODUCES_TAG}holdout": refs[1]})
    return refs
