"""`loopml alert ...`: rules over monitor reports, and the alerts they raise."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import typer

from loopml.cli.context import (
    JSON_OPTION,
    PROJECT_OPTION,
    open_workspace,
    print_fields,
    print_json,
    print_table,
    project_of,
    when,
)

if TYPE_CHECKING:
    from loopml.domain.records import AlertRule

app = typer.Typer(
    help="Alerts: rules over monitor reports that notify people when they start and stop holding.",
    no_args_is_help=True,
)
rule_app = typer.Typer(help="Alert rules.", no_args_is_help=True)
app.add_typer(rule_app, name="rule")


@rule_app.command("add")
def rule_add(
    target: str = typer.Argument(..., help="The monitor whose reports the rule reads."),
    when_: str = typer.Option(
        ...,
        "--when",
        help='Condition, e.g. "drift_share > 0.3 for 3 windows", "weighted_drift > 0.3", '
        '"accuracy < 0.8", "rows < 100 for 30m", "feature.tenure.wasserstein >= 0.2".',
    ),
    notify: list[str] = typer.Option(
        [],
        "--notify",
        help="Repeatable: slack:URL, webhook:URL (JSON, HMAC-signed with LOOPML_WEBHOOK_SECRET), "
        "email:ADDRESS (via LOOPML_SMTP_URL), log:. Default log:.",
    ),
    cooldown: str = typer.Option(
        "1h", "--cooldown", help="Firing again this soon after resolving notifies no one."
    ),
    resolve_after: int = typer.Option(
        1,
        "--resolve-after",
        metavar="N",
        help="Resolve only once the condition has been false on N monitor runs in a row "
        "(default 1: the first run it is false).",
    ),
    resolve_margin: float = typer.Option(
        0.0,
        "--resolve-margin",
        metavar="M",
        help='Count the condition as false only past its threshold by M: "accuracy < 0.8" '
        "with 0.05 resolves at accuracy >= 0.85 (default 0).",
    ),
    project: str = PROJECT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Add a rule; it is checked after every run of its monitor."""
    from loopml.domain.durations import parse_duration

    ws = open_workspace()
    seconds = 0 if cooldown.strip() in ("0", "0s") else parse_duration(cooldown)
    rule = ws.alerts.add_rule(
        target,
        when=when_,
        notify=notify,
        project=project_of(ws, project),
        cooldown_s=seconds,
        resolve_after=resolve_after,
        resolve_margin=resolve_margin,
    )
    if as_json:
        print_json(rule)
        return
    sys.stdout.write(
        f"rule {rule.id} on {rule.target}: {rule.condition} -> {', '.join(rule.channels)}"
        f"{_resolves(rule)}\n"
    )


def _resolves(rule: AlertRule) -> str:
    """`, resolves after 3 clear runs, by a margin of 0.05`; empty for the default."""
    after, margin = rule.resolve_after, rule.resolve_margin
    parts = [f"after {after} clear runs"] if after != 1 else []
    parts += [f"by a margin of {margin:g}"] if margin else []
    return f", resolves {', '.join(parts)}" if parts else ""


@rule_app.command("list")
def rule_list(
    target: str = typer.Argument(None, help="Only the rules of this monitor."),
    project: str = PROJECT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """List alert rules."""
    ws = open_workspace()
    rules = ws.alerts.rules(project_of(ws, project), target)
    if as_json:
        print_json(rules)
        return
    print_table(
        None,
        ["rule", "monitor", "condition", "notify", "cooldown s", "resolves"],
        [
            (
                r.id,
                r.target,
                r.condition,
                ", ".join(r.channels),
                r.cooldown_s,
                _resolves(r).removeprefix(", resolves ") or "when false",
            )
            for r in rules
        ],
    )


@rule_app.command("delete")
def rule_delete(
    rule_id: int = typer.Argument(..., help="Rule id."), project: str = PROJECT_OPTION
) -> None:
    """Delete a rule (its alerts stay, for the record)."""
    ws = open_workspace()
    ws.alerts.delete_rule(rule_id, project_of(ws, project))
    sys.stdout.write(f"deleted rule {rule_id}\n")


@app.command("list")
def list_(
    state: str = typer.Option(None, "--state", help="firing, acknowledged or resolved."),
    limit: int = typer.Option(100, "--limit", "-n", min=1),
    project: str = PROJECT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """List alerts, newest first."""
    ws = open_workspace()
    found = ws.alerts.alerts(project_of(ws, project), state, limit)
    if as_json:
        print_json(found)
        return
    print_table(
        None,
        ["alert", "state", "monitor", "condition", "value", "opened", "delivered"],
        [
            (
                a.id,
                a.state,
                a.target,
                a.condition,
                "" if a.value is None else f"{a.value:g}",
                when(a.opened_at),
                f"{sum(d.ok for d in a.deliveries)}/{len(a.deliveries)}",
            )
            for a in found
        ],
    )


@app.command("show")
def show(
    alert_id: int = typer.Argument(..., help="Alert id."),
    project: str = PROJECT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """One alert with every delivery attempt."""
    ws = open_workspace()
    alert = ws.alerts.get(alert_id, project_of(ws, project))
    if as_json:
        print_json(alert)
        return
    print_fields(
        [
            ("alert", alert.id),
            ("state", alert.state),
            ("monitor", alert.target),
            ("condition", alert.condition),
            ("opened", when(alert.opened_at)),
            ("resolved", when(alert.resolved_at) if alert.resolved_at else ""),
        ]
    )
    print_table(
        "deliveries",
        ["channel", "event", "ok", "attempts", "error"],
        [(d.channel, d.event, d.ok, d.attempts, d.error or "") for d in alert.deliveries],
    )


@app.command("ack")
def ack(
    alert_id: int = typer.Argument(..., help="Alert id."), project: str = PROJECT_OPTION
) -> None:
    """Acknowledge a firing alert: someone is on it. It still resolves by itself."""
    ws = open_workspace()
    ws.alerts.acknowledge(alert_id, project_of(ws, project))
    sys.stdout.write(f"acknowledged alert {alert_id}\n")
