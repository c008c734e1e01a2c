"""The gate's report on latency: how the timing went, every percentile with its interval, the
ratio to the champion, and the note of a guard the timings could not settle."""

from __future__ import annotations

import numpy as np

from loopml.domain.gate_rules import apply_rule, parse_rule
from loopml.domain.jsonable import jsonable
from loopml.domain.latency import LatencyTimings, latency_evidence
from loopml.monitoring.gate import GateResult, latency_report
from loopml.monitoring.latency import Timed

GUARD = "latency_p99_ms <= 1.2 * champion.latency_p99_ms"


def _unsettled() -> GateResult:
    """A candidate timed as the champion's own calls 20% slower, in other blocks: exactly at
    the bound, which the intervals cannot settle."""
    champion = np.random.default_rng(0).lognormal(0.0, 0.5, (200, 10))
    timings = LatencyTimings(1.2 * champion[::-1], champion)
    evidence = latency_evidence(timings)
    assert evidence.champion is not None
    rule = apply_rule(parse_rule(GUARD), evidence.candidate, evidence.champion, evidence)
    accuracy = ("accuracy >= 0.8", True, "0.9000 >= 0.8000")
    return GateResult(
        passed=True,
        task="classification",
        candidate={"accuracy": 0.9, **evidence.candidate},
        champion={"accuracy": 0.85, **evidence.champion},
        rules=[accuracy, rule],
        rows=300,
        labels="churned",
        latency=latency_report(Timed(timings, 2.46, 200, 10), evidence),
    )


def test_the_report_says_how_latency_was_timed_and_shows_every_interval() -> None:
    result = _unsettled()
    report = result.latency
    assert report is not None
    assert report.ratio is not None
    assert report.champion is not None
    text = result.markdown("Gate churn 2 on holdout@1")
    assert (
        "Latency: 2,000 single-row calls per model in 2.5 s, candidate and champion taking turns "
        "in blocks of 10 calls (in random order) on the same 200 rows; 95% intervals by a "
        "paired block bootstrap."
    ) in text
    for metric in ("latency_p50_ms", "latency_p99_ms"):
        candidate, champion = report.candidate[metric], report.champion[metric]
        ratio = report.ratio[metric]
        assert candidate.low <= candidate.estimate <= candidate.high
        assert f"| {metric} | {candidate} ms | {champion} ms | {ratio} |" in text
    assert f"| latency_p99_ms | {result.candidate['latency_p99_ms']:.4f} | " in text


def test_a_guard_the_timings_cannot_settle_passes_with_the_note_in_the_report() -> None:
    result = _unsettled()
    assert result.latency is not None
    assert result.latency.ratio is not None
    ratio = result.latency.ratio["latency_p99_ms"]
    assert ratio.low < 1.2 < ratio.high
    _, held, detail = result.rules[1]
    assert held
    note = f"could not tell apart: ratio {ratio} to the champion, bound 1.2 (95% interval); passed"
    assert note in detail
    assert f"| `{GUARD}` | pass | {detail} |" in result.markdown("Gate")
    assert result.notes == [f"{GUARD} ({detail})"]


def test_the_json_of_a_result_carries_the_intervals() -> None:
    shown = jsonable(_unsettled())
    latency = shown["latency"]
    assert (latency["calls"], latency["blocks"], latency["block_calls"]) == (2_000, 200, 10)
    assert set(latency["ratio"]["latency_p99_ms"]) == {"estimate", "low", "high"}
    assert latency["confidence"] == 0.95


