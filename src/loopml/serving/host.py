"""One served model: the version in use, swapped atomically when its alias moves.

A background thread asks the registry which version the alias points at (one cheap query every
`poll_s`). When it changes, the new version loads and is warmed in that thread while requests
keep going to the old one; then one assignment swaps them. A request holds the `Served` it
started with, so it finishes on, and is labelled with, the version that really answered it.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from dataclasses import dataclass
from typing import Any

from loopml.adapters.flavors.base import has_probabilities
from loopml.bootstrap import Workspace
from loopml.domain.records import ModelVersion
from loopml.domain.refs import ModelRef, parse_model_ref
from loopml.ports import LoadedModel

log = logging.getLogger("loopml.serving")


@dataclass(frozen=True)
class Served:
    version: ModelVersion
    model: LoadedModel
    inputs: tuple[tuple[str, str], ...]
    """(column, type) the model expects, from its signature."""
    array_input: bool = False
    """Feed a numpy array rather than a DataFrame: scikit-learn's feature-name checks on a
    DataFrame cost about 0.5 ms a call. Chosen at load time, for numeric inputs only, and only
    when both give the same predictions on the warm-up rows."""

    reference: dict[str, Any] | None = None
    """Training medians/modes per input, for `/explain` (None when the data is unknown)."""

    categories: dict[str, frozenset[str]] = dataclasses.field(default_factory=dict)
    """Categories seen in training per text input; a value outside them is flagged."""

    tensors: dict[str, list[dict[str, Any]]] | None = None
    """The V2 metadata of the model's own tensors ({"inputs", "outputs"}) when its signature
    records them (an ONNX graph's): their real datatypes and shapes, -1 for a varying size."""

    def features(self, frame: Any) -> Any:
        """What the model is called with for `frame`."""
        return frame.to_numpy(dtype="float64") if self.array_input else frame

    @property
    def has_proba(self) -> bool:
        """Whether the model gives class probabilities: as its flavor says (a classifying
        XGBoost or LightGBM Booster does, without a `predict_proba` of its own), else whether
        it has `predict_proba`."""
        return has_probabilities(self.model)


def _inputs_of(version: ModelVersion) -> tuple[tuple[str, str], ...]:
    return tuple((c["name"], c["type"]) for c in version.signature.get("inputs", []))


def _tensor_metadata(signature: dict[str, Any]) -> dict[str, list[dict[str, Any]]] | None:
    """The tensors a signature records (numpy dtype names, None for a varying size) as V2
    tensor metadata; None when it records none."""
    from loopml.domain.tensor_data import NUMPY_DTYPE

    tensors = signature.get("tensors")
    if not isinstance(tensors, dict):
        return None
    datatypes = {dtype.name: name for name, dtype in NUMPY_DTYPE.items()}  # object: BYTES
    return {
        side: [
            {
                "name": t["name"],
                "datatype": datatypes.get(str(t.get("dtype")), "BYTES"),
                "shape": [-1 if size is None else size for size in t.get("shape") or [None]],
            }
            for t in tensors.get(side, [])
        ]
        for side in ("inputs", "outputs")
    }


def _categories(
    schema: dict[str, Any] | None, inputs: tuple[tuple[str, str], ...]
) -> dict[str, frozenset[str]]:
    """Known categories of the model's text inputs, from the training data's schema."""
    wanted = {name for name, kind in inputs if kind in ("string", "category")}
    columns = (schema or {}).get("columns", [])
    return {
        c["name"]: frozenset(map(str, c["categories"]))
        for c in columns
        if c["name"] in wanted and c.get("categories")
    }


NO_FEATURE_NAMES = "X does not have valid feature names"
"""scikit-learn's warning when an array reaches a model fitted on a DataFrame (array_input)."""


def _warm(served: Served) -> Served:
    """Predictions on made-up rows, so the first real request pays no lazy set-up; also decides
    whether the model can take a numpy array."""
    import warnings

    import numpy as np
    import pandas as pd

    defaults = {"integer": 0, "float": 0.0, "boolean": False}
    names = [n for n, _ in served.inputs]
    frame = pd.DataFrame([{n: defaults.get(k, "") for n, k in served.inputs}] * 2, columns=names)
    try:
        expected = np.asarray(served.model.predict(frame))
    except Exception as exc:  # a made-up row may be refused; the model still serves real ones
        log.debug("warm-up of %s skipped: %s", served.version.ref, exc)
        return served
    if not names or any(kind not in ("integer", "float") for _, kind in served.inputs):
        return served
    ordered = getattr(served.model, "in_order", None)  # a booster checks the names once
    if ordered is not None:
        served = dataclasses.replace(served, model=ordered(names))
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=NO_FEATURE_NAMES)
            same = np.array_equal(np.asarray(served.model.predict(frame.to_numpy())), expected)
    except Exception:
        return served
    return dataclasses.replace(served, array_input=same)


