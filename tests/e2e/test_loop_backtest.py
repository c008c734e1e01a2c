"""`loopml loop backtest`: a policy replayed on history beside a static model and an oracle,
with the live loop's decisions; bad input refused with nothing saved; a pipeline failing mid-way
keeps the champion."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import pytest

from loopml.backtest import RECOMMENDED
from loopml.bootstrap import open_workspace
from loopml.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
PIPELINE = f"{ROOT / 'examples' / 'worlds' / 'pipeline.py'}:tabular"


def _worlds() -> Any:
    spec = importlib.util.spec_from_file_location("worlds", ROOT / "examples/worlds/worlds.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _history(folder: Path, kind: str = "sudden", rows: int = 4_000) -> None:
    """The reference (reference@1) and the history (history@1) of a world, in `folder`'s
    workspace."""
    reference, history = _worlds().make_world(kind, rows=rows, seed=1)
    reference.to_parquet(folder / "reference.parquet", index=False)
    history.to_parquet(folder / "history.parquet", index=False)
    ws = open_workspace(Settings.from_env(env={}, cwd=folder))
    try:
        ws.data.add(folder / "reference.parquet", name="reference", project="default")
        ws.data.add(folder / "history.parquet", name="history", project="default")
    finally:
        ws.close()


def _saved(folder: Path) -> tuple[int, int, int]:
    """Datasets, models and runs in `folder`'s workspace."""
    ws = open_workspace(Settings.from_env(env={}, cwd=folder))
    try:
        return (
            len(ws.data.datasets("default")),
            len(ws.registry.models("default")),
            len(ws.tracking.search(project="default", limit=1000).runs),
        )
    finally:
        ws.close()


BASE = [
    "loop",
    "backtest",
    "--pipeline",
    PIPELINE,
    "--reference",
    "reference@1",
    "--data",
    "history@1",
    "--time-column",
    "event_time",
    "--label",
    "label",
]


def test_a_backtest_replays_a_sudden_change_and_recovers_from_it(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _history(tmp_path)
    before = _saved(tmp_path)
    report = tmp_path / "backtest.html"
    code, out, err = cli(*BASE, "--json", "--html", str(report))
    assert code == 0, err
    result = json.loads(out)
    summary = result["summary"]
    assert summary["windows"] == 8
    assert len(result["windows"]) == 8
    assert result["policy"]["train_data"] == RECOMMENDED.train_data
    assert result["policy"]["confidence"] == 0.9
    assert result["policy"]["horizon"] == 1_000
    # the concept flips at 35% and 70%: the static model falls behind, the policy does not
    assert summary["oracle_mean"] > summary["static_mean"] + 0.03
    assert summary["policy_mean"] > summary["static_mean"] + 0.02
    assert summary["promotions"] >= 1
    assert summary["retrainings"] >= summary["promotions"]
    assert 0.3 < summary["recovery"] <= 1.5
    # how sure that figure is: a bootstrap over the 8 windows, wide with so few
    assert 0.0 < summary["recovery_low"] < summary["recovery"] < summary["recovery_high"] <= 1.5
    assert summary["needless_promotions"] <= summary["promotions"]
    assert len(summary["needless_windows"]) == summary["needless_promotions"]
    for index in summary["needless_windows"]:  # each names the window its promotion followed
        assert "promoted" in result["windows"][index]["events"]
    assert result["policy"]["holdout_rows"] == 500
    # the yardstick of needless: each of the oracle's refits but the last window's is judged
    assert summary["oracle_updates_judged"] == 7
    assert 0 <= summary["oracle_needless_updates"] <= 7
    decisions = [d for w in result["windows"] for d in w["decisions"]]
    # each decision says how sure it is, over the next rows the winner would serve
    assert any("(90% bounds over the next 1,000 rows)" in d for d in decisions)
    page = report.read_text()
    assert "<svg" in page
    assert "oracle (refit every window)" in page
    assert "promoted" in page
    assert _saved(tmp_path) == before  # the replay ran in a scratch workspace


def test_the_text_report_shows_each_window_and_the_summary(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _history(tmp_path, "stable", rows=1_500)
    code, out, err = cli(*BASE, "--window", "500", "--trigger", "labels:500")
    assert code == 0, err
    assert "window 3/3:" in err  # progress, one line a window
    assert "3 windows, 1,500 rows; mean accuracy: policy" in out
    assert "needless" in out
    interval = r"\[-?\d\.\d\d, -?\d\.\d\d\] \(90%, bootstrap over windows\)"
    assert re.search(rf"recovery (n/a|-?\d\.\d\d ({interval}|\(no interval))", out)
    assert "the oracle's own refits: " in out
    assert " of 2 served worse over the next two windows" in out


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (["--time-column", "when"], "The data has no time column 'when'"),
        (["--label", "churned"], "The data has no label column 'churned'"),
        (["--window", "12"], "Windows of 12 rows are too small to hold a holdout"),
        (["--confidence", "1.5"], "The confidence 1.5 is not between 0.5 and 1"),
        (["--train-data", "reference + rows from yesterday"], "term 'rows from yesterday'"),
        (["--trigger", "alert:drift"], "needs the live monitors"),
        (["--holdout-mode", "newest"], "Unknown holdout 'newest'"),
        (["--holdout-rows", "5"], "--holdout-rows 5 is below 10"),
        (["--check", "duplicates <= 2"], "duplicates"),
        (["--data", "nothing@1"], "nothing"),
    ],
)
def test_bad_input_is_refused_with_what_to_do_and_nothing_saved(
    cli,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    change: list[str],
    message: str,
) -> None:
    _history(tmp_path, "stable", rows=1_000)
    before = _saved(tmp_path)
    args = list(BASE)
    for flag, value in zip(change[::2], change[1::2], strict=True):
        if flag in args:
            args[args.index(flag) + 1] = value
        else:
            args += [flag, value]
    code, _, err = cli(*args)
    assert code == 1
    assert message in err
    assert "Traceback" not in err
    assert _saved(tmp_path) == before


FAILING = """
from loopml import pipeline, step
import sys
sys.path.insert(0, {folder!r})
from pipeline import load, split, train, evaluate, register


@step
def check(df):
    if len(df) > {limit}:
        raise RuntimeError("too many rows for this pipeline")
    return df


@pipeline
def fragile(dataset: str = "history@latest"):
    fit, test = split(check(load(dataset)))
    model = train(fit)
    register(model, evaluate(model, test), test)
"""


def test_a_pipeline_failing_mid_backtest_is_reported_and_the_champion_stays(
    cli,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    _history(tmp_path, "sudden", rows=3_000)
    path = tmp_path / "fragile.py"
    path.write_text(FAILING.format(folder=str(ROOT / "examples" / "worlds"), limit=2_200))
    args = [*BASE, "--json", "--trigger", "labels:500"]
    args[args.index("--pipeline") + 1] = f"{path}:fragile"
    code, out, err = cli(*args)
    assert code == 0, err
    windows = json.loads(out)["windows"]
    failed = [w for w in windows if "failed" in w["events"]]
    assert failed, "a challenger trained on more than 2,200 rows should have failed"
    first = failed[0]["window"]
    assert any("too many rows" in d for d in failed[0]["decisions"])
    assert all(w["champion"] == windows[first]["champion"] for w in windows[first:])
