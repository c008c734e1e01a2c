"""What a logged fit records, and the background thread that writes it.

In the fitting thread, before `fit` returns, only what the caller could change right after is
taken: the params as text, the evaluation metrics, `training_score`, the training DataFrame's
digest, and the model saved by its flavor into a temporary folder (the user may fit the same
estimator again, or change the frame, a moment later). Writing all of it to the run — params,
tags and metric points in one `log_batch`, then the model's files as artifacts — is one job for
one background thread, so a fit pays no database or blob-store round trip. The run waits for
its jobs as it ends (`ActiveRun.before_end`), and a failed job is an `AutologWarning` then, in
the thread ending the run; a process that dies first loses them, as it loses a run's buffered
metric points.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import tempfile
import threading
import time
import warnings
import weakref
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from inspect import isclass, isfunction
from pathlib import Path
from typing import Any

from loopml.adapters.model_serializer import FlavorModelSerializer
from loopml.domain.hashing import canonical_json, finish, new_hasher
from loopml.domain.records import MetricPoint
from loopml.errors import Conflict, NotFound
from loopml.ports import LoadedModel
from loopml.services.folders import target_inside
from loopml.services.tracking import MAX_KEY_LENGTH, ActiveRun

MAX_PARAM_CHARS = 500
"""A param whose text is longer (a list of steps, an array) is left out, not cut."""
MAX_SCORE_ROWS = 100_000
"""`training_score` predicts on the whole training set: skipped above this many rows."""
MODEL_INFO_FILE = "loopml-model.json"
"""Beside a logged model's files: its flavor and the flavor's `info`, what loading needs."""
DIGEST_TAG = "loopml.autolog.input_digest"
SHAPE_TAG = "loopml.autolog.input_shape"


class AutologWarning(UserWarning):
    """Autologging could not record something about a fit; the fit itself went through."""


@contextmanager
def warn_on_failure(what: str) -> Iterator[None]:
    """Turn any error of the block into an AutologWarning: logging never breaks a fit."""
    try:
        yield
    except AutologWarning:  # one raised by an inner block, warnings being errors here
        raise
    except Exception as error:
        warnings.warn(_failure(what, error), AutologWarning, stacklevel=4)


def _failure(what: str, error: Exception) -> str:
    return (
        f"loopml autologging could not {what}: {type(error).__name__}: {error}. The fit itself "
        "went through; log by hand what is missing."
    )


def record_estimator(run: ActiveRun, estimator: Any, x: Any, y: Any) -> None:
    """A scikit-learn-style estimator's fit: `get_params()`, its boosting rounds' evaluation
    metrics if it has any (xgboost's and lightgbm's `evals_result_`), else `training_score`."""
    prefix, model_path = _names_of_next_fit(run)
    points = eval_points(getattr(estimator, "evals_result_", None) or {}, prefix)
    scored = y is not None and callable(getattr(estimator, "score", None))
    if not points and scored and _rows(x) <= MAX_SCORE_ROWS:
        with warn_on_failure("compute the training score"):
            score = float(estimator.score(x, y))
            points.append(_point(f"{prefix}training_score", score, 0))
    params = flat_params(estimator.get_params(deep=True))
    _record(run, estimator, x, prefix=prefix, model_path=model_path, params=params, points=points)


def record_train(
    run: ActiveRun, params: dict[str, Any], evals: Mapping[str, Any], booster: Any, frame: Any
) -> None:
    """A `train` call: its params, every round's evaluation metrics, the booster it returned."""
    prefix, model_path = _names_of_next_fit(run)
    points = eval_points(evals, prefix)
    flat = flat_params(params)
    _record(run, booster, frame, prefix=prefix, model_path=model_path, params=flat, points=points)


def _rows(x: Any) -> int:
    """How many rows X has (an array, a frame, a sparse matrix, a list); unknown is too many."""
    shape = getattr(x, "shape", None)
    if shape:
        return int(shape[0])
    return len(x) if isinstance(x, list | tuple) else MAX_SCORE_ROWS + 1


