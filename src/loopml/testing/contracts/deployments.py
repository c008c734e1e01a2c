"""The DeploymentStore contract: a deployment per (project, name), created or replaced whole
(it keeps the time it was first made), listed by name, deleted; each change audited with what
it was before."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from loopml.domain.records import Deployment
from loopml.errors import NotFound
from loopml.testing.contracts.stores import MetadataStores, draft, events_since, last_seq

__all__ = [
    "test_a_deployment_is_created_then_replaced_whole",
    "test_deleting_removes_it_and_records_what_it_served",
    "test_deployments_are_listed_by_name_per_project",
    "test_saving_is_audited_with_the_settings_before_and_after",
    "test_unknown_deployments_are_named_in_the_error",
]

_LONG_AGO = datetime(2001, 1, 1, tzinfo=UTC)


def _deployment(
    name: str = "web",
    project: str = "default",
    *,
    model_ref: str = "churn@champion",
    shadow_ref: str | None = None,
    canary_ref: str | None = None,
    canary_percent: float = 0.0,
) -> Deployment:
    return Deployment(
        project, name, model_ref, shadow_ref, canary_ref, canary_percent, _LONG_AGO, _LONG_AGO
    )


def _us(when: datetime) -> int:
    return (when - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def _save(stores: MetadataStores, deployment: Deployment) -> tuple[Deployment, bool]:
    entity = f"deployment:{deployment.project}/{deployment.name}"
    return stores.deployments.save(deployment, draft("deployment.saved", entity))


def test_a_deployment_is_created_then_replaced_whole(stores: MetadataStores) -> None:
    made, created = _save(stores, _deployment(shadow_ref="churn@challenger"))
    assert created is True
    assert (made.project, made.name, made.model_ref, made.shadow_ref) == (
        "default",
        "web",
        "churn@champion",
        "churn@challenger",
    )
    assert made.created_at == made.updated_at > _LONG_AGO  # the store's clock, not the caller's
    assert made.created_at.utcoffset() == timedelta(0)
    assert stores.deployments.get("default", "web") == made
    time.sleep(0.002)
    canary = _deployment(model_ref="churn/3", canary_ref="churn/4", canary_percent=12.5)
    replaced, created = _save(stores, canary)
    assert created is False
    assert (replaced.model_ref, replaced.shadow_ref) == ("churn/3", None)
    assert (replaced.canary_ref, replaced.canary_percent) == ("churn/4", 12.5)
    assert replaced.created_at == made.created_at
    assert replaced.updated_at > made.updated_at
    assert stores.deployments.get("default", "web") == replaced


def test_unknown_deployments_are_named_in_the_error(stores: MetadataStores) -> None:
    with pytest.raises(NotFound, match="'ghost'"):
        stores.deployments.get("default", "ghost")
    with pytest.raises(NotFound, match="'ghost'"):
        stores.deployments.delete("default", "ghost", draft("d", "deployment:default/ghost"))
    _save(stores, _deployment())
    with pytest.raises(NotFound, match="'web'"):
        stores.deployments.get("fraud", "web")  # a name is found in its own project only


def test_deployments_are_listed_by_name_per_project(stores: MetadataStores) -> None:
    assert stores.deployments.list("default") == []
    for name in ("zeta", "alpha", "mid"):
        _save(stores, _deployment(name))
    _save(stores, _deployment("beta", project="fraud"))
    assert [d.name for d in stores.deployments.list("default")] == ["alpha", "mid", "zeta"]
    assert [d.name for d in stores.deployments.list("fraud")] == ["beta"]
    assert stores.deployments.list("default")[0] == stores.deployments.get("default", "alpha")


def test_deleting_removes_it_and_records_what_it_served(stores: MetadataStores) -> None:
    made, _ = _save(stores, _deployment())
    _save(stores, _deployment("api"))
    start = last_seq(stores)
    stores.deployments.delete(
        "default", "web", draft("deployment.deleted", "deployment:default/web")
    )
    with pytest.raises(NotFound):
        stores.deployments.get("default", "web")
    assert [d.name for d in stores.deployments.list("default")] == ["api"]
    (event,) = events_since(stores, start)
    assert (event.action, event.entity) == ("deployment.deleted", "deployment:default/web")
    assert event.before == {"model_ref": "churn@champion", "created": _us(made.created_at)}
    assert event.after is None
    again, created = _save(stores, _deployment())  # a name deleted can be used again
    assert created is True
    assert again.created_at > made.created_at


def test_saving_is_audited_with_the_settings_before_and_after(stores: MetadataStores) -> None:
    start = last_seq(stores)
    _save(stores, _deployment())
    _save(stores, _deployment(model_ref="churn/2", canary_ref="churn/3", canary_percent=5.0))
    created, replaced = events_since(stores, start)
    first = {"model_ref": "churn@champion", "shadow_ref": None, "canary_ref": None}
    assert (created.action, created.entity) == ("deployment.saved", "deployment:default/web")
    assert (created.before, created.after) == (None, {**first, "canary_percent": 0.0})
    assert replaced.before == {**first, "canary_percent": 0.0}
    assert replaced.after == {
        "model_ref": "churn/2",
        "shadow_ref": None,
        "canary_ref": "churn/3",
        "canary_percent": 5.0,
    }
