"""Compiling a model version for faster serving: `loopml models compile churn/3 --to onnx`.

The source version is loaded as the registry loads it, converted by a `ModelCompiler` (ONNX:
`loopml.adapters.onnx_compiler`), and both models predict the same rows: up to 1,000 rows of
the dataset version the source was trained on (its run's inputs), or of the dataset named with
`data`, or the rows a Python caller gives. Only when the outputs agree within the tolerance
(`loopml.domain.parity`) is the compiled model registered, as the next version of the same
model; otherwise nothing is registered and the error names the worst row.

The new version carries its provenance where versions carry it: the source's run (so lineage
and training data are the source's, and so are the metrics) and, in the ONNX file's metadata
(copied by the onnx flavor into the version's flavor info), the source version and the parity
figures. Compiling the same version again on the same data gives the same file, so the
registry returns the version made the first time.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loopml.domain.parity import DEFAULT_TOLERANCE, PARITY_KEY, SOURCE_KEY, Parity, compare
from loopml.domain.records import ModelVersion
from loopml.domain.signature import ColumnSpec, ColumnType
from loopml.errors import InvalidInput
from loopml.ports import LoadedModel, ModelCompiler, RunStore
from loopml.services.data import DataService
from loopml.services.lineage import training_datasets
from loopml.services.registry import Outcome, RegistryService

SAMPLE_ROWS = 1000
"""The most rows parity is checked on, drawn evenly (seeded) from the dataset."""
COMPILABLE = ("sklearn", "xgboost", "lightgbm")
"""The flavors whose models a converter reads (a python-flavor model is opaque code)."""

FrameReader = Callable[[Sequence[Path]], Any]
"""Reads the first table among a dataset version's files as a data frame (None if none is)."""


@dataclass(frozen=True)
class Compilation:
    """What `compile` made: the new (or existing) version, its source, and the parity proof."""

    version: ModelVersion
    source: ModelVersion
    parity: Parity
    checked_on: str
    """Where the compared rows came from: `dataset churn@3`, or `the given frame`."""
    outcome: Outcome

    def describe(self) -> str:
        made = "registered" if self.outcome is Outcome.CREATED else "found"
        return (
            f"{made} {self.version.ref} ({self.version.flavor}), compiled from "
            f"{self.source.ref} ({self.source.flavor}); {self.parity.describe(self.checked_on)}"
        )