_fits_logged: weakref.WeakKeyDictionary[ActiveRun, int] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def _names_of_next_fit(run: ActiveRun) -> tuple[str, str]:
    """("", "model") for a run's first logged fit; ("fit2.", "fit2/model") for its second..."""
    with _lock:
        count = _fits_logged.get(run, 0) + 1
        _fits_logged[run] = count
    return ("", "model") if count == 1 else (f"fit{count}.", f"fit{count}/model")


def flat_params(params: Mapping[str, Any]) -> dict[str, str]:
    """Params as text: an estimator by its class name, a function or class by its name; values
    longer than `MAX_PARAM_CHARS` and keys too long for a param left out."""
    flat: dict[str, str] = {}
    for key, value in params.items():
        if isinstance(value, str | int | float | bool | type(None)):
            text = str(value)
        elif callable(getattr(value, "get_params", None)):
            text = type(value).__name__
        elif isfunction(value) or isclass(value):
            text = value.__qualname__
        else:
            text = str(value)
        if len(text) <= MAX_PARAM_CHARS and 0 < len(str(key)) <= MAX_KEY_LENGTH:
            flat[str(key)] = text
    return flat


def eval_points(evals: Mapping[str, Mapping[str, Any]], prefix: str = "") -> list[MetricPoint]:
    """Every metric of every evaluation set as `<set>-<metric>`, one point per round (step =
    round, from 0); values that are not finite numbers are left out."""
    now_ms = time.time_ns() // 1_000_000
    points = []
    for data_name, metrics in evals.items():
        for metric, values in metrics.items():
            key = f"{prefix}{data_name}-{metric}"
            if len(key) > MAX_KEY_LENGTH:
                continue
            for step, value in enumerate(values):
                number = float(value[0] if isinstance(value, tuple) else value)  # cv: (mean, sd)
                if math.isfinite(number):
                    points.append(MetricPoint(key, number, step, now_ms))
    return points


def _point(key: str, value: float, step: int) -> MetricPoint:
    return MetricPoint(key, value, step, time.time_ns() // 1_000_000)


def is_frame(value: Any) -> bool:
    """Whether `value` is a pandas DataFrame (without importing pandas)."""
    frame = getattr(sys.modules.get("pandas"), "DataFrame", None)
    return frame is not None and isinstance(value, frame)


def frame_digest(frame: Any) -> str:
    """`blake3:…` of a DataFrame's column names, dtypes, row count and values, the index left
    out (a fit does not see it). Numeric columns are hashed as their bytes; others through
    pandas' row hashes, whose key is fixed: equal frames give equal digests in any process."""
    import numpy as np
    import pandas as pd

    hasher = new_hasher()
    header = [len(frame), [[str(c), str(t)] for c, t in frame.dtypes.items()]]
    hasher.update(canonical_json(header))
    for _, column in frame.items():
        values = column.to_numpy()
        if values.dtype.kind not in "biufc":  # text, categories, dates with a zone, objects
            values = pd.util.hash_pandas_object(column, index=False).to_numpy()
        hasher.update(np.ascontiguousarray(values).view(np.uint8))
    return str(finish(hasher))


# -- writing, in the background ---------------------------------------------------------------
_writer: ThreadPoolExecutor | None = None
_pending: weakref.WeakKeyDictionary[ActiveRun, list[Future[list[str]]]] = (
    weakref.WeakKeyDictionary()
)


def _record(
    run: ActiveRun,
    model: Any,
    x: Any,
    *,
    prefix: str,
    model_path: str,
    params: dict[str, str],
    points: list[MetricPoint],
) -> None:
    """Take what may change once the fit returns (the frame's digest, the model's files), and
    hand the writing to the background thread."""
    tags: dict[str, str] = {}
    if is_frame(x):
        with warn_on_failure("digest the training DataFrame"):
            tags[f"{prefix}{DIGEST_TAG}"] = frame_digest(x)
            tags[f"{prefix}{SHAPE_TAG}"] = "x".join(str(n) for n in x.shape)
    folder = None
    with warn_on_failure(f"save the {type(model).__name__} model"):
        folder = _saved_model(model)
    prefixed = {f"{prefix}{k}": v for k, v in params.items()}
    job = partial(
        _write, run, params=prefixed, points=points, tags=tags, folder=folder, path=model_path
    )
    _submit(run, job)


def _saved_model(model: Any) -> Path:
    """A temporary folder holding `model` saved by its flavor (what registration would pick),
    with `MODEL_INFO_FILE`; removed once written to the run."""
    folder = Path(tempfile.mkdtemp(prefix="loopml-autolog-")) / "model"
    try:
        flavor, info = FlavorModelSerializer().save(model, folder)
        (folder / MODEL_INFO_FILE).write_text(json.dumps({"flavor": flavor, "info": info}))
    except BaseException:
        shutil.rmtree(folder.parent, ignore_errors=True)
        raise
    return folder


def _write(
    run: ActiveRun,
    *,
    params: dict[str, str],
    points: list[MetricPoint],
    tags: dict[str, str],
    folder: Path | None,
    path: str,
) -> list[str]:
    """The background job: everything in one `log_batch`, then the model's files. Returns
    what failed, for the thread ending the run to warn about."""
    failures = []
    store = run.service.store
    try:
        store.log_batch(run.id, metrics=points, params=params, tags=tags)
    except Conflict as error:  # a param the user logged already, with another value
        failures.append(_failure("write the params", error))
        try:
            store.log_batch(run.id, metrics=points, tags=tags)
        except Exception as again:
            failures.append(_failure("write the metrics and tags", again))
    except Exception as error:
        failures.append(_failure("write the params, metrics and tags", error))
    if folder is not None:
        try:
            run.log_artifact(folder, path)
        except Exception as error:
            failures.append(_failure(f"store the model at {path!r}", error))
        finally:
            shutil.rmtree(folder.parent, ignore_errors=True)
    return failures


def _submit(run: ActiveRun, job: partial[list[str]]) -> None:
    global _writer
    with _lock:
        if _writer is None:
            _writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="loopml-autolog")
        if run not in _pending:
            _pending[run] = []
            run.before_end.append(partial(wait_for_logging, run))
        _pending[run].append(_writer.submit(job))


