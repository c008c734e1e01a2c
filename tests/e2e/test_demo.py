"""`loopml demo`, shortened: the world changes, the loop notices, retrains, promotes, recovers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loopml.bootstrap import open_workspace, prediction_log_reader
from loopml.settings import Settings


@pytest.mark.slow
def test_a_short_demo_closes_the_loop(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli("demo", "--dir", "demo", "--periods", "5", "--rows", "1500")
    assert code == 0, err
    assert "promoted churn 2" in out
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
        assert len(challenger_data) == 2  # the reference, and reference + labelled rows
        (retrained,) = ws.loops.history("churn-loop", "default")
        assert retrained.trigger.startswith("alert:churn-drift")
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
    code, out, _ = cli("demo", "--dir", "demo")
    assert code == 1  # never over an existing workspace