class CompileService:
    def __init__(
        self,
        registry: RegistryService,
        runs: RunStore,
        data: DataService,
        read_frame: FrameReader,
        compilers: Sequence[ModelCompiler],
    ) -> None:
        self._registry = registry
        self._runs = runs
        self._data = data
        self._read_frame = read_frame
        self._compilers = {compiler.target: compiler for compiler in compilers}

    def compile(
        self,
        ref: str,
        *,
        project: str,
        to: str = "onnx",
        tolerance: float = DEFAULT_TOLERANCE,
        data: str | None = None,
        rows: Any = None,
    ) -> Compilation:
        """Compile the version `ref` names (`churn/3`, `churn@champion`) to `to`, check parity
        on `rows` (a data frame), else the dataset version `data`, else the source's training
        data, and register it as the next version of the same model."""
        compiler = self._compiler(to)
        _check_tolerance(tolerance)
        source = self._registry.resolve(ref, project)
        _check_flavor(source)
        loaded = self._registry.load(source.ref, project=project)
        inputs = _inputs(source, loaded)
        sample, checked_on = self._sample(source, inputs, data, rows, project)
        compiled = compiler.compile(loaded, inputs, f"{source.name}_{source.version}")
        parity = _parity(loaded, compiled, sample, tolerance)
        if not parity.passed:
            raise InvalidInput(*_failure(source, parity, sample, checked_on))
        notes = {
            SOURCE_KEY: json.dumps(
                {
                    "model": source.name,
                    "version": source.version,
                    "flavor": source.flavor,
                    "artifact": source.artifact_digest,
                },
                sort_keys=True,
            ),
            PARITY_KEY: json.dumps(parity.to_dict(), sort_keys=True),
        }
        registration = self._registry.register_once(
            compiler.to_register(compiled, notes),
            source.name,
            project=project,
            run_id=source.run_id,
            input_example=sample.head(5),
            metrics=dict(source.metrics),
        )
        return Compilation(registration.version, source, parity, checked_on, registration.outcome)

    def _compiler(self, to: str) -> ModelCompiler:
        if to not in self._compilers:
            raise InvalidInput(
                f"Cannot compile to {to!r}.", f"Use --to {' or '.join(sorted(self._compilers))}."
            )
        return self._compilers[to]

    def _sample(
        self,
        source: ModelVersion,
        inputs: Sequence[ColumnSpec],
        data: str | None,
        rows: Any,
        project: str,
    ) -> tuple[Any, str]:
        """Up to `SAMPLE_ROWS` rows of the model's input columns, and where they came from."""
        names = [column.name for column in inputs]
        if rows is not None:
            return _rows_of(_as_frame(rows), names, "the given frame"), "the given frame"
        refs = [data] if data else _training_data(self._runs, source)
        lacking: dict[str, list[str]] = {}
        for ref in refs:
            version = self._data.resolve(ref, project, record=False)
            pinned = f"{version.name}@{version.version}"
            frame = self._read(pinned, project)
            missing = [] if frame is None else [n for n in names if n not in frame.columns]
            if frame is not None and not missing:
                return _rows_of(frame, names, f"dataset {pinned}"), f"dataset {pinned}"
            lacking[pinned] = missing or ["(no table)"]
        if lacking:
            found = "; ".join(f"{ref} lacks {cols[:5]}" for ref, cols in lacking.items())
            raise InvalidInput(
                f"No dataset holds the input columns of {source.ref} to check parity on: {found}.",
                "Name a dataset version with those columns: --data NAME@VERSION.",
            )
        how = "without a run" if source.run_id is None else "from a run that read no dataset"
        raise InvalidInput(
            f"Model {source.ref} was registered {how}, so there are no training rows to check "
            "the compiled model's parity on.",
            "Name a dataset version holding its input columns: --data NAME@VERSION (data= or "
            "rows= in Python).",
        )

    def _read(self, ref: str, project: str) -> Any:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="loopml-parity-") as folder:
            return self._read_frame(self._data.get(ref, project, Path(folder)))


def _check_tolerance(tolerance: float) -> None:
    if not (isinstance(tolerance, int | float) and math.isfinite(tolerance) and tolerance >= 0):
        raise InvalidInput(
            f"The tolerance {tolerance!r} is not a number of at least 0.",
            "Give the largest absolute difference to accept, such as 1e-4.",
        )


def _check_flavor(source: ModelVersion) -> None:
    if source.flavor in COMPILABLE:
        return
    if source.flavor == "python":
        raise InvalidInput(
            f"Model {source.ref} is a python-flavor model (cloudpickle): its code is not "
            "something a converter can read, so it cannot be compiled.",
            "Register the scikit-learn, XGBoost or LightGBM estimator itself (not wrapped in "
            "your own class), then compile that version; or keep serving this one.",
        )
    if source.flavor == "onnx":
        raise InvalidInput(f"Model {source.ref} is an ONNX model already.", "Serve it as it is.")
    raise InvalidInput(
        f"Model {source.ref} has the {source.flavor!r} flavor, which cannot be compiled.",
        f"Compile a version of flavor {', '.join(COMPILABLE)}.",
    )


