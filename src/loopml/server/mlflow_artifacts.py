"""MLflow's proxied artifact routes (`/api/2.0/mlflow-artifacts/artifacts/...`), through which
MLflow clients upload, list and download the files of a run whose artifact URI is
`mlflow-artifacts:/EXPERIMENT/RUN_ID/artifacts`.

A file uploaded lands in loopml's blob store, content-addressed (the same bytes twice are kept
once), and becomes an artifact of the run at its relative path, as `run.log_artifact` makes one:
`loopml runs show` and the web UI list it. Uploading needs editor on the run's project, reading
viewer; a run the caller may not read, or a path that climbs out of the run's folder, is
refused before anything is written.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from loopml.domain.manifest import safe_relative_path
from loopml.domain.mlflow_records import (
    LOGGED_MODEL_FILES,
    experiment_id,
    model_files,
    run_of_model,
)
from loopml.domain.records import RunArtifact, RunId
from loopml.errors import IntegrityError, NotFound
from loopml.server.context import Context
from loopml.server.mlflow_bodies import checked_run_id
from loopml.server.routes import CHUNK, receive_body
from loopml.services.auth import Principal

log = logging.getLogger("loopml.server")


@dataclass(frozen=True)
class _Place:
    """Where an artifact path points: a run, and a path inside its artifacts ("" for the root)."""

    run_id: RunId
    path: str


def _place(c: Context, who: Principal, given: str, role: str) -> _Place:
    """The run and relative path `given` names, once `who` holds `role` on the run's project:
    `EXPERIMENT/RUN_ID/artifacts[/PATH]` (a run's files) or
    `EXPERIMENT/models/MODEL_ID/artifacts[/PATH]` (a logged model's, in its run). NotFound for
    anything else, and for a run the caller may not read."""
    parts = given.strip("/").split("/")
    if len(parts) >= 4 and parts[1:4:2] == ["models", "artifacts"]:
        run_id, root, inner = run_of_model(parts[2]), model_files(parts[2]), parts[4:]
    elif len(parts) >= 3 and parts[2] == "artifacts":
        run_id, root, inner = parts[1], "", parts[3:]
    else:
        raise NotFound(
            f"No artifact folder is at {given[:200]!r}.",
            "Artifact paths are EXPERIMENT_ID/RUN_ID/artifacts/PATH (the run's artifact_uri).",
        )
    project = c.run_in(who, checked_run_id(run_id), role)
    if experiment_id(project) != parts[0]:
        raise NotFound(f"Run {run_id} is not in experiment {parts[0][:200]!r}.",
                       "Use the run's artifact_uri.")  # fmt: skip
    path = safe_relative_path("/".join(inner)) if any(inner) else ""
    return _Place(RunId(run_id), "/".join(p for p in (root, path) if p))


def _children(artifacts: list[RunArtifact], folder: str) -> list[dict[str, Any]]:
    """What MLflow lists in `folder` of a run's artifacts: its files and the folders in it,
    by name, in order."""
    prefix = f"{folder}/" if folder else ""
    files: dict[str, dict[str, Any]] = {}
    for artifact in artifacts:
        if not artifact.path.startswith(prefix):
            continue
        name, _, deeper = artifact.path[len(prefix) :].partition("/")
        if deeper:
            files.setdefault(name, {"path": name, "is_dir": True})
        else:
            files[name] = {"path": name, "is_dir": False, "file_size": artifact.size}
    return sorted(files.values(), key=lambda f: str(f["path"]))


def mlflow_artifacts_router(c: Context, max_upload_bytes: int) -> APIRouter:
    router = APIRouter()
    Who = c.who
    runs, blobs = c.stores.runs, c.ws.blobs

    @router.put("/artifacts/{artifact_path:path}")
    async def upload(artifact_path: str, request: Request, who: Principal = Who) -> dict[str, Any]:
        place = await run_in_threadpool(_place, c, who, artifact_path, "editor")
        if not place.path:
            raise NotFound("An upload names a file inside the run's artifacts.", "Add its path.")
        with tempfile.TemporaryDirectory(prefix="loopml-upload-") as folder:
            local = Path(folder) / "artifact"
            await receive_body(request, local, max_upload_bytes)
            ref = await run_in_threadpool(blobs.put_file, local)
        artifact = RunArtifact(place.path, ref.digest, ref.size)
        await run_in_threadpool(runs.add_inputs_and_artifacts, place.run_id, [], [artifact])
        return {}

    @router.get("/artifacts")
    def list_artifacts(path: str = "", who: Principal = Who) -> dict[str, Any]:
        place = _place(c, who, path, "viewer")
        files = _children(runs.list_artifacts(place.run_id), place.path)
        if not place.path:  # logged models are listed as models, not among the run's files
            files = [f for f in files if f["path"] != LOGGED_MODEL_FILES]
        return {"files": files}

    @router.get("/artifacts/{artifact_path:path}", response_class=StreamingResponse)
    def download(artifact_path: str, who: Principal = Who) -> StreamingResponse:
        place = _place(c, who, artifact_path, "viewer")
        found = [a for a in runs.list_artifacts(place.run_id) if a.path == place.path]
        if not found:
            raise NotFound(
                f"Run {place.run_id} has no artifact {place.path!r}.",
                "List its artifacts with MlflowClient().list_artifacts(run_id).",
            )
        opened = contextlib.ExitStack()
        reader = opened.enter_context(blobs.open(found[0].digest))

        def chunks() -> Iterator[bytes]:
            with opened:
                try:
                    while chunk := reader.read(CHUNK):
                        yield chunk
                except IntegrityError as damaged:  # the stream stops short: the client sees it cut
                    log.error("serving a damaged artifact: %s", damaged)

        return StreamingResponse(
            chunks(), media_type="application/octet-stream", background=BackgroundTask(opened.close)
        )

    return router
