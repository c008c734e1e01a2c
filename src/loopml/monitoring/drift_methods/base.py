"""What a drift method is: everything a drift comparison asks of one column kind, in one class.

A method compares a reference sample of a column with a current one:

    kind        the column kind it compares (`numeric`, `categorical`, `text`), as a report and
                a stored reference name it; the log's values are read as this kind
                (`loopml.monitoring.column_kinds`)
    claims      whether a column nobody declared is of this kind (asked in registry order)
    check       InvalidInput when the current column cannot be compared with a reference of
                this kind (numbers against text)
    summarize   the reference column's summary, made once and kept as JSON (`to_dict`)
    read        a kept summary back from its JSON
    count       the current column summarised on the reference's terms (the same bins)
    test        the significance test and the statistics it reports
    decide      drifted or not, from the test's adjusted p-value and the effect size, against
                `Thresholds`; with the findings worth a look besides drift
    chart       what a report page draws for the column (`loopml.monitoring.charts` draws it)

The registry (`loopml.monitoring.drift_methods`) maps each kind to its method.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

CHART_POINTS = 100
"""Reference quantiles a numeric chart draws its CDFs at, at most."""
CHART_CATEGORIES = 12
"""Most frequent categories (tokens) a chart of shares draws."""


@dataclass(frozen=True)
class Thresholds:
    """The decision's defaults, each overridable: `compare(..., thresholds=Thresholds(...))`."""

    alpha: float = 0.05
    wasserstein: float = 0.05
    jensen_shannon: float = 0.05
    new_category_share: float = 0.01
    oov_rate: float = 0.01


@dataclass(frozen=True)
class Evidence:
    """What a method's significance test found for one column."""

    method: str
    """The test's name as the report shows it (`ks`, `chi2`, `fisher`, ...)."""
    p_value: float | None
    """Before the adjustment for the number of features; None or NaN: no evidence."""
    statistics: dict[str, Any]
    """Every number the report shows for the column, the effect sizes among them."""


@dataclass(frozen=True)
class Decision:
    """A method's verdict on one column, with the effect size it rests on."""

    drifted: bool
    effect: str
    """The effect size the decision used: `wasserstein`, `jensen_shannon`, ..."""
    value: float
    threshold: float
    findings: list[str] = field(default_factory=list)
    """Things worth a look besides drift: `new_categories:a,b`, `oov_rate:0.031`."""


class DriftMethod(Protocol):
    """How one column kind is summarised, tested, decided on and charted."""

    @property
    def kind(self) -> str: ...

    def claims(self, column: pa.ChunkedArray) -> bool:
        """Whether `column`, whose kind nobody declared, is of this kind."""
        ...

    def check(self, name: str, column_type: pa.DataType) -> None:
        """InvalidInput, naming the fix, unless a current column of `column_type` can be
        compared with a reference of this kind."""
        ...

    def summarize(self, column: pa.ChunkedArray) -> Any:
        """The reference summary of `column` (a dataclass with `rows` and `to_dict`)."""
        ...

    def read(self, stored: dict[str, Any]) -> Any:
        """A summary back from its `to_dict`."""
        ...

    def count(self, reference: Any, column: pa.ChunkedArray) -> Any:
        """The current `column` summarised on the terms of `reference`."""
        ...

    def merge(self, first: Any, second: Any) -> Any:
        """Two counts (`count`'s) of parts of a column as the count of the whole."""
        ...

    def test(self, reference: Any, current: Any) -> Evidence:
        """The significance test of `current` against `reference`, and the statistics."""
        ...

    def decide(self, evidence: Evidence, q_value: float, limits: Thresholds) -> Decision:
        """Drifted or not, from the test and its p-value adjusted for the number of features
        (`q_value`, NaN when the test had no evidence)."""
        ...

    def chart(self, reference: Any, current: Any) -> dict[str, Any]:
        """What a report page draws for the column ({} for nothing)."""
        ...


def significant(q_value: float, limits: Thresholds) -> bool:
    """Whether the adjusted p-value is at most `alpha` (NaN: no evidence, not significant)."""
    return not math.isnan(q_value) and q_value <= limits.alpha


def shares_chart(labels: Any, reference: Any, current: Any) -> dict[str, Any]:
    """The shares of the `CHART_CATEGORIES` most frequent labels on either side, from counts
    aligned on `labels`."""
    ref_share = reference / max(reference.sum(), 1)
    cur_share = current / max(current.sum(), 1)
    top = np.argsort(-(ref_share + cur_share), kind="stable")[:CHART_CATEGORIES]
    return {
        "categories": [str(labels[i]) for i in top],
        "reference_share": ref_share[top].tolist(),
        "current_share": cur_share[top].tolist(),
    }


def is_number(column_type: pa.DataType) -> bool:
    return bool(
        pa.types.is_integer(column_type)
        or pa.types.is_floating(column_type)
        or pa.types.is_decimal(column_type)
    )


def is_text(column_type: pa.DataType) -> bool:
    return bool(pa.types.is_string(column_type) or pa.types.is_large_string(column_type))
