"""Pages of datasets (versions, schema and profile with a histogram per column, diffs), models
(versions, aliases, signature, lineage; promote and roll back for admins) and the audit trail."""

from __future__ import annotations

from html import escape
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from loopml.domain.auth import entity_scope
from loopml.domain.refs import check_name
from loopml.errors import Forbidden, LoopmlError
from loopml.monitoring.charts import bar_chart
from loopml.server.ui.graph import lineage_graph
from loopml.server.ui.views import BASE, Views, back_to
from loopml.services.lineage import LineageNode

AUDIT_PAGE = 200


def add_catalog_pages(router: APIRouter, views: Views) -> None:
    _data_pages(router, views)
    _model_pages(router, views)
    _audit_page(router, views)


def _data_pages(router: APIRouter, views: Views) -> None:
    ws = views.ws

    @router.get("/data", response_class=HTMLResponse)
    def datasets_page(request: Request) -> Response:
        p = views.page(request)
        return views.render(
            p, "datasets.html", "Datasets", "data", datasets=ws.data.datasets(p.project)
        )

    @router.get("/data/{name}", response_class=HTMLResponse)
    def dataset_page(request: Request, name: str) -> Response:
        p = views.page(request)
        versions = sorted(ws.data.versions(name, p.project), key=lambda v: -v.version)
        return views.render(
            p, "dataset.html", f"Dataset {name}", "data", name=name, versions=versions
        )

    @router.get("/data/{name}/diff", response_class=HTMLResponse)
    def dataset_diff_page(request: Request, name: str, old: int, new: int) -> Response:
        p = views.page(request)
        diff = ws.data.diff(f"{name}@{old}", f"{name}@{new}", p.project)
        files = [
            *(("added", f) for f in diff.files.added),
            *(("removed", f) for f in diff.files.removed),
            *(("changed", f) for f in diff.files.changed),
        ]
        changes = [*diff.schema_changes, *diff.profile_changes]
        return views.render(
            p, "dataset_diff.html", f"{name} {old} → {new}", "data",
            name=name, old=old, new=new, files=files, changes=changes,
        )  # fmt: skip

    @router.get("/data/{name}/{version}", response_class=HTMLResponse)
    def dataset_version_page(request: Request, name: str, version: int) -> Response:
        p = views.page(request)
        found = ws.data.resolve(f"{check_name(name, 'dataset')}@{version}", p.project)
        profile = ws.data.profile(found) or {}
        columns = [_column(c) for c in profile.get("columns", [])]
        return views.render(
            p, "dataset_version.html", f"Dataset {found.ref}", "data",
            version=found, files=sorted(ws.data.manifest(found).files),
            rows=profile.get("rows"), columns=columns,
            used_by=ws.pipeline_records.runs_using_dataset(p.project, found.name, found.version),
        )  # fmt: skip


def _column(column: dict[str, Any]) -> dict[str, Any]:
    """A profiled column as the page shows it: kind, missing count, a summary, a chart."""
    name, kind = column.get("name", ""), column.get("logical_type", "")
    stats = column.get("stats") or {}
    chart, summary = None, ""
    if stats.get("histogram_counts"):
        edges = stats["histogram_edges"]
        labels = [f"{edges[i]:.3g}" for i in range(len(edges) - 1)]
        chart = bar_chart(f"{name}: histogram", labels, [("rows", stats["histogram_counts"])])
        summary = f"mean {stats['mean']:.4g}, min {stats['min']:.4g}, max {stats['max']:.4g}"
    elif stats.get("top"):
        top = list(stats["top"].items())[:20]
        labels, counts = [k for k, _ in top], [v for _, v in top]
        chart = bar_chart(f"{name}: most frequent", labels, [("rows", counts)])
        summary = f"{stats.get('distinct', len(top))} distinct"
    elif stats.get("vocabulary"):
        summary = f"{stats.get('distinct_tokens')} distinct tokens"
    elif "true_count" in stats:
        summary = f"true {stats['true_count']}, false {stats['false_count']}"
    return {
        "name": name,
        "kind": kind,
        "missing": column.get("missing", 0),
        "summary": summary,
        "chart": chart,
    }


