"""The commands of the issue, run the way a user runs them, on a fresh folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest


def _write_csv(path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    pd.DataFrame(
        {
            "tenure": rng.integers(0, 72, 300),
            "plan": rng.choice(["basic", "plus"], 300),
            "monthly": rng.normal(50, 9, 300),
        }
    ).to_csv(path, index=False)


def test_data_commands(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "data").mkdir()
    _write_csv(tmp_path / "data" / "train.csv", 0)
    code, out, _ = cli("init")
    assert code == 0
    assert (tmp_path / ".loopml" / "loopml.db").exists()
    code, out, _ = cli("data", "add", "data/train.csv", "--name", "churn", "-m", "jan snapshot")
    assert (code, out.split()[0:2]) == (0, ["added", "churn@1"])
    code, out, _ = cli("data", "add", "data/train.csv", "--name", "churn", "--json")
    assert json.loads(out)["created"] is False
    _write_csv(tmp_path / "data" / "train.csv", 1)
    assert cli("data", "add", "data/train.csv", "--name", "churn")[0] == 0
    code, out, _ = cli("data", "list", "--json")
    assert [(d["name"], d["latest_version"]) for d in json.loads(out)] == [("churn", 2)]
    code, out, _ = cli("data", "show", "churn@1")
    assert code == 0
    assert "jan snapshot" in out
    assert "tenure" in out
    code, out, _ = cli("data", "diff", "churn@1", "churn@2")
    assert code == 0
    assert "~ train.csv" in out
    code, out, _ = cli("data", "get", "churn@2", "-o", "out")
    assert code == 0
    assert (tmp_path / "out" / "train.csv").read_bytes() == (
        tmp_path / "data" / "train.csv"
    ).read_bytes()


def test_runs_and_models_commands(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from loopml.bootstrap import open_workspace

    workspace = open_workspace()
    ids = {}
    for name, f1, model in (("a", 0.9, "gbm"), ("b", 0.7, "gbm"), ("c", 0.95, "linear")):
        with workspace.tracking.start_run(project="default", name=name) as run:
            run.log_params({"model": model})
            run.log_metric("f1", f1)
        ids[name] = run.id
    from sklearn.dummy import DummyClassifier

    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0]})
    clf = DummyClassifier().fit(frame, [0, 1, 1])
    for _ in range(3):
        workspace.registry.register(clf, "churn", project="default", input_example=frame)
    workspace.close()

    code, out, _ = cli(
        "runs",
        "list",
        "--project",
        "default",
        "--filter",
        "metrics.f1 > 0.8 and params.model = 'gbm'",
        "--order-by",
        "-metrics.f1",
        "--json",
    )
    assert code == 0
    assert [r["name"] for r in json.loads(out)["runs"]] == ["a"]
    code, out, _ = cli("runs", "list", "--order-by", "-metrics.f1")
    assert out.index(ids["c"]) < out.index(ids["a"]) < out.index(ids["b"])
    code, out, _ = cli("runs", "show", ids["a"])
    assert (code, "gbm" in out) == (0, True)
    code, out, _ = cli("runs", "compare", ids["a"], ids["c"])
    assert code == 0
    assert "linear" in out
    code, out, _ = cli("models", "list", "--json")
    assert json.loads(out)[0]["latest_version"] == 3
    code, out, _ = cli("models", "alias", "set", "churn", "champion", "3")
    assert (code, out.strip()) == (0, "churn@champion -> 3")
    code, out, _ = cli("models", "versions", "churn", "--json")
    assert [v["aliases"] for v in json.loads(out)] == [[], [], ["champion"]]
    code, out, _ = cli("audit", "log", "--entity", "model:churn", "--json")
    assert json.loads(out)[0]["action"] == "model.alias_set"
    code, out, _ = cli("audit", "verify")
    assert (code, "intact" in out) == (0, True)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["data", "show", "ghost@1"], "Dataset 'ghost' does not exist"),
        (["runs", "show", "0" * 32], "Run '00000000000000000000000000000000' does not exist"),
        (["models", "versions", "ghost"], "Model 'ghost' does not exist"),
        (["runs", "list", "--filter", "metrics.f1 >> 2"], "position 12"),
        (["data", "add", "nowhere.csv"], "No file or folder"),
        (["models", "alias", "set", "ghost", "champion", "1"], "Model 'ghost' does not exist"),
    ],
    ids=[
        "unknown-dataset",
        "unknown-run",
        "unknown-model",
        "bad-filter",
        "missing-file",
        "alias-unknown-model",
    ],
)
def test_user_errors_are_one_clear_message_and_exit_1(cli, args: list[str], words: str) -> None:  # type: ignore[no-untyped-def]
    code, _, err = cli(*args)
    assert code == 1
    assert words in err
    assert "Traceback" not in err
    assert err.startswith("error: ")


def test_a_non_table_where_a_table_is_needed(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "picture.png").write_bytes(b"\x89PNG not a table")
    code, _, err = cli("data", "add", "picture.png", "--table")
    assert code == 1
    assert "not a CSV or Parquet file" in err
    assert cli("data", "list", "--json")[1].strip() == "[]"  # nothing was written


def test_a_corrupted_blob_is_named_and_no_bad_file_is_left(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "d.csv").write_text("a,b\n1,2\n3,4\n")
    assert cli("data", "add", "d.csv")[0] == 0
    blob = next(p for p in (tmp_path / ".loopml" / "artifacts" / "blobs").rglob("*") if p.is_file())
    blob.chmod(0o644)
    blob.write_bytes(b"a,b\n1,2\n3,5\n")
    code, _, err = cli("data", "get", "d@1", "-o", "out")
    assert code == 1
    assert f"blake3:{blob.parent.name}{blob.name}" in err
    assert not (tmp_path / "out" / "d.csv").exists()


def test_db_upgrade_reports_the_revision(cli) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = cli("db", "upgrade", "--json")
    assert code == 0
    assert json.loads(out)["revision"] == json.loads(out)["head"]


def test_alias_on_a_missing_version_names_the_versions(cli) -> None:  # type: ignore[no-untyped-def]
    from sklearn.dummy import DummyClassifier

    from loopml.bootstrap import open_workspace

    workspace = open_workspace()
    workspace.registry.register(
        DummyClassifier().fit([[0], [1]], [0, 1]), "churn", project="default"
    )
    workspace.close()
    code, _, err = cli("models", "alias", "set", "churn", "champion", "7")
    assert code == 1
    assert "no version 7; its versions are 1 to 1" in err
    assert "loopml models versions churn" in err


def test_usage_errors_exit_2(cli) -> None:  # type: ignore[no-untyped-def]
    code, _, err = cli("models", "alias", "set", "churn", "champion", "three")
    assert code == 2
    assert "Invalid value for 'version'" in err


def test_debug_shows_the_traceback(cli) -> None:  # type: ignore[no-untyped-def]
    code, _, err = cli("--debug", "data", "show", "ghost")
    assert code == 1
    assert "Traceback" in err


def test_the_installed_command_answers_help_quickly() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "loopml", "--help"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0
    for group in ("data", "runs", "models", "audit", "init"):
        assert group in done.stdout


def test_audit_verify_exits_1_when_an_event_was_edited(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import sqlite3

    (tmp_path / "d.csv").write_text("a\n1\n")
    assert cli("data", "add", "d.csv")[0] == 0
    assert cli("audit", "verify")[0] == 0
    with sqlite3.connect(tmp_path / ".loopml" / "loopml.db") as db:
        db.execute("UPDATE events SET actor = 'mallory' WHERE seq = 1")
    code, out, _ = cli("audit", "verify", "--json")
    assert code == 1
    assert json.loads(out)["first_bad_seq"] == 1


def test_deploy_commands(cli) -> None:  # type: ignore[no-untyped-def]
    from sklearn.dummy import DummyClassifier

    from loopml.bootstrap import open_workspace

    workspace = open_workspace()
    for _ in range(2):
        workspace.registry.register(
            DummyClassifier().fit([[0], [1]], [0, 1]), "churn", project="default"
        )
    workspace.registry.set_alias("churn", "champion", 1, project="default")
    workspace.close()
    code, out, _ = cli(
        "deploy",
        "create",
        "churn-prod",
        "--model",
        "churn@champion",
        "--shadow",
        "churn/2",
        "--json",
    )
    assert (code, json.loads(out)["created"]) == (0, True)
    code, out, _ = cli("deploy", "show", "churn-prod", "--json")
    assert json.loads(out)["serves_version"] == 1
    code, out, _ = cli("deploy", "list")
    assert "churn-prod" in out
    code, _, err = cli("deploy", "create", "bad", "--model", "churn/5")
    assert (code, "no version 5" in err) == (1, True)
    assert cli("deploy", "delete", "churn-prod")[0] == 0
    code, _, err = cli("deploy", "show", "churn-prod")
    assert (code, "does not exist" in err) == (1, True)


def test_audit_head_and_checkpointed_verify(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "a.csv").write_text("x\n1\n")
    assert cli("data", "add", "a.csv")[0] == 0
    code, head, _ = cli("audit", "head")
    assert code == 0
    seq, _, digest = head.strip().partition(":")
    assert digest.startswith("blake3:")
    assert cli("audit", "verify", "--checkpoint", head.strip())[0] == 0
    code, out, _ = cli("audit", "verify", "--checkpoint", f"{int(seq) + 5}:{digest}")
    assert code == 1
    assert "newest events were removed" in out
    code, _, err = cli("audit", "verify", "--checkpoint", "nonsense")
    assert code == 1
    assert "not an audit checkpoint" in err


def test_models_promote_and_rollback(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from sklearn.dummy import DummyClassifier

    from loopml.bootstrap import open_workspace
    from loopml.settings import Settings

    ws = open_workspace(Settings.from_env(env={}, cwd=tmp_path))
    for _ in range(2):
        ws.registry.register(DummyClassifier().fit([[0], [1]], [0, 1]), "churn", project="default")
    ws.close()
    assert cli("models", "promote", "churn", "1")[1] == "promoted churn 1 to champion\n"
    assert "replacing 1" in cli("models", "promote", "churn", "2")[1]
    code, out, _ = cli("models", "rollback", "churn")
    assert code == 0
    assert out == "rolled back churn@champion from 2 to 1\n"
    code, _, err = cli("models", "rollback", "churn")
    assert code == 1
    assert "no earlier version" in err


def _gate_models(tmp_path: Path) -> None:
    """holdout.csv (x, churned) and model churn: 1 weak (the champion), 2 good, 3 weak."""
    from sklearn.dummy import DummyClassifier
    from sklearn.linear_model import LogisticRegression

    from loopml.bootstrap import open_workspace
    from loopml.settings import Settings

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=600)})
    frame["churned"] = (frame["x"] + rng.normal(scale=0.3, size=600) > 0).astype(int)
    frame.to_csv(tmp_path / "holdout.csv", index=False)
    ws = open_workspace(Settings.from_env(env={}, cwd=tmp_path))
    good = LogisticRegression().fit(frame[["x"]], frame["churned"])
    weak = DummyClassifier(strategy="most_frequent").fit(frame[["x"]], frame["churned"])
    for model in (weak, good, weak):
        ws.registry.register(model, "churn", project="default", input_example=frame[["x"]].head(3))
    ws.registry.promote("churn", 1, project="default")
    ws.close()


def test_gate_passes_a_better_candidate_and_fails_a_worse_one(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _gate_models(tmp_path)
    assert cli("data", "add", "holdout.csv")[0] == 0

    gate = ["gate", "-m", "churn", "-d", "holdout@1", "-r", "f1 >= champion.f1 + 0.05"]
    code, out, _ = cli(*gate, "-c", "2", "--report", "gate.md")
    assert code == 0
    assert out.startswith("## Gate churn 2 on holdout@1: PASSED")
    assert (tmp_path / "gate.md").read_text() == out
    assert "| `f1 >= champion.f1 + 0.05` | pass |" in out
    assert "latency" not in out  # measured only when a rule names it
    code, out, _ = cli(*gate, "-c", "3")
    assert code == 1
    assert "FAILED" in out
    code, out, _ = cli(
        "gate",
        "-m",
        "churn",
        "-c",
        "2",
        "--against",
        "none",
        "-d",
        "holdout@1",
        "-r",
        "accuracy >= 0.8",
    )
    assert code == 0

    code, _, err = cli(*gate[:-2], "-r", "f1 is better", "-c", "2")
    assert code == 1
    assert "cannot be read" in err
    code, _, err = cli(*gate[:-2], "-r", "wow >= 0.1", "-c", "2")
    assert code == 1
    assert "'wow', which is not measured" in err
    pd.DataFrame({"x": [0.1, 0.2]}).to_csv(tmp_path / "unlabelled.csv", index=False)
    assert cli("data", "add", "unlabelled.csv")[0] == 0
    code, _, err = cli("gate", "-m", "churn", "-c", "2", "-d", "unlabelled@1", "-r", "f1 >= 0.5")
    assert code == 1
    assert "label column is unclear" in err


def test_gate_measures_latency_when_a_rule_guards_it(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _gate_models(tmp_path)
    assert cli("data", "add", "holdout.csv")[0] == 0
    guard = "latency_p99_ms <= 10 * champion.latency_p99_ms"
    gate = ["gate", "-m", "churn", "-c", "2", "-d", "holdout@1", "-r", guard]
    code, out, _ = cli(*gate, "--report", "gate.md", "--json")
    result = json.loads(out)
    candidate, champion = result["candidate"], result["champion"]
    for metrics in (candidate, champion):
        assert 0 < metrics["latency_p50_ms"] <= metrics["latency_p99_ms"]
    threshold = 10 * champion["latency_p99_ms"]
    ((rule, held, detail),) = result["rules"]
    assert rule == guard
    assert detail.startswith(f"{candidate['latency_p99_ms']:.4f} <= {threshold:.4f}; ")
    assert " to the champion, bound 10 (95% interval)" in detail
    assert held is ("beyond the bound with confidence" not in detail)
    assert code == (0 if held else 1)
    latency = result["latency"]
    assert latency["calls"] == latency["blocks"] * latency["block_calls"] > 0
    ratio = latency["ratio"]["latency_p99_ms"]
    assert ratio["low"] <= ratio["estimate"] <= ratio["high"]
    report = (tmp_path / "gate.md").read_text()
    assert f"| `{guard}` | {'pass' if held else 'FAIL'} | {detail} |" in report
    assert f"| latency_p99_ms | {candidate['latency_p99_ms']:.4f} | " in report
    assert f"Latency: {latency['calls']:,} single-row calls per model in " in report


def test_gate_with_a_confidence_waits_for_rows_not_noise(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _gate_models(tmp_path)
    pd.read_csv(tmp_path / "holdout.csv").head(40).to_csv(tmp_path / "few.csv", index=False)
    assert cli("data", "add", "holdout.csv")[0] == 0
    assert cli("data", "add", "few.csv")[0] == 0
    gate = ["gate", "-m", "churn", "-c", "2"]
    code, out, _ = cli(*gate, "-d", "few@1", "-r", "accuracy >= 0.5", "--json")
    shown = json.loads(out)
    lead = shown["candidate"]["accuracy"] - shown["champion"]["accuracy"]
    barely = f"accuracy >= champion.accuracy + {lead - 0.02:.4f}"  # just under the bar

    code, out, _ = cli(*gate, "-d", "few@1", "-r", barely)
    assert code == 0  # the point comparison passes it on 40 rows
    code, out, _ = cli(*gate, "-d", "few@1", "-r", barely, "--confidence", "0.9")
    assert code == 1
    assert out.startswith("## Gate churn 2 on few@1: UNDECIDED")
    assert f"| `{barely}` | undecided | " in out
    assert "(90% bounds) on 40 rows (exact binomial on " in out
    assert "Undecided at 90% confidence, so not passed:" in out
    assert f"- `{barely}`: 40 rows cannot tell; " in out
    code, out, _ = cli(*gate, "-d", "few@1", "-r", barely, "--confidence", "0.9", "--json")
    shown = json.loads(out)
    assert (code, shown["passed"], shown["undecided"]) == (1, False, [barely])
    found = shown["comparisons"][barely]
    assert found["verdict"] == "undecided"
    assert found["rows"] == 40
    assert found["low"] < found["difference"] - 0.02 < found["high"]
    assert found["method"].startswith("exact binomial on ")

    rule = "f1 >= champion.f1 + 0.05"
    code, out, _ = cli(*gate, "-d", "holdout@1", "-r", rule, "--confidence", "0.9")
    assert code == 0
    assert out.startswith("## Gate churn 2 on holdout@1: PASSED")
    assert "Paired on the same rows: candidate minus champion, with one-sided 90% bounds." in out
    assert "| 600 | paired bootstrap, 2,000 resamples | pass |" in out

    code, out, err = cli(*gate, "-d", "holdout@1", "-r", rule, "--confidence", "1.5")
    assert code == 1
    assert out == ""
    assert "The confidence 1.5 is not between 0.5 and 1" in err
    assert "e.g. --confidence 0.9" in err
    assert "Traceback" not in err


def test_gate_with_a_horizon_judges_the_rule_over_the_next_rows_served(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _gate_models(tmp_path)
    assert cli("data", "add", "holdout.csv")[0] == 0
    gate = ["gate", "-m", "churn", "-c", "2", "-d", "holdout@1", "--confidence", "0.9"]
    rule = "accuracy >= champion.accuracy"
    code, out, _ = cli(*gate, "-r", rule, "--json")
    plain = json.loads(out)["comparisons"][rule]
    code, out, _ = cli(*gate, "-r", rule, "--horizon", "200", "--json")
    over = json.loads(out)["comparisons"][rule]
    assert over["horizon"] == 200
    assert over["method"] == "predictive paired bootstrap, 2,000 resamples"
    assert over["difference"] == plain["difference"]
    assert over["high"] - over["low"] > plain["high"] - plain["low"]
    code, out, _ = cli(*gate, "-r", rule, "--horizon", "200")
    assert "(90% bounds over the next 200 rows) on 600 rows (predictive paired bootstrap" in out

    for bad, said in (
        (["--horizon", "0"], "The horizon 0 is not a positive number of rows."),
        (["--horizon", "-3"], "The horizon -3 is not a positive number of rows."),
    ):
        code, out, err = cli(*gate, "-r", rule, *bad)
        assert (code, out) == (1, "")
        assert said in err
        assert "Traceback" not in err
    code, out, err = cli(*gate[:-2], "-r", rule, "--horizon", "200")
    assert (code, out) == (1, "")
    assert "A horizon of 200 rows needs a confidence" in err
    assert "Add --confidence 0.9" in err


def test_gate_reports_duplicates_and_blocks_them_only_when_asked(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _gate_models(tmp_path)
    holdout = pd.read_csv(tmp_path / "holdout.csv")
    repeated = pd.concat([holdout.head(552), holdout.head(48)], ignore_index=True)  # 8% repeat
    repeated.to_csv(tmp_path / "coded.csv", index=False)
    assert cli("data", "add", "coded.csv")[0] == 0
    gate = ["gate", "-m", "churn", "-c", "2", "-d", "coded@1", "-r", "f1 >= champion.f1 + 0.05"]

    code, out, _ = cli(*gate)
    assert code == 0
    assert out.startswith("## Gate churn 2 on coded@1: PASSED")
    assert (
        "| duplicate rows | pass | 8.0% of rows; reported, not blocking; "
        "set --check duplicates<=X to block |"
    ) in out
    assert "| missing values in the inputs | pass | none, limit missing <= 0.05 |" in out
    assert "| labelled rows | pass | 600, limit labelled >= 30 |" in out

    strict = [*gate, "--check", "duplicates <= 0.05", "--check", "labelled >= 200"]
    code, out, _ = cli(*strict, "--report", "gate.md")
    assert code == 1
    assert out.startswith("## Gate churn 2 on coded@1: FAILED")
    assert "| duplicate rows | FAIL | 8.0% of rows, limit duplicates <= 0.05 |" in out
    assert "| labelled rows | pass | 600, limit labelled >= 200 |" in out
    assert (tmp_path / "gate.md").read_text() == out
    code, out, _ = cli(*strict, "--json")
    shown = json.loads(out)
    assert (code, shown["passed"]) == (1, False)
    checks = {each["check"]: each for each in shown["data_checks"]}
    assert checks["duplicates"]["value"] == pytest.approx(0.08)
    assert (checks["duplicates"]["threshold"], checks["duplicates"]["ok"]) == (0.05, False)
    assert (checks["labelled"]["value"], checks["labelled"]["threshold"]) == (600, 200)
    assert ["duplicate rows", False, "8.0% of rows, limit duplicates <= 0.05"] in shown["checks"]
    assert cli(*gate, "--check", "duplicates <= 0.1")[0] == 0
    assert cli(*gate, "--check", "labelled >= 601")[0] == 1

    code, out, err = cli(*gate, "--check", "duplicates <= 8")
    assert (code, out) == (1, "")
    assert "The data check 'duplicates <= 8' sets a share of 8, outside 0..1." in err
    assert 'e.g. "duplicates <= 0.05" for 5%' in err
    code, out, err = cli(*gate, "--check", "dupes <= 0.1")
    assert (code, out) == (1, "")
    assert "names 'dupes', which the gate does not check" in err
    assert "Traceback" not in err
    code, out, _ = cli("gate", "--help")
    assert code == 0
    assert "--check" in out
    assert "duplicates <= 0.05" in " ".join(out.replace("│", " ").split())


def test_audit_log_takes_a_project_like_every_other_command(cli) -> None:  # type: ignore[no-untyped-def]
    from sklearn.dummy import DummyClassifier

    from loopml.bootstrap import open_workspace

    workspace = open_workspace()
    for project in ("default", "other"):
        workspace.registry.register(
            DummyClassifier().fit([[0], [1]], [0, 1]), "churn", project=project
        )
    workspace.registry.set_alias("churn", "champion", 1, project="other")
    workspace.close()
    code, out, _ = cli("audit", "log", "-p", "other", "--json")
    assert code == 0
    events = json.loads(out)
    assert events
    assert {e["entity"] for e in events} == {"model:other/churn"}
    assert {e["action"] for e in events} >= {"model.alias_set"}
    assert [e["seq"] for e in events] == sorted((e["seq"] for e in events), reverse=True)
    code, out, _ = cli("audit", "log", "--project", "other", "--entity", "model:churn", "--json")
    assert [e["entity"] for e in json.loads(out)] == [e["entity"] for e in events]
    code, out, _ = cli("audit", "log", "--json")  # no project: the whole trail, as before
    assert {e["entity"].split("/")[0] for e in json.loads(out)} >= {
        "model:default",
        "model:other",
    }


def test_an_unchanged_data_add_reads_and_profiles_nothing(tmp_path: Path) -> None:
    """Adding a file the workspace already holds as the latest version answers from the hash
    cache and one lookup: no table library is loaded, no profile is made."""
    _write_csv(tmp_path / "train.csv", 0)
    probe = (
        "import sys\nfrom loopml.cli.app import main\n"
        "sys.argv = ['loopml', 'data', 'add', 'train.csv', '--name', 'churn']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'pandas', 'pyarrow', 'numpy'}))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPML_")}
    runs = [
        subprocess.run(
            [sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True
        )
        for _ in range(2)
    ]
    assert [run.returncode for run in runs] == [0, 0], runs[-1].stderr
    first, again = (run.stdout.splitlines() for run in runs)
    assert first[0].startswith("added churn@1")
    assert again[0].startswith("unchanged, already churn@1")
    assert again[-1] == "[]"  # the first add profiled the table; the second loaded none of it


_HEAVY = ("sqlalchemy", "alembic", "fsspec", "pyarrow", "numpy", "pandas", "httpx", "pydantic")
"""What a list or show command of a local workspace never imports (issue 16: the CLI starts
fast); the quick read path (`loopml.adapters.sql.quick`) answers them with `sqlite3`."""
_PROBE = (
    "import sys\nfrom loopml.cli.app import main\nsys.argv = ['loopml', *sys.argv[1:]]\n"
    "try:\n    main()\nexcept SystemExit as done:\n    code = done.code\nelse:\n    code = 0\n"
    f"heavy = sorted({{m.split('.')[0] for m in sys.modules}} & set({_HEAVY!r}))\n"
    "sys.stderr.write(f'\\nexit={code} heavy={heavy}\\n')\n"
)


def _fill_small_workspace(folder: Path) -> dict[str, str]:
    """One of everything a list or show command reads: a dataset version, a run with metrics, a
    model version with an alias, a deployment, a monitor with a run, an alert rule with an
    alert, a loop with a run. Returns the ids the commands name."""
    from datetime import UTC, datetime

    from sklearn.dummy import DummyClassifier

    from loopml.bootstrap import open_workspace
    from loopml.domain.hashing import digest_bytes
    from loopml.domain.loops import LoopRun
    from loopml.domain.records import Alert, AlertRule, Monitor, MonitorRun
    from loopml.testing.contracts.stores import draft, loop_spec

    _write_csv(folder / "train.csv", 0)
    earlier = time.time() - 60  # written a minute ago: the hash cache trusts it at once (a file
    os.utime(folder / "train.csv", (earlier, earlier))  # hashed in its write's tick is not)
    when = datetime(2026, 11, 28, 13, tzinfo=UTC)
    ws = open_workspace()
    try:
        ws.data.add(folder / "train.csv", name="churn", project="default")
        with ws.tracking.start_run(project="default", name="one") as run:
            run.log_params({"c": "1"})
            run.log_metrics({"acc": 0.9, "loss": 0.3})
        model = DummyClassifier().fit([[0], [1]], [0, 1])
        ws.registry.register(model, "churn", project="default", run_id=run.id)
        ws.registry.set_alias("churn", "champion", 1, project="default")
        ws.deployments.create("web", project="default", model="churn@champion")
        stores = ws.stores
        report = digest_bytes(b"report")
        monitor = Monitor("default", "drift", "web", "churn@1", report, 3600, 600, when, when)
        stores.monitors.save(monitor, draft("monitor.saved", "monitor:default/drift"))
        ran = MonitorRun(0, "default", "drift", when, 1, 2, 100, 0.25, ("tenure",), report, 0.4)
        stores.monitors.add_run(ran, draft("monitor.ran", "monitor:default/drift"))
        rule = AlertRule(0, "default", "drift", "drift_share > 0.3", ("log:",), 600, when, 1, 0.0)
        rule = stores.alerts.add_rule(rule, draft("alert_rule.added", "alert:default/drift"))
        fired = Alert(0, "default", rule.id, "drift", rule.condition, "firing", when, when, None,
                      0.5, ())  # fmt: skip
        alert = stores.alerts.save_alert(fired, draft("alert.fired", "alert:default/drift"))
        stores.loops.create(loop_spec("retrain"), draft("loop.created", "loop:default/retrain"))
        started = LoopRun(0, "default", "retrain", when, None, "manual", "running")
        stores.loops.save_run(started, draft("loop.ran", "loop:default/retrain"))
    finally:
        ws.close()
    return {"run": run.id, "alert": str(alert.id)}


def _commands(ids: dict[str, str]) -> list[list[str]]:
    return [
        ["data", "list"],
        ["data", "list", "churn"],
        ["data", "show", "churn"],
        ["runs", "list"],
        ["runs", "list", "--filter", "metrics.acc > 0.5", "--order-by", "-params.c"],
        ["runs", "show", ids["run"]],
        ["models", "list"],
        ["models", "versions", "churn"],
        ["models", "show", "churn@champion"],
        ["deploy", "list"],
        ["deploy", "show", "web"],
        ["monitor", "list"],
        ["alert", "list"],
        ["alert", "show", ids["alert"]],
        ["alert", "rule", "list"],
        ["loop", "list"],
        ["loop", "show", "retrain"],
        ["loop", "history", "retrain"],
        ["audit", "log"],
    ]


def _loopml(folder: Path, args: list[str], quick: bool = True) -> tuple[str, str]:
    """(stdout, the probe's last line: exit code and heavy modules) of `loopml ARGS`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPML_")}
    env["LOOPML_QUICK_READS"] = "1" if quick else "0"
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *args], cwd=folder, env=env, capture_output=True, text=True
    )
    return done.stdout, done.stderr.strip().splitlines()[-1]


