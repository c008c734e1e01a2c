"""loopml: versioned data, tracked runs and a model registry, closed into one loop.

    import loopml
    ds = loopml.data.add("train.csv", name="churn")
    with loopml.start_run(name="baseline") as run:
        run.use_dataset(ds)
        run.log_metric("loss", 0.3)
        loopml.models.register(run, model, name="churn", input_example=X.head())

Everything heavy is imported on first use, so `import loopml` stays quick.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from loopml import data, models
    from loopml.autologging import autolog
    from loopml.fluent import active_run, get_run, search_runs, start_run
    from loopml.pipelines import run_pipeline
    from loopml.steps import pipeline, step

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "active_run",
    "autolog",
    "data",
    "get_run",
    "models",
    "pipeline",
    "run_pipeline",
    "search_runs",
    "start_run",
    "step",
]

_LAZY = {
    "active_run": "loopml.fluent",
    "autolog": "loopml.autologging",
    "get_run": "loopml.fluent",
    "search_runs": "loopml.fluent",
    "start_run": "loopml.fluent",
    "pipeline": "loopml.steps",
    "step": "loopml.steps",
    "run_pipeline": "loopml.pipelines",
}


def __getattr__(name: str) -> Any:
    if name in ("data", "models"):
        return importlib.import_module(f"loopml.{name}")
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'loopml' has no attribute {name!r}")