class ModelHost:
    def __init__(
        self,
        workspace: Workspace,
        deployment: str,
        model_ref: str,
        *,
        project: str | None = None,
        trust: bool = False,
        poll_s: float = 2.0,
        role: str = "primary",
    ) -> None:
        self.workspace = workspace
        self.deployment = deployment
        self.role = role
        """`primary`, `shadow` (sees every request, never answers) or `canary`."""
        self.ref: ModelRef = parse_model_ref(model_ref)
        self.project = project or workspace.project
        self.trust = trust
        self.poll_s = poll_s
        self.swaps = 0
        self.current = self._load(workspace.registry.resolve(self.ref, self.project))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def name(self) -> str:
        return self.ref.name

    def _load(self, version: ModelVersion) -> Served:
        model = self.workspace.registry.load(version.ref, project=self.project, trust=self.trust)
        inputs = _inputs_of(version)
        served = _warm(Served(version, model, inputs, tensors=_tensor_metadata(version.signature)))
        reference, categories = self._training_data(version, inputs)
        return dataclasses.replace(served, reference=reference, categories=categories)

    def _training_data(
        self, version: ModelVersion, inputs: tuple[tuple[str, str], ...]
    ) -> tuple[dict[str, Any] | None, dict[str, frozenset[str]]]:
        """Reference values and known categories from the data the model was trained on: the
        dataset versions its run read, or its pipeline's steps read."""
        from loopml.serving.explain import reference_from_profile

        if version.run_id is None:
            return None, {}
        try:
            refs = self.workspace.lineage.training_datasets(version.run_id)
            for ref in refs:
                data = self.workspace.data.resolve(ref, version.project, record=False)
                reference = reference_from_profile(self.workspace.data.profile(data), inputs)
                if reference is not None:
                    return reference, _categories(data.schema, inputs)
        except Exception as exc:  # no reference: /explain falls back and says so
            log.debug("no training reference for %s: %s", version.ref, exc)
        return None, {}

    def refresh(self) -> bool:
        """Swap to the version the reference names now, if it changed. True when swapped."""
        target = self.workspace.registry.resolve(self.ref, self.project)
        if target.version == self.current.version.version:
            return False
        before = self.current.version.version
        fresh = self._load(target)
        self.current = fresh  # one assignment: requests see the old or the new, never a mix
        self.swaps += 1
        log.info(self._swapped(target, before))
        return True

    def _swapped(self, target: ModelVersion, before: int) -> str:
        """`churn-prod: now serving churn version 4 (alias champion moved from 3)`."""
        role = "" if self.role == "primary" else f" ({self.role})"
        moved = f"alias {self.ref.alias}" if self.ref.alias else "latest"
        return (
            f"{self.deployment}{role}: now serving {target.name} version {target.version} "
            f"({moved} moved from {before})"
        )

    def start(self) -> None:
        if self.ref.version is not None or self._thread is not None:
            return  # a pinned version never moves
        self._thread = threading.Thread(
            target=self._follow, daemon=True, name=f"loopml-follow-{self.deployment}"
        )
        self._thread.start()

    def _follow(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.refresh()
            except Exception as exc:  # the registry may be briefly away; keep serving
                log.warning("%s: could not check %s: %s", self.deployment, self.ref, exc)

    def stop(self) -> None:
        self._stop.set()

    def describe(self) -> dict[str, Any]:
        v = self.current.version
        return {
            "deployment": self.deployment,
            "model": v.name,
            "version": v.version,
            "aliases": list(v.aliases),
            "flavor": v.flavor,
        }


@dataclass
class DeploymentHosts:
    """What one deployment serves: the primary, and optionally a shadow and a canary."""

    primary: ModelHost
    shadow: ModelHost | None = None
    canary: ModelHost | None = None
    canary_percent: float = 0.0

    def all(self) -> list[ModelHost]:
        return [h for h in (self.primary, self.shadow, self.canary) if h is not None]

    def pick(self, draw: float) -> ModelHost:
        """The host that answers a request whose random draw (0 to 100) is `draw`."""
        if self.canary is not None and draw < self.canary_percent:
            return self.canary
        return self.primary