def wait_for_logging(run: ActiveRun) -> None:
    """Return once what `run`'s fits logged is written; warn about what failed."""
    with _lock:
        futures = _pending.pop(run, [])
    for future in futures:
        try:
            failures = future.result()
        except Exception as error:  # the job catches its own; this would be a bug of ours
            failures = [_failure("write to the run", error)]
        for message in failures:
            warnings.warn(message, AutologWarning, stacklevel=2)


def logged_model(run_id: str, artifact_path: str = "model", *, trust: bool = False) -> LoadedModel:
    """The model a run's fit logged (verified by hash), e.g. to register it:
    `loopml.models.register(run_id, logged_model(run_id).raw, name="churn")`. A python-flavor
    (pickled) model runs code when loaded: pass `trust=True` only if you trust its author."""
    from loopml.bootstrap import default_workspace

    with _lock:
        waiting = [run for run in _pending if run.id == run_id]
    for run in waiting:
        wait_for_logging(run)
    tracking = default_workspace().tracking
    prefix = f"{artifact_path.strip('/')}/"
    files = [a for a in tracking.artifacts(run_id) if a.path.startswith(prefix)]
    if not any(a.path == f"{prefix}{MODEL_INFO_FILE}" for a in files):
        raise NotFound(
            f"Run {run_id} has no model logged at {artifact_path!r}.",
            f"List its artifacts with `loopml runs show {run_id}`; autologging logs the first "
            "fit's model at 'model', the second's at 'fit2/model'.",
        )
    with tempfile.TemporaryDirectory(prefix="loopml-autolog-") as tmp:
        folder = Path(tmp)
        for artifact in files:
            dest = target_inside(folder, artifact.path[len(prefix) :])
            dest.parent.mkdir(parents=True, exist_ok=True)
            tracking.blobs.get_file(artifact.digest, dest)
        described = json.loads((folder / MODEL_INFO_FILE).read_text())
        serializer = FlavorModelSerializer()
        return serializer.load(described["flavor"], folder, described["info"], trust=trust)
