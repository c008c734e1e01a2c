"""Pages of runs: the table (the CLI's filter language, sortable, paged), one run with its
curves, artifacts and environment, and 2 to 10 runs side by side."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from itertools import islice
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from starlette.background import BackgroundTask

from loopml.domain.records import MetricPoint, Run, RunId
from loopml.errors import InvalidInput, NotFound
from loopml.monitoring.charts import Series, line_chart
from loopml.server.ui.views import BASE, Page, Views

PAGE_SIZE = 50
MAX_CHARTS = 12
"""Curves drawn on a run's page (the table lists every metric)."""
MAX_COMPARED = 10


def add_run_pages(router: APIRouter, views: Views) -> None:
    _runs_table(router, views)
    _run_detail(router, views)
    _compare(router, views)


def _runs_table(router: APIRouter, views: Views) -> None:
    ws = views.ws

    @router.get("/runs", response_class=HTMLResponse)
    def runs_page(
        request: Request, filter: str = "", order: str = "", page: int = 0, steps: str = ""
    ) -> Response:
        p = views.page(request)
        error = None
        try:
            found = ws.tracking.search(
                project=p.project,
                filter=filter or None,
                order_by=order or None,
                limit=PAGE_SIZE,
                offset=max(0, page) * PAGE_SIZE,
                top_level_only=not steps,
            )
            runs, total = found.runs, found.total
        except InvalidInput as bad:
            error, runs, total = bad, [], 0
        first = max(0, page) * PAGE_SIZE

        def link(**changes: object) -> str:
            query = {
                "project": p.project, "filter": filter, "order": order, "page": page,
                "steps": steps,
            }  # fmt: skip
            query.update(changes)
            return f"{BASE}/runs?{urlencode({k: v for k, v in query.items() if v != ''})}"

        def sort_link(field: str) -> str:
            return link(order=f"-{field}" if order == field else field, page=0)

        return views.render(
            p,
            "runs.html",
            "Runs",
            "runs",
            runs=runs,
            total=total,
            first=first + 1 if runs else 0,
            last=first + len(runs),
            filter=filter,
            order=order,
            steps=steps,
            error=error,
            metric_keys=_keys((r.metrics for r in runs), 6),
            param_keys=_keys((r.params for r in runs), 4),
            sort_link=sort_link,
            prev_link=link(page=page - 1) if page > 0 else None,
            next_link=link(page=page + 1) if first + len(runs) < total else None,
        )


def _run_detail(router: APIRouter, views: Views) -> None:
    ws = views.ws

    @router.get("/runs/{run_id}", response_class=HTMLResponse)
    def run_page(request: Request, run_id: str) -> Response:
        run, p = _readable_run(views, request, run_id)
        histories = {key: ws.tracking.metric_history(run.id, key) for key in sorted(run.metrics)}
        curves = ((key, h) for key, h in histories.items() if len(h) > 1)  # one point: the table
        charts = [(k, line_chart(k, [_series(k, h)])) for k, h in islice(curves, MAX_CHARTS)]
        return views.render(
            p,
            "run.html",
            f"Run {run.name}",
            "runs",
            run=run,
            charts=charts,
            counts={key: len(h) for key, h in histories.items()},
            artifacts=ws.tracking.artifacts(run.id),
            models=_models_made(views, p, run),
        )

    @router.get("/runs/{run_id}/artifacts/{path:path}")
    def run_artifact(request: Request, run_id: str, path: str) -> Response:
        run, _ = _readable_run(views, request, run_id)
        found = {a.path: a for a in ws.tracking.artifacts(run.id)}
        if path not in found:
            raise NotFound(f"Run {run.name} has no artifact {path!r}.", "Pick one from its page.")
        opened = contextlib.ExitStack()  # a missing blob is an error page, before any byte
        reader = opened.enter_context(ws.blobs.open(found[path].digest))

        def chunks() -> Iterator[bytes]:
            with opened:
                while chunk := reader.read(1 << 20):
                    yield chunk

        name = path.rsplit("/", 1)[-1].replace('"', "")
        return StreamingResponse(
            chunks(),
            media_type="application/octet-stream",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
            background=BackgroundTask(opened.close),  # also when the answer was never read
        )


def _compare(router: APIRouter, views: Views) -> None:
    ws = views.ws

    @router.get("/compare", response_class=HTMLResponse)
    def compare_page(request: Request) -> Response:
        p = views.page(request)
        ids = list(dict.fromkeys(request.query_params.getlist("run")))
        if not 2 <= len(ids) <= MAX_COMPARED:
            raise InvalidInput(
                f"{len(ids)} runs were ticked; a comparison takes 2 to {MAX_COMPARED}.",
                "Go back and tick between 2 and 10 runs.",
            )
        runs = [_readable_run(views, request, run_id)[0] for run_id in ids]
        param_keys = sorted({k for r in runs for k in r.params})
        metric_keys = sorted({k for r in runs for k in r.metrics})
        shared = [k for k in metric_keys if all(k in r.metrics for r in runs)]
        charts = []
        for key in shared[:MAX_CHARTS]:
            histories = [(run.name, ws.tracking.metric_history(run.id, key)) for run in runs]
            series = [_series(name, history) for name, history in histories]
            charts.append((key, line_chart(key, series)))
        return views.render(
            p,
            "compare.html",
            "Compare runs",
            "runs",
            runs=runs,
            param_keys=param_keys,
            differing={k for k in param_keys if len({r.params.get(k) for r in runs}) > 1},
            metric_keys=metric_keys,
            charts=charts,
        )


def _readable_run(views: Views, request: Request, run_id: str) -> tuple[Run, Page]:
    if len(run_id) != 32 or any(c not in "0123456789abcdef" for c in run_id):
        raise InvalidInput(f"{run_id[:40]!r} is not a run id.", "A run id is 32 hex digits.")
    views.caller(request)  # no session: to the login page before saying whether the run exists
    run = views.ws.tracking.get(RunId(run_id))
    return run, views.page(request, "viewer", run.project)


def _models_made(views: Views, page: Page, run: Run) -> list[tuple[str, str, int, RunId]]:
    """Model versions the run, or a step of it, registered (those the caller may see)."""
    runs = [run.id, *views.ws.pipeline_records.children_of(run.id)]
    made = views.ws.pipeline_records.model_versions_of(runs)
    return [m for m in made if page.who.may(m[0], "viewer")]


def _series(name: str, history: list[MetricPoint]) -> Series:
    return Series(name, [q.step for q in history], [q.value for q in history])


def _keys(mappings: Iterable[Mapping[str, object]], most: int) -> list[str]:
    seen: dict[str, None] = {}
    for mapping in mappings:
        seen.update(dict.fromkeys(mapping))
    return sorted(seen)[:most]
