"""Autologging: a `fit` inside a run records its params, training metrics, input data and model.

    loopml.autolog()                        # every run of this process, from now on
    with loopml.start_run(autolog=True):    # or this run only (autolog=False: not this one)
        pipeline.fit(X, y)

What the outermost fit of a scikit-learn estimator (any `BaseEstimator` subclass: pipelines,
searches, and xgboost's and lightgbm's estimators, which subclass it) or a call of
`xgboost.train` / `lightgbm.train` records on the run current in its context (nothing, and no
run created, outside a run):

    params     `get_params()` (a nested estimator by its class name), or a train call's `params`
               and rounds; a value longer than `MAX_PARAM_CHARS` is left out
    metrics    every evaluation metric of every boosting round, `<set>-<metric>` at step = round
               (`evals_result_`, or what the train call recorded); for an estimator without them,
               `training_score` = score(X, y) when y is given and X has at most `MAX_SCORE_ROWS`
    tags       `loopml.autolog.input_digest` and `.input_shape` when X is a pandas DataFrame (see
               `frame_digest`). A tag, not a run input: a run's inputs are registered dataset
               versions, and registering every fit's frame would copy the data each time
    artifact   the fitted model under `model/`, saved by the flavor registration would pick, with
               `loopml-model.json`: `logged_model(run_id)` loads it back, e.g. to register it
A second logged fit in the same run names all of these with a `fit2.` prefix (`fit2/model`),
and so on: params are written once and must not clash. `records` says what is taken while the
fit returns and what a background thread writes (the run waits for it as it ends).

Only the outermost fit is logged: a ContextVar marks "inside a logged fit", so the fits that a
Pipeline, a search or `XGBClassifier.fit` (through `train`) make inside it are not, in each
thread and asyncio task apart. Only `fit` is watched: a `fit_transform` or `partial_fit` that
does not call the class's `fit` logs nothing. Logging never breaks a fit: a failure is an
`AutologWarning`, and the fit's result is returned unchanged. The switch is per process: worker
processes (a pipeline's `processes` executor, joblib's) log nothing unless they turn it on.

How methods are patched, importing nothing: a library already imported is patched when
autologging is turned on; one imported later is patched as its import ends, by a meta path
finder that watches only `sklearn.base`, `xgboost` and `lightgbm` (patching at `start_run`
instead would miss a library first imported inside a run). For scikit-learn, each class's own
`fit` is wrapped: the `BaseEstimator` subclasses that exist, and, through a
`BaseEstimator.__init_subclass__` hook, every one defined later (the rest of sklearn, xgboost,
lightgbm, the user's own). The train functions are replaced on their modules (`xgboost.train`
and `xgboost.training.train`, the same for lightgbm); a `from xgboost import train` done earlier
keeps the original. Every replacement is recorded, and `autolog(disable=True)` undoes them.
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.machinery
import inspect
import sys
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from types import ModuleType
from typing import Any

from loopml.autologging.records import (
    MAX_PARAM_CHARS,
    MAX_SCORE_ROWS,
    AutologWarning,
    frame_digest,
    is_frame,
    logged_model,
    record_estimator,
    record_train,
    warn_on_failure,
)
from loopml.services.tracking import ActiveRun, current_run

__all__ = [
    "MAX_PARAM_CHARS",
    "MAX_SCORE_ROWS",
    "AutologWarning",
    "autolog",
    "choose_for_run",
    "frame_digest",
    "logged_model",
]

_inside_fit: ContextVar[bool] = ContextVar("loopml_inside_logged_fit", default=False)
_lock = threading.RLock()
_enabled = False
"""Turned on by `autolog()`: every run of the process logs its fits."""
_run_choice: weakref.WeakKeyDictionary[ActiveRun, bool] = weakref.WeakKeyDictionary()
"""A run's own choice (`start_run(autolog=...)`), over the process's."""
_ABSENT = object()
_replaced: list[tuple[Any, str, Any]] = []
"""(owner, attribute, what it held or _ABSENT), in the order replaced: what disable undoes."""


def autolog(disable: bool = False) -> None:
    """Log every fit made inside a run of this process from now on; `disable=True` stops, for
    runs started with `autolog=True` too, and puts back every patched method."""
    global _enabled
    with _lock:
        if disable:
            _enabled = False
            _run_choice.clear()
            _unpatch()
        else:
            _enabled = True
            _patch()


def choose_for_run(run: ActiveRun, on: bool) -> None:
    """Log the fits of `run` (`on`), or not, whatever `autolog()` says for the process."""
    with _lock:
        _run_choice[run] = on
        if on:
            _patch()


def _run_to_log() -> ActiveRun | None:
    """The run a fit starting now logs to: None inside a logged fit, outside a run, or off."""
    if _inside_fit.get():
        return None
    run = current_run.get()
    if run is None or run.ended:
        return None
    choice = _run_choice.get(run)
    return run if (_enabled if choice is None else choice) else None


def _patch() -> None:
    """Patch what is imported, and watch imports for the rest (idempotent)."""
    if not any(isinstance(f, _PatchOnImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _PatchOnImport())
    for name, patch in _WATCHED.items():
        module = sys.modules.get(name)
        if module is not None:
            with warn_on_failure(f"patch {name}"):
                patch(module)


def _unpatch() -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _PatchOnImport)]
    while _replaced:
        owner, name, old = _replaced.pop()
        if old is _ABSENT:
            delattr(owner, name)
        else:
            setattr(owner, name, old)


def _replace(owner: Any, name: str, new: Any) -> None:
    with _lock:
        _replaced.append((owner, name, vars(owner).get(name, _ABSENT)))
        setattr(owner, name, new)


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Finds nothing itself: for a watched module, wraps the loader the other finders give so
    the module is patched as soon as it has run (and puts the loader back on the module)."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        patch = _WATCHED.get(fullname)
        if patch is None:
            return None
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            if finder is self or find is None:
                continue
            spec: importlib.machinery.ModuleSpec | None = find(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _PatchingLoader(spec.loader, patch)
                return spec
        return None


class _PatchingLoader(importlib.abc.Loader):
    def __init__(self, loader: Any, patch: Callable[[ModuleType], None]) -> None:
        self._loader = loader
        self._patch = patch

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        created: ModuleType | None = self._loader.create_module(spec)
        return created

    def exec_module(self, module: ModuleType) -> None:
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader
        module.__loader__ = self._loader
        self._loader.exec_module(module)
        with _lock:
            if _enabled or any(_run_choice.values()):
                with warn_on_failure(f"patch {module.__name__}"):
                    self._patch(module)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


def _patch_sklearn(base: ModuleType) -> None:
    """Wrap the own `fit` of every BaseEstimator subclass, now and when defined later."""
    estimator = base.BaseEstimator
    own = vars(estimator).get("__init_subclass__")
    if getattr(own, "loopml_autolog", False):
        return

    def __init_subclass__(cls: type, /, **kwargs: Any) -> None:
        if own is not None:
            own.__get__(None, cls)(**kwargs)
        else:
            super(estimator, cls).__init_subclass__(**kwargs)
        _wrap_own_fit(cls)

    hook: Any = classmethod(__init_subclass__)
    hook.loopml_autolog = True
    _replace(estimator, "__init_subclass__", hook)
    pending = [estimator]
    while pending:
        cls = pending.pop()
        _wrap_own_fit(cls)
        pending.extend(cls.__subclasses__())


def _wrap_own_fit(cls: type) -> None:
    fit = vars(cls).get("fit")
    if inspect.isfunction(fit) and not hasattr(fit, "loopml_original"):
        _replace(cls, "fit", _logged_fit(fit))


def _logged_fit(fit: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fit)
    def logged(self: Any, *args: Any, **kwargs: Any) -> Any:
        run = _run_to_log()
        if run is None:
            return fit(self, *args, **kwargs)
        token = _inside_fit.set(True)
        try:
            result = fit(self, *args, **kwargs)
        finally:
            _inside_fit.reset(token)
        with warn_on_failure(f"log the fit of {type(self).__name__}"):
            x = args[0] if args else kwargs.get("X")
            y = args[1] if len(args) > 1 else kwargs.get("y")
            record_estimator(run, self, x, y)
        return result

    logged.loopml_original = fit  # type: ignore[attr-defined]
    return logged


_EvalsCapture = Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]
"""(train's keyword arguments, a dict to fill) -> the arguments that make train fill it."""


def _patch_train(package: ModuleType, defining: str, capture: _EvalsCapture) -> None:
    """Replace `train` on the package and on the module defining it by one logging wrapper."""
    original = vars(package).get("train")
    if original is None or hasattr(original, "loopml_original"):
        return

    @functools.wraps(original)
    def train(*args: Any, **kwargs: Any) -> Any:
        run = _run_to_log()
        if run is None:
            return original(*args, **kwargs)
        recorded: dict[str, Any] = {}
        call = frame = None
        with warn_on_failure("watch the evaluation results"):
            kwargs = capture(kwargs, recorded)
            call = inspect.signature(original).bind(*args, **kwargs)
            frame = getattr(call.arguments.get("train_set"), "data", None)  # lightgbm frees it
        token = _inside_fit.set(True)
        try:
            booster = original(*args, **kwargs)
        finally:
            _inside_fit.reset(token)
        if call is not None:
            with warn_on_failure(f"log {package.__name__}.train"):
                evals = recorded.get("caller", recorded)
                frame = frame if is_frame(frame) else None
                record_train(run, _train_params(call), evals, booster, frame)
        return booster

    train.loopml_original = original  # type: ignore[attr-defined]
    _replace(package, "train", train)
    module = sys.modules.get(defining)
    if module is not None and vars(module).get("train") is original:
        _replace(module, "train", train)


def _train_params(call: inspect.BoundArguments) -> dict[str, Any]:
    """A train call's `params` (a dict, or xgboost's (key, value) pairs, where a key may repeat
    and gathers its values in a list) and its number of rounds."""
    given = call.arguments.get("params") or {}
    params: dict[str, Any] = {}
    for key, value in given.items() if isinstance(given, Mapping) else given:
        before = params.get(key, _ABSENT)
        listed = before if isinstance(before, list) else [before]
        params[key] = value if before is _ABSENT else [*listed, value]
    rounds = call.signature.parameters.get("num_boost_round")
    default = None if rounds is None else rounds.default
    params["num_boost_round"] = call.arguments.get("num_boost_round", default)
    return params


def _xgboost_evals(kwargs: dict[str, Any], recorded: dict[str, Any]) -> dict[str, Any]:
    """xgboost.train fills the `evals_result` dict it is given: the caller's, else ours."""
    if kwargs.get("evals_result") is None:
        return {**kwargs, "evals_result": recorded}
    recorded["caller"] = kwargs["evals_result"]
    return kwargs


def _lightgbm_evals(kwargs: dict[str, Any], recorded: dict[str, Any]) -> dict[str, Any]:
    """lightgbm.train records evaluations through a `record_evaluation` callback: add one."""
    record = sys.modules["lightgbm"].record_evaluation(recorded)
    return {**kwargs, "callbacks": [*(kwargs.get("callbacks") or []), record]}


_WATCHED: dict[str, Callable[[ModuleType], None]] = {
    "sklearn.base": _patch_sklearn,
    "xgboost": functools.partial(_patch_train, defining="xgboost.training", capture=_xgboost_evals),
    "lightgbm": functools.partial(
        _patch_train, defining="lightgbm.engine", capture=_lightgbm_evals
    ),
}
"""Module name -> what patches it once imported."""
