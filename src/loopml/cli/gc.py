"""`loopml gc`: remove blobs nothing references, and temp files of writes that died."""

from __future__ import annotations

import sys

import typer

from loopml.cli.context import JSON_OPTION, open_workspace, print_json, print_table, size


def gc(
    dry_run: bool = typer.Option(
        False, "--dry-run", help="List what would be removed; change nothing."
    ),
    grace: str = typer.Option(
        "24h",
        "--grace",
        help="Keep anything written or reused this recently (e.g. 24h, 30m, 0s). It must "
        "exceed the longest write in progress: 0s is only safe when nothing else writes.",
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Remove blobs that no dataset, model, run, step output, step cache entry or monitor
    report names, and temp files left by writes that died. Blobs younger than --grace are
    kept; the prediction log is never touched. Safe while others read and write."""
    from loopml.bootstrap import garbage_collector
    from loopml.domain.durations import parse_duration

    grace_s = parse_duration(grace, zero=True)
    workspace = open_workspace()
    try:
        report = garbage_collector(workspace).collect(grace_s=grace_s, dry_run=dry_run)
    finally:
        workspace.close()
    if as_json:
        print_json(
            {
                "dry_run": report.dry_run,
                "grace_s": report.grace_s,
                "freed_bytes": report.freed_bytes,
                "totals": report.totals(),
                "freed": report.freed,
                "kept_named": report.kept_named,
                "kept_young": report.kept_young,
                "kept_reused": report.kept_reused,
                "recovered": report.recovered,
            }
        )
        return
    verb = "Would free" if dry_run else "Freed"
    sys.stdout.write(f"{verb} {len(report.freed)} items, {size(report.freed_bytes)}.\n")
    if report.freed:
        rows = [(t.kind, t.count, size(t.size)) for t in report.totals()]
        print_table(None, ["kind", "count", "size"], rows)
    if dry_run and report.freed:
        print_table(
            None, ["kind", "name", "size"], [(f.kind, f.name, f.size) for f in report.freed]
        )
    sys.stdout.write(
        f"Kept {report.kept_named} blobs that records name and {report.kept_young} younger "
        f"than {grace}"
        + (f"; {report.kept_reused} reused while collecting" if report.kept_reused else "")
        + (f"; put back {report.recovered} set aside earlier" if report.recovered else "")
        + ".\n"
    )