def _inputs(source: ModelVersion, loaded: LoadedModel) -> list[ColumnSpec]:
    """The source's input columns: in training order for a model that names its features
    (XGBoost, LightGBM), else in its signature's order, typed as the signature says."""
    types = {str(c["name"]): ColumnType(str(c["type"])) for c in source.signature.get("inputs", [])}
    names = list(getattr(loaded, "features", None) or types)
    if not names:
        names = [str(n) for n in getattr(loaded.raw, "feature_names_in_", [])]
    if not names:
        raise InvalidInput(
            f"Model {source.ref} records no input columns (it was registered without an input "
            "example), so the compiled model's inputs cannot be named.",
            "Register the model again with input_example=X.head(), then compile that version.",
        )
    return [ColumnSpec(name, types.get(name, ColumnType.FLOAT)) for name in names]


def _training_data(runs: RunStore, source: ModelVersion) -> list[str]:
    return [] if source.run_id is None else list(training_datasets(runs, source.run_id))


def _as_frame(rows: Any) -> Any:
    if hasattr(rows, "columns") and hasattr(rows, "iloc"):
        return rows
    import pandas as pd

    return pd.DataFrame(rows)


def _rows_of(frame: Any, names: list[str], where: str) -> Any:
    """At most `SAMPLE_ROWS` of `frame`'s rows (an even, seeded draw), columns `names`."""
    import numpy as np

    missing = [name for name in names if name not in frame.columns]
    if missing:
        raise InvalidInput(
            f"{where.capitalize()} lack the model's input columns {missing[:10]}.",
            "Give rows with every input column the model was trained on.",
        )
    if len(frame) == 0:
        raise InvalidInput(f"{where.capitalize()} hold no rows.", "Give at least one row.")
    if len(frame) > SAMPLE_ROWS:
        picked = np.sort(np.random.default_rng(0).choice(len(frame), SAMPLE_ROWS, replace=False))
        frame = frame.iloc[picked]
    return frame[names]


def _parity(source: LoadedModel, compiled: LoadedModel, sample: Any, tolerance: float) -> Parity:
    """Both models on `sample`: a classifier (the compiled graph gives probabilities) compared
    on labels and, when the source gives them too, probabilities; else on predictions."""
    classifier = bool(getattr(compiled, "has_predict_proba", False))
    with_proba = classifier and bool(getattr(source, "has_predict_proba", False))
    return compare(
        source.predict(sample),
        compiled.predict(sample),
        source.predict_proba(sample) if with_proba else None,
        compiled.predict_proba(sample) if with_proba else None,
        classifier=classifier,
        tolerance=tolerance,
    )


def _failure(source: ModelVersion, parity: Parity, sample: Any, checked_on: str) -> tuple[str, str]:
    """The message and hint of a parity failure: the worst row, its difference, the fix."""
    row = sample.index[parity.worst_row]
    problems = []
    gap = parity.proba_max_abs_diff
    what = "probability"
    if parity.prediction_max_abs_diff is not None:
        gap, what = parity.prediction_max_abs_diff, "prediction"
    if gap is not None and gap > parity.tolerance:
        problems.append(
            f"the largest {what} difference is {gap:.3g} (row {row}), over the tolerance "
            f"{parity.tolerance:g}"
        )
    hard = parity.mismatches - parity.tie_flips
    if hard:
        problems.append(f"{hard:,} of {parity.rows:,} rows got another class (first at row {row})")
    message = (
        f"The compiled model does not match {source.ref} on {parity.rows:,} rows of "
        f"{checked_on}: {'; '.join(problems)}. Nothing was registered."
    )
    if gap is not None and gap > 0:
        hint = (
            f"If differences up to {gap:.2g} are acceptable, compile again with --tolerance "
            f"{_above(gap)}; otherwise keep serving {source.ref}."
        )
    else:
        hint = f"Keep serving {source.ref}: the compiled model gives other classes."
    return message, hint


def _above(gap: float) -> str:
    """A round tolerance just above `gap` (3.2e-04 -> 4e-04)."""
    exponent = math.floor(math.log10(gap))
    return f"{math.ceil(gap / 10**exponent + 1e-9) * 10**exponent:.0e}"
