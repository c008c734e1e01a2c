"""The `DeploymentStore` port on SQL."""

from __future__ import annotations

from sqlalchemy import select

from loopml.adapters.sql import tables as t
from loopml.adapters.sql.engine import Database
from loopml.adapters.sql.events import Clock, append_event, ensure_project, system_clock_us
from loopml.adapters.sql.rows import missing_deployment, to_deployment
from loopml.domain.epoch_us import datetime_to_us
from loopml.domain.records import Deployment, EventDraft


class SqlDeploymentStore:
    def __init__(self, db: Database, clock: Clock = system_clock_us) -> None:
        self._db = db
        self._clock = clock

    def save(self, deployment: Deployment, event: EventDraft) -> tuple[Deployment, bool]:
        table = t.deployments
        values = {
            "model_ref": deployment.model_ref,
            "shadow_ref": deployment.shadow_ref,
            "canary_ref": deployment.canary_ref,
            "canary_percent": deployment.canary_percent,
        }
        with self._db.write() as conn:
            now = self._clock()
            ensure_project(conn, deployment.project, now)
            where = (table.c.project == deployment.project) & (table.c.name == deployment.name)
            before = conn.execute(select(table).where(where)).first()
            if before is None:
                conn.execute(
                    table.insert().values(
                        project=deployment.project,
                        name=deployment.name,
                        created_us=now,
                        updated_us=now,
                        **values,
                    )
                )
            else:
                conn.execute(table.update().where(where).values(updated_us=now, **values))
            old = None if before is None else {k: getattr(before, k) for k in values}
            append_event(
                self._db,
                conn,
                EventDraft(event.action, event.entity, event.actor, old, values),
                now,
            )
        return self.get(deployment.project, deployment.name), before is None

    def get(self, project: str, name: str) -> Deployment:
        with self._db.read() as conn:
            row = conn.execute(
                select(t.deployments).where(
                    t.deployments.c.project == project, t.deployments.c.name == name
                )
            ).first()
        if row is None:
            raise missing_deployment(project, name)
        return to_deployment(row)

    def list(self, project: str) -> list[Deployment]:
        with self._db.read() as conn:
            rows = conn.execute(
                select(t.deployments)
                .where(t.deployments.c.project == project)
                .order_by(t.deployments.c.name)
            ).all()
        return [to_deployment(r) for r in rows]

    def delete(self, project: str, name: str, event: EventDraft) -> None:
        found = self.get(project, name)
        with self._db.write() as conn:
            conn.execute(
                t.deployments.delete().where(
                    t.deployments.c.project == project, t.deployments.c.name == name
                )
            )
            append_event(
                self._db,
                conn,
                EventDraft(
                    event.action,
                    event.entity,
                    event.actor,
                    {"model_ref": found.model_ref, "created": datetime_to_us(found.created_at)},
                    None,
                ),
                self._clock(),
            )
