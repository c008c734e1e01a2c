"""`loopml log ...`: upkeep of the prediction log (compaction, retention)."""

from __future__ import annotations

import sys

import typer

from loopml.cli.context import JSON_OPTION, open_workspace, print_json, print_table, size

app = typer.Typer(
    help="Upkeep of the prediction log: merge each closed hour's files, expire old hours.",
    no_args_is_help=True,
)


@app.command("compact")
def compact(
    deployment: list[str] = typer.Option(
        [], "--deployment", "-d", help="Only this deployment's log (repeatable); default all."
    ),
    min_age: str = typer.Option(
        "10m",
        "--min-age",
        help="Merge an hour once it ended this long ago (rows a server held back while its "
        "store was down may still come; later ones are merged by the next run). 0s: now.",
    ),
    retain: str = typer.Option(
        None,
        "--retain",
        help="Also remove rows served (and labels that came) longer ago than this, e.g. 90d; "
        "refused when shorter than a monitor's window. Audited.",
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Say what would change; change nothing."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Merge the many small files every server process writes into one file per hour and
    deployment, atomically (readers never see a row twice or miss one, also while it runs; a
    run that is killed is finished by the next). The team server does this on its schedule."""
    from loopml.bootstrap import log_upkeep
    from loopml.domain.durations import parse_duration

    min_age_s = parse_duration(min_age, zero=True)
    retain_s = parse_duration(retain) if retain is not None else None
    workspace = open_workspace()
    try:
        outcome = log_upkeep(workspace).run(
            min_age_s=min_age_s,
            retain_s=retain_s,
            deployments=deployment or None,
            dry_run=dry_run,
        )
    finally:
        workspace.close()
    reports = {"compacted": outcome.compacted, "expired": outcome.expired}
    if as_json:
        print_json(
            {
                "dry_run": dry_run,
                **{
                    name: None
                    if report is None
                    else {d: report.totals(d) for d in sorted(report.changes)}
                    for name, report in reports.items()
                },
                "finished_interrupted": outcome.compacted.finished,
            }
        )
        return
    for name, report in reports.items():
        if report is None:
            continue
        verb = f"would be {name}" if dry_run else name
        if not report.changes:
            sys.stdout.write(f"Nothing {verb}.\n")
            continue
        rows = []
        for d in sorted(report.changes):
            t = report.totals(d)
            rows.append((d, t["folders"], f"{t['files_before']} -> {t['files_after']}", t["rows"],
                         f"{size(t['bytes_before'])} -> {size(t['bytes_after'])}"))  # fmt: skip
        print_table(f"Hours {verb}", ["deployment", "hours", "files", "rows", "size"], rows)
    if outcome.compacted.finished:
        sys.stdout.write(
            f"Finished an interrupted compaction: {outcome.compacted.finished} merged files "
            "removed.\n"
        )
