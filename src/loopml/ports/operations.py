"""What runs on top of the records: deployments, monitors, alert rules and alerts with the
notifier that tells them, retrain loops, and the leases that let one process run a job."""

from __future__ import annotations

from typing import Any, Protocol

from loopml.domain.loops import Loop, LoopRun, LoopSpec, LoopState
from loopml.domain.records import (
    Alert,
    AlertRule,
    Delivery,
    Deployment,
    EventDraft,
    Monitor,
    MonitorRun,
)


class DeploymentStore(Protocol):
    def save(self, deployment: Deployment, event: EventDraft) -> tuple[Deployment, bool]:
        """Create or replace; the flag is True when created."""
        ...

    def get(self, project: str, name: str) -> Deployment: ...

    def list(self, project: str) -> list[Deployment]: ...

    def delete(self, project: str, name: str, event: EventDraft) -> None: ...


class MonitorStore(Protocol):
    def save(self, monitor: Monitor, event: EventDraft) -> tuple[Monitor, bool]:
        """Create or replace; the flag is True when created."""
        ...

    def get(self, project: str, name: str) -> Monitor: ...

    def delete(self, project: str, name: str, event: EventDraft) -> None: ...

    def add_run(self, run: MonitorRun, event: EventDraft) -> MonitorRun: ...

    def get_run(self, project: str, run_id: int) -> MonitorRun: ...

    def runs(self, project: str, monitor: str, limit: int) -> list[MonitorRun]: ...

    def list(self, project: str) -> list[Monitor]: ...


class AlertStore(Protocol):
    def add_rule(self, rule: AlertRule, event: EventDraft) -> AlertRule: ...

    def rule(self, project: str, rule_id: int) -> AlertRule: ...

    def rules(self, project: str, target: str | None = None) -> list[AlertRule]: ...

    def delete_rule(self, project: str, rule_id: int, event: EventDraft) -> None: ...

    def open_alert(self, project: str, rule_id: int) -> Alert | None: ...

    def last_alert(self, project: str, rule_id: int) -> Alert | None: ...

    def save_alert(self, alert: Alert, event: EventDraft) -> Alert: ...

    def alert(self, project: str, alert_id: int) -> Alert: ...

    def alerts(self, project: str, state: str | None, limit: int) -> list[Alert]: ...


class Notifier(Protocol):
    """Sends one notice on one channel (`log:`, `slack:URL`, `webhook:URL`, `email:ADDRESS`),
    retrying; never raises: what happened is in the returned delivery."""

    def check(self, channel: str) -> str:
        """`channel` checked by its kind and normalised; InvalidInput naming the fix."""
        ...

    def deliver(
        self, channel: str, event: str, subject: str, payload: dict[str, Any]
    ) -> Delivery: ...


class LoopStore(Protocol):
    """Retrain policies and their runs. Who runs a loop at a time is a lease (`Leases`, under
    `loop_lease(project, name)`), not the loop's record."""

    def create(self, spec: LoopSpec, event: EventDraft) -> Loop: ...

    def get(self, project: str, name: str) -> Loop: ...

    def delete(self, project: str, name: str, event: EventDraft) -> None: ...

    def save_state(self, project: str, name: str, state: LoopState) -> None: ...

    def save_run(self, run: LoopRun, event: EventDraft) -> LoopRun: ...

    def run(self, project: str, run_id: int) -> LoopRun: ...

    def runs(self, project: str, loop: str, limit: int) -> list[LoopRun]: ...

    def list(self, project: str) -> list[Loop]: ...


class Leases(Protocol):
    """Named leases: of several processes that want to run the same job (a loop's retraining,
    the team server's schedule, the blob collector), one holds it at a time; a holder that dies
    frees it when its lease runs out. Taking a lease again as its holder extends it, so a
    retried call is harmless."""

    def acquire(self, name: str, owner: str, ttl_s: float) -> bool:
        """Take or extend lease `name` for `ttl_s` seconds; False while another holds it."""
        ...

    def renew(self, name: str, owner: str, ttl_s: float) -> bool:
        """Extend `owner`'s lease for `ttl_s` seconds from now; False when it is not theirs."""
        ...

    def holder(self, name: str) -> tuple[str | None, int | None]:
        """(owner, until_us) of the lease while someone holds it; (None, None) when free."""
        ...

    def release(self, name: str, owner: str) -> None:
        """Free the lease if `owner` holds it; nothing otherwise."""
        ...