def _model_pages(router: APIRouter, views: Views) -> None:
    ws = views.ws

    @router.get("/models", response_class=HTMLResponse)
    def models_page(request: Request) -> Response:
        p = views.page(request)
        models = ws.registry.models(p.project)
        return views.render(p, "models.html", "Models", "models", models=models)

    @router.get("/models/{name}", response_class=HTMLResponse)
    def model_page(request: Request, name: str) -> Response:
        p = views.page(request)
        versions = sorted(ws.registry.versions(name, p.project), key=lambda v: -v.version)
        champion = next((v.version for v in versions if "champion" in v.aliases), None)
        return views.render(
            p, "model.html", f"Model {name}", "models", name=name, versions=versions,
            champion=champion, can_promote=p.who.may(p.project, "admin"),
        )  # fmt: skip

    @router.get("/models/{name}/{version}", response_class=HTMLResponse)
    def model_version_page(request: Request, name: str, version: int) -> Response:
        p = views.page(request)
        found = ws.registry.resolve(f"{name}/{version}", p.project)
        tree = ws.lineage.upstream_of_model(p.project, name, version)
        deployed = _deployed(views, p.project, found.name, found.version)
        served = [(d, f"{BASE}/deployments/{d}?project={p.project}") for d, _ in deployed]
        graph = lineage_graph(tree, served, lambda k, r: _href(k, r, p.project))
        return views.render(
            p, "model_version.html", f"Model {found.ref}", "models", v=found,
            inputs=found.signature.get("inputs", []), lineage=_tree(tree, p.project),
            graph=graph, deployed=deployed,
        )  # fmt: skip

    @router.post("/models/{name}/{version}/promote")
    def promote(request: Request, name: str, version: int) -> Response:
        p = views.page(request, "admin")
        before = ws.registry.acting_as(p.who.user).promote(name, version, project=p.project)
        was = {} if before is None else {"was": before}
        return back_to(f"/models/{name}", p.project, "promoted", version=version, **was)

    @router.post("/models/{name}/rollback")
    def rollback(request: Request, name: str) -> Response:
        p = views.page(request, "admin")
        current, previous = ws.registry.acting_as(p.who.user).rollback(name, project=p.project)
        return back_to(
            f"/models/{name}", p.project, "rolled-back", current=current, previous=previous
        )


def _deployed(views: Views, project: str, name: str, version: int) -> list[tuple[str, str]]:
    """(deployment, role) for each deployment serving this version now, as its model, shadow
    or canary."""
    found = []
    for d in views.ws.deployments.list(project):
        for role, ref in (("serves it", d.model_ref), ("shadows with it", d.shadow_ref),
                          ("canaries it", d.canary_ref)):  # fmt: skip
            if ref is None:
                continue
            try:
                resolved = views.ws.registry.resolve(ref, project)
            except LoopmlError:
                continue
            if (resolved.name, resolved.version) == (name, version):
                found.append((d.name, role))
    return found


def _tree(node: LineageNode, project: str) -> str:
    """A lineage tree as nested lists, each node linked to its page."""
    href = _href(node.kind, node.ref, project)
    label = escape(node.label)
    item = f'<a href="{href}">{label}</a>' if href else label
    children = "".join(_tree(child, project) for child in node.children)
    inner = f"<ul>{children}</ul>" if children else ""
    kind = f'<span class="kind">{escape(node.kind)}</span>'
    return f'<ul class="tree"><li>{kind} {item}{inner}</li></ul>'


def _href(kind: str, ref: str, project: str) -> str | None:
    """The page of a lineage node."""
    if kind in ("run", "step", "pipeline") and len(ref) == 32:
        return f"{BASE}/runs/{ref}"
    if kind == "dataset" and "@" in ref:
        name, version = ref.split("@", 1)
        return f"{BASE}/data/{name}/{version}?project={project}"
    if kind == "model" and "/" in ref:
        name, version = ref.split("/", 1)
        return f"{BASE}/models/{name}/{version}?project={project}"
    return None


def _audit_page(router: APIRouter, views: Views) -> None:
    ws = views.ws

    @router.get("/audit", response_class=HTMLResponse)
    def audit_page(request: Request, entity: str = "", action: str = "") -> Response:
        p = views.page(request)
        everywhere = p.who.role == "admin"
        events = []
        if entity:  # a project's things: its viewers; users, tokens, grants: admins
            project, role = entity_scope(entity)
            if project is None and not everywhere:
                raise Forbidden(
                    f"The events of {entity!r} are an admin's to read.", "Ask an admin."
                )
            if project is not None:
                views.page(request, role, project)
            events = ws.audit.log(entity=entity, action=action or None, limit=AUDIT_PAGE)
        elif everywhere:  # the whole trail: admins everywhere
            events = ws.audit.log(action=action or None, limit=AUDIT_PAGE)
        verdict = ws.audit.verify() if everywhere else None
        text = "Verifying the whole chain is for admins everywhere (`loopml audit verify`)."
        if verdict is not None:
            text = (
                f"The chain of {verdict.checked} events verifies: nothing was changed or removed."
                if verdict.ok
                else f"The chain is broken at event {verdict.first_bad_seq}: {verdict.reason}."
            )
        return views.render(
            p, "audit.html", "Audit trail", "audit", events=events, verdict=verdict,
            verdict_text=text, entity=entity, action=action,
        )  # fmt: skip
