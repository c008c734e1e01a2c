"""`loopml gate`: a model candidate against the champion on a dataset version, for CI."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from loopml.cli.context import JSON_OPTION, PROJECT_OPTION, open_workspace, print_json, project_of


def gate(
    model: str = typer.Option(..., "--model", "-m", help="Model name."),
    candidate: str = typer.Option(..., "--candidate", "-c", help="Version (or alias) to judge."),
    against: str = typer.Option(
        "champion",
        "--against",
        help="Version or alias to compare with; 'none' for thresholds only.",
    ),
    data: str = typer.Option(..., "--data", "-d", help="Labelled dataset version, e.g. churn@12."),
    rule: list[str] = typer.Option(
        ...,
        "--rule",
        "-r",
        help='Repeatable: "f1 >= champion.f1", "f1 >= champion.f1 + 0.005", "accuracy >= 0.8".',
    ),
    label: str = typer.Option(None, "--label", help="Label column (default: the one non-input)."),
    report: Path = typer.Option(None, "--report", help="Write the Markdown report here."),
    confidence: float = typer.Option(
        None,
        "--confidence",
        help="How sure a rule against the champion must be, e.g. 0.9: judged on the paired "
        "difference on the same rows; too few rows to tell is 'undecided' (exit 1). "
        "Default: compare the two numbers.",
    ),
    horizon: int = typer.Option(
        None,
        "--horizon",
        help="With --confidence: judge those rules over the next ROWS served rows (a "
        "prediction interval), so a rule passes only for a difference that will show over "
        "them, not only on average.",
    ),
    check: list[str] = typer.Option(
        [],
        "--check",
        help='Repeatable data check: "duplicates <= 0.05" (share of duplicate rows; default '
        'reported, not blocking), "missing <= 0.01" (worst input column\'s share of missing '
        'values; default 0.05), "labelled >= 200" (labelled rows; default 30).',
    ),
    project: str = PROJECT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Score a candidate model (and the champion) on a labelled dataset version, check the
    data, apply the rules; print a Markdown report (fit for a CI job summary) and exit 0 if
    every rule and check passes, 1 if not (or if a rule is undecided at --confidence)."""
    from loopml.domain.data_checks import parse_checks
    from loopml.monitoring.gate import gate as run_gate

    checks = parse_checks(check)
    ws = open_workspace()
    result = run_gate(
        ws,
        model=model,
        candidate=candidate,
        against=None if against.lower() == "none" else against,
        data=data,
        rules=rule,
        label=label,
        project=project_of(ws, project),
        confidence=confidence,
        checks=checks,
        horizon=horizon,
    )
    text = result.markdown(f"Gate {model} {candidate} on {data}")
    if report is not None:
        report.write_text(text, encoding="utf-8")
    if as_json:
        print_json(result)
    else:
        sys.stdout.write(text)
    if not result.passed:
        raise typer.Exit(1)
