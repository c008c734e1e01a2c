"""`loopml demo`, shortened: the world changes, the loop notices, retrains, promotes, recovers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loopml.bootstrap import open_workspace, prediction_log_reader
from loopml.settings import Settings


@pytest.mark.slow
def test_a_short_demo_closes_the_loop(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("COLUMNS", "80")  # a terminal 80 characters wide
    code, out, err = cli("demo", "--dir", "demo", "--periods", "5", "--rows", "1500")
    assert code == 0, err
    assert "promoted churn 2" in out
    _fits_80_columns(out, periods=4)
    folder = tmp_path / "demo"
    hooks = json.loads((folder / "webhook-received.json").read_text())
    fired = [h for h in hooks if h["event"] == "fired"]
    assert {h["condition"] for h in fired} >= {"drift_share > 0.2"}
    assert all(h["monitor"] == "churn-drift" for h in hooks)

    ws = open_workspace(Settings.from_env(env={}, cwd=folder))
    try:
        history = ws.monitors.history("churn-drift", "default")[::-1]  # oldest first
        assert [r.drift_share > 0.2 for r in history] == [False, False, True, True]
        assert [r.rows for r in history] == [1_500] * 4  # each window holds its period only
        assert ws.registry.resolve("churn@champion", "default").version == 2
        challenger_data = ws.data.versions("churn", "default")
        assert len(challenger_data) >= 2  # the reference, and reference + labelled rows
        retrained, *later = ws.loops.history("churn-loop", "default")[::-1]  # oldest first
        assert all(run.status in ("waiting", "held") for run in later)  # v2 stays champion
        assert retrained.trigger.startswith("alert:churn-drift")
        assert "(90% bounds)" in retrained.reason  # the decision says how sure it is
        assert retrained.status == "promoted"
        assert (retrained.champion, retrained.challenger) == (1, 2)
        assert retrained.train_data == "churn@2"
        scores = retrained.scores  # both scored on the same fresh holdout
        assert scores["challenger"]["accuracy"] > scores["champion"]["accuracy"] + 0.1
        served = prediction_log_reader(ws.settings).read(
            "churn-prod", columns=["model_version"], with_feedback=False
        )
        assert 2 in set(served["model_version"].to_pylist())  # the server swapped live
        assert ws.audit.verify().ok
    finally:
        ws.close()
    monkeypatch.chdir(folder)
    code, out, _ = cli("data", "diff", "churn@1", "churn@2")  # CSV against Parquet
    assert code == 0
    assert "changed type" not in out
    code, out, _ = cli("monitor", "history", "churn-drift")
    assert "accuracy" in out.splitlines()[0]


@pytest.mark.slow
def test_the_demo_closes_the_loop_with_a_lightgbm_model(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """`--learner lightgbm`: the pipeline fits LightGBM, registered in its own format; the
    server, the monitor and the loop (which scores champion and challenger) take it as they
    take the scikit-learn model, and a retrained LightGBM model is promoted."""
    code, out, err = cli(
        "demo", "--dir", "boosted", "--periods", "5", "--rows", "1500", "--learner", "lightgbm"
    )
    assert code == 0, err
    assert "promoted churn 2" in out
    ws = open_workspace(Settings.from_env(env={}, cwd=tmp_path / "boosted"))
    try:
        champion = ws.registry.resolve("churn@champion", "default")
        assert champion.version >= 2
        assert {ws.registry.resolve(f"churn/{v}", "default").flavor for v in (1, 2)} == {"lightgbm"}
        promoted = [r for r in ws.loops.history("churn-loop", "default") if r.status == "promoted"]
        failed = [r for r in ws.loops.history("churn-loop", "default") if r.status == "failed"]
        assert promoted
        assert failed == []
    finally:
        ws.close()
    code, _, err = cli("demo", "--dir", "other", "--learner", "catboost")
    assert code != 0
    assert "--learner is 'catboost'" in err


def _fits_80_columns(out: str, periods: int) -> None:
    """No line is longer than 80 characters, no log line ends with the source line that
    printed it, and the timeline has one line per period."""
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 80, "\n".join(lines)
    assert "demo.py:" not in out
    table = next(
        i for i, line in enumerate(lines) if line.split()[:3] == ["period", "rows", "drift"]
    )
    rows = lines[table + 2 : table + 2 + periods]
    assert [row.split()[0] for row in rows] == [str(p) for p in range(1, periods + 1)]
    assert "promoted v2" in "\n".join(rows)
    assert not lines[table + 2 + periods].split()[0].isdigit()  # no row ran onto another line


def test_a_rerun_takes_a_fresh_folder_or_with_force_clears_the_demo(tmp_path: Path) -> None:
    from loopml.cli.demo import MARKER, demo_folder

    earlier = tmp_path / "loopml-demo"
    (earlier / ".loopml").mkdir(parents=True)
    (earlier / MARKER).write_text("")
    (earlier / "monitor-run-3.html").write_text("")
    (tmp_path / "loopml-demo-2").mkdir()  # taken, even without a workspace

    folder, note = demo_folder(earlier, force=False)
    assert folder == tmp_path / "loopml-demo-3"
    assert note is not None
    assert "loopml-demo-3" in note
    assert "--force" in note
    assert (earlier / ".loopml").is_dir()  # left as it was

    folder, note = demo_folder(earlier, force=True)
    assert folder == earlier
    assert note is not None
    assert "cleared" in note
    assert earlier.is_dir()
    assert list(earlier.iterdir()) == []

    assert demo_folder(tmp_path / "new", force=False) == (tmp_path / "new", None)


def test_force_never_clears_a_workspace_the_demo_did_not_make(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "mine" / ".loopml").mkdir(parents=True)
    (tmp_path / "mine" / "model.pkl").write_text("precious")
    code, _, err = cli("demo", "--dir", "mine", "--force")
    assert code == 1
    assert "did not make" in err
    assert (tmp_path / "mine" / "model.pkl").read_text() == "precious"
