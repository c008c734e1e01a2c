"""`loopml alert ...`: rules over monitor reports, and the alerts they raise."""

from __future__ import annotations

import sys

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
        help='Condition, e.g. "drift_share > 0.3 for 3 windows", "rows < 100 for 30m", '
        '"feature.tenure.wasserstein >= 0.2".',
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
    project: str = PROJECT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Add a rule; it is checked after every run of its monitor."""
    from loopml.domain.durations import parse_duration

    ws = open_workspace()
    seconds = 0 if cooldown.strip() in ("0", "0s") else parse_duration(cooldown)
    rule = ws.alerts.add_rule(
        target, when=when_, notify=notify, project=project_of(ws, project), cooldown_s=seconds
    )
    if as_json:
        print_json(rule)
        return
    sys.stdout.write(
        f"rule {rule.id} on {rule.target}: {rule.condition} -> {', '.join(rule.channels)}\n"
    )


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
        ["rule", "monitor", "condition", "notify", "cooldown s"],
        [(r.id, r.target, r.condition, ", ".join(r.channels), r.cooldown_s) for r in rules],
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
