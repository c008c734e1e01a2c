"""`loopml loop backtest`: a retrain policy tried on history before it touches production.

    result = backtest("pipeline.py:churn", reference="churn@1", data="history@1",
                      time_column="event_time", label="churned", window=500)
    result.summary["recovery"]

The first champion is trained on the reference. The data, ordered by its time column, is then
replayed window by window: the champion serves a window, its labels arrive, and the loop runs
at the window's end with the same decisions as the live loop (`loopml.domain.loop_decisions`),
the same pipeline and the same gate, in a scratch workspace that is thrown away after (nothing
is saved in the user's). Two yardsticks serve every window beside it: the static first model,
and an oracle that refits on all labelled data before every window.

    recovery             (policy - static) / (oracle - static), of the mean window metric
                         weighted by the windows' rows (for accuracy: over all replayed rows);
                         None when the oracle is not ahead of the static model
    recovery_low/_high   its 90% interval from a bootstrap over windows (None when the
                         oracle's gain is within the windows' noise: `loopml.domain.recovery`)
    needless promotion   one after which the new champion served worse over the next two
                         windows than the old one would have

The package: `results` (the recommended policy, what a backtest reports), `windows` (the
replayed data in windows and the measures on it), `trainer` (the pipeline in the scratch
workspace), `replay` (the loop's decisions, window by window).
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from loopml.backtest.replay import Replay
from loopml.backtest.results import (
    MIN_HOLDOUT,
    RECOMMENDED,
    RECOVERY_CONFIDENCE,
    BacktestResult,
    Policy,
    Say,
    WindowResult,
)
from loopml.backtest.trainer import Trainer
from loopml.backtest.windows import ReplayTable
from loopml.bootstrap import Workspace, default_workspace, open_workspace
from loopml.domain.durations import parse_duration
from loopml.domain.loops import LoopSpec, check_spec
from loopml.errors import InvalidInput

__all__ = [
    "MIN_HOLDOUT",
    "RECOMMENDED",
    "RECOVERY_CONFIDENCE",
    "BacktestResult",
    "Policy",
    "Say",
    "WindowResult",
    "backtest",
]


def backtest(
    pipeline: str,
    *,
    reference: str,
    data: str,
    time_column: str,
    label: str,
    window: int = 500,
    triggers: Sequence[str] | None = None,
    train_data: str | None = None,
    promote_if: Sequence[str] | None = None,
    guards: Sequence[str] = (),
    confidence: float | None = None,
    holdout: float | None = None,
    holdout_mode: str | None = None,
    refit: bool | None = None,
    watch: str | None = None,
    rollback_margin: float = 0.02,
    min_rows: int = 100,
    retry_rows: int | None = None,
    max_wait_rows: int | None = None,
    checks: Sequence[str] = (),
    horizon: int | None = None,
    holdout_rows: int | None = None,
    data_param: str = "dataset",
    params: dict[str, Any] | None = None,
    weight_column: str = "sample_weight",
    project: str | None = None,
    workspace: Workspace | None = None,
    say: Say | None = None,
) -> BacktestResult:
    """Replay `data` (a dataset version, ordered by `time_column`) through a retrain policy,
    `window` rows at a time; policy settings left None take the recommended policy's (a
    `horizon` of 0 judges the rules on the holdout's difference alone)."""
    from loopml.monitoring.monitors import read_dataset
    from loopml.steps import load_pipeline

    ws = workspace or default_workspace()
    project = project or ws.project
    found = load_pipeline(pipeline, ws.settings.pipeline_roots)
    if data_param not in found.signature.parameters:
        raise InvalidInput(
            f"Pipeline {pipeline} takes no parameter {data_param!r} to receive the training "
            f"data (it takes: {', '.join(found.signature.parameters) or 'none'}).",
            "Name the parameter that takes a dataset version with --data-param.",
        )
    spec = check_spec(
        LoopSpec(
            project,
            "backtest",
            "backtest",
            pipeline,
            tuple(triggers or RECOMMENDED.triggers),
            train_data or RECOMMENDED.train_data,
            tuple(promote_if or RECOMMENDED.promote_if),
            tuple(guards),
            "auto",
            parse_duration(watch) if watch else 0,
            rollback_margin,
            RECOMMENDED.holdout if holdout is None else holdout,
            min_rows,
            label,
            data_param,
            dict(params or {}),
            ("log:",),
            RECOMMENDED.confidence if confidence is None else confidence,
            holdout_mode or RECOMMENDED.holdout_mode,
            RECOMMENDED.refit if refit is None else refit,
            retry_rows or window,
            max_wait_rows or RECOMMENDED.max_wait_rows,
            weight_column,
            tuple(checks),
            horizon=RECOMMENDED.horizon if horizon is None else (horizon or None),
            holdout_rows=(
                RECOMMENDED.holdout_rows if holdout_rows is None else (holdout_rows or None)
            ),
        )
    )
    from loopml.domain.data_checks import parse_checks

    parse_checks(spec.checks)  # a bad check is refused before anything runs
    for trigger in spec.parsed_triggers:
        if trigger.kind in ("alert", "estimate"):
            raise InvalidInput(
                f"The trigger {trigger.text()} needs the live monitors; a backtest replays "
                "performance, labels:, every: and manual triggers.",
                "Try the policy with --trigger performance or --trigger every:7d.",
            )
    if window < 2 * MIN_HOLDOUT or round(window * spec.holdout) < MIN_HOLDOUT:
        raise InvalidInput(
            f"Windows of {window} rows are too small to hold a holdout of {spec.holdout:g}: "
            f"at least {MIN_HOLDOUT} holdout rows are needed.",
            "Give a larger --window (e.g. 500) or a larger --holdout.",
        )
    ref_version = ws.data.resolve(reference, project, record=False)
    data_version = ws.data.resolve(data, project, record=False)
    base = read_dataset(ws, ref_version).to_pandas()
    table = read_dataset(ws, data_version).to_pandas()
    extra_bases = [
        read_dataset(ws, ws.data.resolve(b, project, record=False)).to_pandas()
        for b in spec.data.bases
        if b != "reference"
    ]
    replayed = ReplayTable.prepare(
        spec,
        reference=base,
        extra_bases=extra_bases,
        table=table,
        time_column=time_column,
        window=window,
    )
    tell = say or (lambda _text: None)
    # a straggling write into the scratch folder must not hide the error that ended the replay
    with tempfile.TemporaryDirectory(
        prefix="loopml-backtest-", ignore_cleanup_errors=True
    ) as scratch:
        from loopml.settings import Settings

        sandbox = open_workspace(Settings.from_env({"LOOPML_HOME": scratch}))
        try:
            trainer = Trainer(sandbox, found, spec, Path(scratch), ref_version.name)
            return Replay(spec, replayed).run(trainer, tell)
        finally:
            sandbox.close()
