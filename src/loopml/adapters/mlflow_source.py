"""An MLflow store read through MLflow's own client (the `mlflow` or `mlflow-skinny` package):
a tracking server (`http://...`), an `mlruns` folder, or a database (`sqlite:///mlflow.db`,
`postgresql://...`). MLflow resolves each run's artifact URI; a run of a database whose
artifacts were served by a tracking server (`mlflow-artifacts:/...`) is read from
`artifacts_root`, the folder that server kept them in (its `--artifacts-destination`).

Every failure of the source is a loopml error naming the source and the fix: an unreachable
server is Unavailable, a missing experiment, a corrupt store or a missing artifact InvalidInput.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from loopml.domain.records import MetricPoint
from loopml.errors import InvalidInput, LoopmlError, Unavailable
from loopml.ports.mlflow_source import (
    SourceExperiment,
    SourceLoggedModel,
    SourceRun,
    SourceVersion,
)

T = TypeVar("T")
PAGE = 1000
SERVED = "mlflow-artifacts:"


class MlflowClientSource:
    """`MlflowSource` over `mlflow.MlflowClient`."""

    def __init__(self, tracking_uri: str, artifacts_root: Path | None = None) -> None:
        try:
            from mlflow import MlflowClient
        except ImportError:
            raise InvalidInput(
                "Importing from MLflow needs MLflow's client, which is not installed.",
                "Install it: pip install 'loopml[mlflow]'.",
            ) from None
        self.uri = tracking_uri = _store_uri(tracking_uri)
        self.artifacts_root = artifacts_root
        if tracking_uri.startswith(("http://", "https://")):
            _reachable(tracking_uri)
        if tracking_uri.startswith("file:"):
            # MLflow 3 keeps its folder store for reading only behind this switch; we only read
            os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
        self.client: Any = self._call(
            "its store",
            partial(MlflowClient, tracking_uri=tracking_uri, registry_uri=tracking_uri),
        )

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        """`fn()`, its failures as loopml errors that name the source."""
        try:
            return fn()
        except LoopmlError:
            raise
        except Exception as error:  # the client raises many kinds: name it, never a traceback
            raise _translated(self.uri, what, error) from None

    def _pages(self, what: str, search: Callable[[str | None], Any]) -> Iterator[Any]:
        token: str | None = None
        while True:
            page = self._call(what, partial(search, token))
            yield from page
            token = page.token
            if not token:
                return

    def experiments(self, names: Sequence[str]) -> list[SourceExperiment]:
        if names:
            by_name = self.client.get_experiment_by_name
            found = [self._call(f"experiment {n!r}", partial(by_name, n)) for n in names]
            missing = [n for n, e in zip(names, found, strict=True) if e is None]
            if missing:
                raise InvalidInput(
                    f"MLflow at {self.uri} has no experiment {missing[0]!r}.",
                    "List them with MlflowClient().search_experiments(), or leave out "
                    "--experiment to import every one.",
                )
            return [SourceExperiment(e.experiment_id, e.name) for e in found]
        everything = self._pages(
            "the experiments",
            lambda token: self.client.search_experiments(max_results=PAGE, page_token=token),
        )
        return [SourceExperiment(e.experiment_id, e.name) for e in everything]

    def runs(self, experiment_id: str) -> list[SourceRun]:
        found = self._pages(
            f"the runs of experiment {experiment_id}",
            lambda token: self.client.search_runs(
                [experiment_id], max_results=PAGE, page_token=token
            ),
        )
        return [_run(r) for r in found]

    def metric_history(self, run_id: str, key: str) -> list[MetricPoint]:
        history = self._call(
            f"metric {key!r} of run {run_id}", lambda: self.client.get_metric_history(run_id, key)
        )
        return [MetricPoint(m.key, float(m.value), int(m.step), int(m.timestamp)) for m in history]

    def download_run_files(self, run_id: str, into: Path) -> None:
        run = self._call(f"run {run_id}", lambda: self.client.get_run(run_id))
        self._download(run.info.artifact_uri, into, f"the artifacts of run {run_id}")

    def logged_models(self, experiment_id: str) -> list[SourceLoggedModel]:
        if not hasattr(self.client, "search_logged_models"):
            return []  # an MLflow 2 client: models are among the runs' artifacts
        found = self._pages(
            f"the logged models of experiment {experiment_id}",
            lambda token: self.client.search_logged_models(
                experiment_ids=[experiment_id], max_results=100, page_token=token
            ),
        )
        return [
            SourceLoggedModel(m.model_id, m.source_run_id, m.name, str(m.status), dict(m.tags))
            for m in found
            if m.source_run_id
        ]

    def download_model_files(self, model_id: str, into: Path) -> None:
        model = self._call(
            f"logged model {model_id}", lambda: self.client.get_logged_model(model_id)
        )
        self._download(model.artifact_location, into, f"the files of logged model {model_id}")

    def versions(self) -> list[SourceVersion]:
        models = list(
            self._pages(
                "the registered models",
                lambda token: self.client.search_registered_models(
                    max_results=PAGE, page_token=token
                ),
            )
        )
        versions = []
        for model in models:
            aliases = dict(getattr(model, "aliases", {}) or {})
            found = self._call(
                f"the versions of {model.name!r}",
                partial(self.client.search_model_versions, f"name = '{model.name}'"),
            )
            for v in sorted(found, key=lambda v: int(v.version)):
                named = tuple(sorted(a for a, n in aliases.items() if str(n) == str(v.version)))
                versions.append(
                    SourceVersion(
                        v.name, int(v.version), v.source or "", v.run_id or None,
                        _model_of(v), named,
                        v.current_stage or "None", v.description or "",
                    )
                )  # fmt: skip
        return versions

    def _download(self, uri: str, into: Path, what: str) -> None:
        into.mkdir(parents=True, exist_ok=True)
        if uri.startswith(SERVED) and self.artifacts_root is not None:
            folder = self.artifacts_root / uri[len(SERVED) :].lstrip("/")
            if folder.is_dir():
                shutil.copytree(folder, into, dirs_exist_ok=True)
            return
        if uri.startswith(SERVED) and not self.uri.startswith("http"):
            raise InvalidInput(
                f"The runs of {self.uri} keep their files at {uri}, on the tracking server "
                "that wrote them.",
                "Give --artifacts-root, the folder that server kept them in (its "
                "--artifacts-destination), or import from the server's URL.",
            )

        def fetch() -> None:
            repo = self._repository(uri)
            if repo.list_artifacts():  # MLflow fails to download an empty folder
                repo.download_artifacts("", str(into))

        self._call(what, fetch)

    def _repository(self, uri: str) -> Any:
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        try:
            return get_artifact_repository(uri, tracking_uri=self.uri)
        except TypeError:  # an MLflow whose registry takes the URI alone
            return get_artifact_repository(uri)


def _store_uri(given: str) -> str:
    """The tracking URI of `given`: a URI as it is, a folder (an `mlruns`) as a file: URI;
    InvalidInput for a path that is not a folder."""
    if given.startswith("sqlite:///") and not Path(given.removeprefix("sqlite:///")).is_file():
        raise InvalidInput(
            f"There is no MLflow database at {given}.",
            "Check the path: sqlite:///relative/path.db, or sqlite:////absolute/path.db.",
        )
    if "://" in given or given.startswith(("sqlite:", "file:")):
        return given
    folder = Path(given).expanduser()
    if not folder.is_dir():
        raise InvalidInput(
            f"{given!r} is neither a URI nor a folder.",
            "Give a tracking server (http://host:5000), an mlruns folder, or a database "
            "(sqlite:///mlflow.db, postgresql://user@host/db).",
        )
    return folder.resolve().as_uri()


def _reachable(url: str) -> None:
    """Unavailable unless a server answers at `url` (MLflow's client would retry for minutes)."""
    import httpx

    try:
        httpx.get(url, timeout=10)
    except httpx.HTTPError as error:
        raise Unavailable(
            f"Nothing answered at {url}: {error}.",
            "Check the tracking server's URL and that it is up; nothing was imported.",
        ) from None


def _model_of(version: Any) -> str | None:
    """The logged model a version was registered from (MLflow 3), if any."""
    source = version.source or ""
    named = source.removeprefix("models:/") if source.startswith("models:/m-") else None
    return getattr(version, "model_id", None) or named


def _run(found: Any) -> SourceRun:
    info, data = found.info, found.data
    return SourceRun(
        info.run_id, info.experiment_id, info.run_name or data.tags.get("mlflow.runName", ""),
        info.status, int(info.start_time or 0), int(info.end_time) if info.end_time else None,
        dict(data.params), dict(data.tags), tuple(sorted(data.metrics)),
    )  # fmt: skip


def _translated(uri: str, what: str, error: Exception) -> LoopmlError:
    text = str(error).splitlines()[0][:300] if str(error) else type(error).__name__
    unreachable = ("Connection", "Max retries", "timed out", "Name or service", "refused")
    if any(word in text for word in unreachable) or isinstance(error, ConnectionError):
        return Unavailable(
            f"MLflow at {uri} did not answer while reading {what}: {text}",
            "Check the tracking URI and that the server is up; nothing was imported from it.",
        )
    return InvalidInput(
        f"MLflow at {uri} failed to give {what}: {text}",
        "Check that the URI names an MLflow store (a server, an mlruns folder or its database) "
        "and that it is whole; rerun the import once it is (what was imported stays).",
    )
