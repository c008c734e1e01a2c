"""Deployments: named endpoints bound to a model reference, with an optional shadow and canary.
Every change is an audited event; the model server reads them at start."""

from __future__ import annotations

from datetime import UTC, datetime

from loopml.domain.records import Deployment, EventDraft
from loopml.domain.refs import check_name, parse_model_ref
from loopml.errors import InvalidInput
from loopml.ports import DeploymentStore
from loopml.services.registry import RegistryService


class DeploymentService:
    def __init__(self, store: DeploymentStore, registry: RegistryService, actor: str) -> None:
        self._store = store
        self._registry = registry
        self._actor = actor

    def create(
        self,
        name: str,
        *,
        project: str,
        model: str,
        shadow: str | None = None,
        canary: str | None = None,
        canary_percent: float = 0.0,
    ) -> tuple[Deployment, bool]:
        """Create or replace a deployment; every reference must name a model version now."""
        check_name(name, "deployment")
        for ref in filter(None, (model, shadow, canary)):
            self._registry.resolve(parse_model_ref(ref), project)  # NotFound names the problem
        if not 0.0 <= canary_percent <= 100.0:
            raise InvalidInput(
                f"Canary share {canary_percent} is not a percentage.",
                "Give a number from 0 to 100.",
            )
        if canary_percent and canary is None:
            raise InvalidInput(
                "A canary share was given without a canary model.",
                "Add --canary MODEL_REF, or leave --canary-percent out.",
            )
        now = datetime.now(UTC)
        deployment = Deployment(
            project, name, model, shadow, canary, canary_percent if canary else 0.0, now, now
        )
        event = EventDraft("deployment.saved", f"deployment:{project}/{name}", self._actor)
        return self._store.save(deployment, event)

    def get(self, name: str, project: str) -> Deployment:
        return self._store.get(project, name)

    def list(self, project: str) -> list[Deployment]:
        return self._store.list(project)

    def delete(self, name: str, project: str) -> None:
        event = EventDraft("deployment.deleted", f"deployment:{project}/{name}", self._actor)
        self._store.delete(project, name, event)