def test_without_a_champion_the_report_shows_the_candidates_intervals_alone() -> None:
    timings = LatencyTimings(np.random.default_rng(0).lognormal(0.0, 0.5, (100, 10)))
    evidence = latency_evidence(timings)
    rule = apply_rule(parse_rule("latency_p99_ms <= 100"), evidence.candidate, None, evidence)
    result = GateResult(
        True,
        "classification",
        dict(evidence.candidate),
        None,
        [rule],
        latency=latency_report(Timed(timings, 1.04, 200, 10), evidence),
    )
    text = result.markdown("Gate")
    assert (
        "Latency: 1,000 single-row calls in 1.0 s, in blocks of 10 calls on 200 rows; 95% "
        "intervals by a block bootstrap."
    ) in text
    p99 = evidence.interval("candidate", "latency_p99_ms")
    assert f"| latency_p99_ms | {p99} ms |  |  |" in text
    assert rule[1]
    assert rule[2].endswith(f"latency_p99_ms {p99} ms, bound 100 (95% interval)")


def test_a_gate_without_latency_rules_reports_no_latency() -> None:
    result = GateResult(True, "classification", {"f1": 0.9}, None, [("f1 >= 0.5", True, "")])
    assert "Latency" not in result.markdown("Gate")
    assert result.notes == []


def _judged_at_90(rows: int) -> GateResult:
    """The issue's rule on `rows` rows where only the candidate is right on 14, only the
    champion on 6, both wrong on 10, judged at 90% confidence."""
    from loopml.domain.paired import PairedRows, Verdict, decide

    truth = np.zeros(rows, dtype=int)
    row = np.arange(rows)
    candidate = ((row < 6) | ((row >= 20) & (row < 30))).astype(int)
    champion = ((row >= 6) & (row < 30)).astype(int)
    rule = "accuracy >= champion.accuracy + 0.01"
    found = decide(
        PairedRows(truth, candidate, champion),
        metric="accuracy",
        op=">=",
        margin=0.01,
        confidence=0.9,
    )
    held = found.verdict is Verdict.PASS
    undecided = found.verdict is Verdict.UNDECIDED
    return GateResult(
        passed=held,
        task="classification",
        candidate={"accuracy": found.candidate},
        champion={"accuracy": found.champion},
        rules=[(rule, held, found.detail)],
        rows=rows,
        labels="churned",
        confidence=0.9,
        comparisons={rule: found},
        undecided=[rule] if undecided else [],
    )


def test_an_undecided_rule_shows_its_difference_and_the_rows_that_would_tell() -> None:
    result = _judged_at_90(300)
    found = result.comparisons["accuracy >= champion.accuracy + 0.01"]
    assert found.needed_rows is not None
    text = result.markdown("Gate churn 2 on holdout@1")
    assert text.startswith("## Gate churn 2 on holdout@1: UNDECIDED")
    assert (
        f"| `accuracy >= champion.accuracy + 0.01` | +0.0267 | [{found.low:+.4f}, "
        f"{found.high:+.4f}] | 300 | exact binomial on 20 disagreements; McNemar p = "
        f"{found.p_value:.2g} | undecided |"
    ) in text
    assert "| `accuracy >= champion.accuracy + 0.01` | undecided | accuracy +0.027 [" in text
    assert (
        f"- `accuracy >= champion.accuracy + 0.01`: 300 rows cannot tell; about "
        f"{found.needed_rows:,} labelled rows would tell."
    ) in text
    shown = jsonable(result)
    assert shown["undecided"] == ["accuracy >= champion.accuracy + 0.01"]
    comparison = shown["comparisons"]["accuracy >= champion.accuracy + 0.01"]
    assert comparison["verdict"] == "undecided"
    assert comparison["rows"] == 300


def test_a_failed_check_or_rule_beside_an_undecided_rule_makes_the_gate_failed() -> None:
    result = _judged_at_90(300)
    result.checks = [("labelled rows", False, "12")]
    assert result.markdown("Gate").startswith("## Gate: FAILED")
    surely_not = _judged_at_90(3_000)
    assert surely_not.undecided == []
    assert surely_not.markdown("Gate").startswith("## Gate: FAILED")
    assert "| `accuracy >= champion.accuracy + 0.01` | FAIL | " in surely_not.markdown("Gate")