def test_list_and_show_commands_import_nothing_heavy_and_answer_as_the_full_path(
    cli, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """Every list and show command of a small local workspace, and an unchanged `data add`,
    run without SQLAlchemy, Alembic, fsspec, Arrow, numpy, pandas, httpx or pydantic, and
    print what they print when the workspace is read through SQLAlchemy (LOOPML_QUICK_READS=0).
    """
    ids = _fill_small_workspace(tmp_path)
    for args in _commands(ids):
        text, probe = _loopml(tmp_path, args)
        assert probe == "exit=0 heavy=[]", (args, probe)
        quick, probe = _loopml(tmp_path, [*args, "--json"])
        assert probe == "exit=0 heavy=[]", (args, probe)
        full, probe = _loopml(tmp_path, [*args, "--json"], quick=False)
        assert "sqlalchemy" in probe, (args, probe)  # the full path, for comparison
        assert json.loads(quick) == json.loads(full), args
        assert text == _loopml(tmp_path, args, quick=False)[0], args
    for args in (["monitor", "history", "drift", "--json"], ["--help"]):
        assert _loopml(tmp_path, args)[1] == "exit=0 heavy=[]", args
    out, probe = _loopml(tmp_path, ["data", "add", "train.csv", "--name", "churn"])
    assert (out.split(",")[0], probe) == ("unchanged", "exit=0 heavy=[]")


def test_a_new_workspace_is_made_by_the_full_path_then_read_quickly(tmp_path: Path) -> None:
    """The quick path reads only a database that is there, at this code's schema; the first
    command of a new folder takes the full path, which creates it."""
    _, probe = _loopml(tmp_path, ["data", "list"])
    assert probe.startswith("exit=0")
    assert "sqlalchemy" in probe
    assert (tmp_path / ".loopml" / "loopml.db").is_file()
    assert _loopml(tmp_path, ["data", "list"])[1] == "exit=0 heavy=[]"
