"""The `DeploymentStore` port in memory."""

from __future__ import annotations

import dataclasses

from loopml.adapters.memory.database import MemoryDatabase, datetime_to_us, us_to_datetime
from loopml.domain.records import Deployment, EventDraft
from loopml.errors import NotFound

_SETTINGS = ("model_ref", "shadow_ref", "canary_ref", "canary_percent")


def _missing(project: str, name: str) -> NotFound:
    return NotFound(
        f"Deployment {name!r} does not exist in project {project!r}.",
        "List deployments with `loopml deploy list`.",
    )


class MemoryDeploymentStore:
    def __init__(self, db: MemoryDatabase) -> None:
        self._db = db

    def save(self, deployment: Deployment, event: EventDraft) -> tuple[Deployment, bool]:
        """Create or replace; created keeps its first time, updated is now."""
        key = (deployment.project, deployment.name)
        values = {name: getattr(deployment, name) for name in _SETTINGS}
        with self._db.lock:
            now = self._db.clock()
            self._db.ensure_project(deployment.project, now)
            before = self._db.tables.deployments.get(key)
            created_us = now if before is None else datetime_to_us(before.created_at)
            saved = dataclasses.replace(
                deployment,
                canary_percent=float(deployment.canary_percent),
                created_at=us_to_datetime(created_us),
                updated_at=us_to_datetime(now),
            )
            self._db.tables.deployments[key] = saved
            old = None if before is None else {name: getattr(before, name) for name in _SETTINGS}
            draft = EventDraft(event.action, event.entity, event.actor, old, values)
            self._db.append_event(draft, now)
        return saved, before is None

    def get(self, project: str, name: str) -> Deployment:
        with self._db.lock:
            found = self._db.tables.deployments.get((project, name))
        if found is None:
            raise _missing(project, name)
        return found

    def list(self, project: str) -> list[Deployment]:
        with self._db.lock:
            found = [d for d in self._db.tables.deployments.values() if d.project == project]
        return sorted(found, key=lambda d: d.name)

    def delete(self, project: str, name: str, event: EventDraft) -> None:
        with self._db.lock:
            found = self.get(project, name)
            del self._db.tables.deployments[project, name]
            before = {"model_ref": found.model_ref, "created": datetime_to_us(found.created_at)}
            draft = EventDraft(event.action, event.entity, event.actor, before, None)
            self._db.append_event(draft, self._db.clock())
