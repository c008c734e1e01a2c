"""A drift comparison's report: every compared column's verdict (`FeatureDrift`) and the whole
table's (`DriftReport`), as JSON (`to_dict`, `to_json`) and as one HTML page (`to_html`).

The drift share counts the model's inputs; the `label` and `prediction` columns are reported
apart, and `weighted_drift` weighs the drifted inputs by the model's importance
(`loopml.domain.importance`). `loopml.monitoring.drift` makes the report.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from loopml.domain import importance as importance_stats
from loopml.monitoring.drift_methods.base import Thresholds

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class FeatureDrift:
    name: str
    kind: str
    drifted: bool
    method: str
    """The significance test (`ks`, `chi2`, `fisher`) or, for text, `oov+jensen_shannon` (the
    p-value is the out-of-vocabulary test's)."""
    p_value: float | None
    q_value: float | None
    """p-value adjusted for the number of features (Benjamini-Hochberg)."""
    effect: str
    """The effect size the decision used: `wasserstein` or `jensen_shannon`."""
    effect_value: float
    effect_threshold: float
    statistics: dict[str, Any]
    reference_rows: int
    current_rows: int
    findings: list[str] = field(default_factory=list)
    """Things worth a look besides drift: `new_categories:a,b`, `oov_rate:0.031`."""
    chart: dict[str, Any] = field(default_factory=dict)
    """What a report page draws: numeric CDFs at up to 100 reference quantiles, or the shares
    of the most frequent categories (tokens) on each side."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "drifted": self.drifted,
            "method": self.method,
            "p_value": _clean(self.p_value),
            "q_value": _clean(self.q_value),
            "effect": self.effect,
            "effect_value": _clean(self.effect_value),
            "effect_threshold": _clean(self.effect_threshold),
            "statistics": {k: _clean(v) for k, v in self.statistics.items()},
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
            "findings": list(self.findings),
            "chart": {k: _clean_list(v) for k, v in self.chart.items()},
        }


@dataclass(frozen=True)
class DriftReport:
    """Every compared column's verdict. The model's inputs make the drift share; the `label`
    and `prediction` columns (when the comparison had them) are reported apart."""

    features: dict[str, FeatureDrift]
    thresholds: Thresholds
    reference_rows: int
    current_rows: int
    label: str | None = None
    """The column holding the labels, compared but not an input."""
    prediction: str | None = None
    """The column holding the model's outputs, compared but not an input."""
    importance: dict[str, float] = field(default_factory=dict)
    """The model's importance per input (summing to 1); empty: every input weighs the same."""
    importance_source: str = importance_stats.EQUAL
    """`model` (the model's own importances) or `equal`."""

    @property
    def inputs(self) -> list[str]:
        """The compared columns that are model inputs (not the label, not the prediction)."""
        return [name for name in self.features if name not in (self.label, self.prediction)]

    @property
    def drifted_features(self) -> list[str]:
        """The inputs that drifted."""
        return [name for name in self.inputs if self.features[name].drifted]

    @property
    def drift_share(self) -> float:
        """Share of the inputs that drifted."""
        inputs = self.inputs
        return len(self.drifted_features) / len(inputs) if inputs else 0.0

    @property
    def weighted_drift(self) -> float:
        """Share of the model's importance on the drifted inputs (the drift share when the
        model gave no importances)."""
        return importance_stats.weighted_drift(
            self.importance, self.inputs, set(self.drifted_features)
        )

    @property
    def label_drift(self) -> FeatureDrift | None:
        return None if self.label is None else self.features.get(self.label)

    @property
    def prediction_drift(self) -> FeatureDrift | None:
        return None if self.prediction is None else self.features.get(self.prediction)

    def to_dict(self) -> dict[str, Any]:
        roles = {self.label: "label", self.prediction: "prediction"}
        inputs = self.inputs
        return {
            "schema_version": SCHEMA_VERSION,
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
            "drift_share": self.drift_share,
            "drifted_count": len(self.drifted_features),
            "drifted_features": self.drifted_features,
            "input_count": len(inputs),
            "weighted_drift": self.weighted_drift,
            "importance_source": self.importance_source,
            "importance": importance_stats.effective_weights(self.importance, inputs)
            if self.importance
            else {},
            "label_drift": _apart(self.label_drift),
            "prediction_drift": _apart(self.prediction_drift),
            "thresholds": dict(self.thresholds.__dict__),
            "features": [
                {**feature.to_dict(), "role": roles.get(name, "input")}
                for name, feature in self.features.items()
            ],
        }

    def to_json(self) -> str:
        import orjson

        return orjson.dumps(self.to_dict(), option=orjson.OPT_INDENT_2).decode()

    def to_html(self, path: str | os.PathLike[str] | None = None) -> str:
        """The report as one self-contained HTML page (no script, nothing fetched); written to
        `path` when given."""
        from loopml.monitoring.html import render

        page = render(self.to_dict())
        if path is not None:
            Path(path).write_text(page, encoding="utf-8")
        return page


def _apart(feature: FeatureDrift | None) -> dict[str, Any] | None:
    """The verdict on the label or prediction column, as the report shows it beside the
    inputs' share; `rows`: the window's values it rests on (0: no label came)."""
    if feature is None:
        return None
    return {
        "column": feature.name,
        "rows": feature.current_rows,
        "drifted": feature.drifted,
        "method": feature.method,
        "q_value": _clean(feature.q_value),
        "effect": feature.effect,
        "effect_value": _clean(feature.effect_value),
        "effect_threshold": _clean(feature.effect_threshold),
    }


def _clean_list(values: Any) -> Any:
    return [_clean(v) for v in values] if isinstance(values, list) else _clean(values)


def _clean(value: Any) -> Any:
    """JSON-safe: NaN and infinities become None, numpy scalars Python ones."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
