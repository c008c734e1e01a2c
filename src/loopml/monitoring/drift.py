"""Drift between a reference sample and a current one, per feature and for the whole table.

`compare(reference, current)` takes two DataFrames (pandas or Arrow), or a `Reference` made once by
`summarize(reference_df)` and kept (it is plain JSON: `Reference.to_dict()`), so a reference is
never re-read per window.

Column kinds: numbers are numeric; booleans, and text whose values are mostly one or two words,
are categorical; longer text is text. Pass `categorical=` or `text=` to say otherwise.

Decision rule (defaults in `Thresholds`):
- numeric: Kolmogorov-Smirnov p-value, adjusted for the number of features tested
  (Benjamini-Hochberg), at most `alpha` (0.05), **and** Wasserstein distance over the reference
  standard deviation at least `wasserstein` (0.05, a twentieth of the reference spread);
- categorical: chi-square homogeneity p-value (Fisher's exact test for two levels), adjusted
  likewise, at most `alpha`, **and** Jensen-Shannon distance at least `jensen_shannon` (0.05)
  and above its noise floor for these sample sizes and cardinality;
- text: out-of-vocabulary token rate above what a window drawn from the reference would show
  (a one-sided test against the Good-Turing estimate of the words a reference of this size
  misses; p-value adjusted likewise, at most `alpha`) **and** at least `oov_rate` (0.01); or
  Jensen-Shannon distance of token frequencies at least `jensen_shannon` and above its noise
  floor.
The significance test keeps small windows honest (no flags from noise); the effect size keeps
large ones relevant (a million rows make any tiny shift significant; it is not drift unless it
is big enough to matter). Categories the reference never had are reported by name with their
share of rows, and raised as a finding from `new_category_share` (1%) of rows.
PSI (reference deciles for numbers; categories for categoricals) is reported, not decided on.
The statistics themselves are in `loopml.domain.drift` and `loopml.domain.text_drift`.

The drift share counts the model's inputs: `compare(..., label="churned", prediction="prediction")`
compares those two columns too but reports them apart (`label_drift`, `prediction_drift`).
`compare(..., importance={"tenure": 0.8, ...})` (the model's importance per input) gives
`weighted_drift`, the share of that importance on the drifted inputs; without it every input
weighs the same and it equals the drift share (`loopml.domain.importance`).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from loopml.domain import drift as stats
from loopml.domain import importance as importance_stats
from loopml.domain import text_drift as text_stats
from loopml.errors import InvalidInput

SCHEMA_VERSION = 1
TOKEN_PATTERN = r"[^\w]+"
"""Text is lower-cased and split on runs of non-word characters."""
MAX_VOCABULARY = 50_000
"""Most frequent reference tokens kept as the vocabulary."""
TEXT_WORDS = 3.0
"""Text columns whose values have at least this many words on average are `text`."""


@dataclass(frozen=True)
class Thresholds:
    alpha: float = 0.05
    wasserstein: float = 0.05
    jensen_shannon: float = 0.05
    new_category_share: float = 0.01
    oov_rate: float = 0.01


# -- the reference --------------------------------------------------------------------------


@dataclass(frozen=True)
class Reference:
    """A reference sample summarised once, per column: kind and counts."""

    kinds: dict[str, str]
    summaries: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "columns": {
                name: {"kind": kind, **self.summaries[name].to_dict()}
                for name, kind in self.kinds.items()
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Reference:
        kinds, summaries = {}, {}
        readers = {
            "numeric": stats.NumericSummary.from_dict,
            "categorical": stats.CategorySummary.from_dict,
            "text": text_stats.TokenSummary.from_dict,
        }
        for name, column in data.get("columns", {}).items():
            kinds[name] = column["kind"]
            summaries[name] = readers[column["kind"]](column)
        return cls(kinds, summaries)


def summarize(
    frame: Any,
    *,
    columns: Sequence[str] | None = None,
    categorical: Iterable[str] = (),
    text: Iterable[str] = (),
) -> Reference:
    """The reference summary of `frame` (pandas or Arrow)."""
    table = _table(frame, "reference")
    names = _columns(table, columns)
    kinds = _kinds(table, names, set(categorical), set(text))
    summaries = _parallel(lambda name: _summarize(table[name], kinds[name]), names)
    return Reference(kinds, dict(zip(names, summaries, strict=True)))


def _summarize(column: pa.ChunkedArray, kind: str) -> Any:
    if kind == "numeric":
        return stats.summarize_numeric(_floats(column))
    if kind == "categorical":
        return _category_counts(column)
    return _token_counts(column, MAX_VOCABULARY)


def _count(reference: Any, column: pa.ChunkedArray, kind: str) -> Any:
    if kind == "numeric":
        return stats.count_numeric(reference, _floats(column))
    if kind == "categorical":
        return _category_counts(column)
    return _token_counts(column, None)


# -- the report -----------------------------------------------------------------------------


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


# -- compare --------------------------------------------------------------------------------


def compare(
    reference: Any,
    current: Any,
    *,
    columns: Sequence[str] | None = None,
    categorical: Iterable[str] = (),
    text: Iterable[str] = (),
    thresholds: Thresholds | None = None,
    label: str | None = None,
    prediction: str | None = None,
    importance: Mapping[str, float] | None = None,
) -> DriftReport:
    """Drift of every shared column of `current` against `reference` (a DataFrame, an Arrow
    table, or a `Reference` from `summarize`). `label` and `prediction` name columns that are
    not model inputs: compared, reported apart, left out of the drift share. `importance` (the
    model's, per input) weighs the inputs in `weighted_drift`; without it they weigh the same."""
    limits = thresholds or Thresholds()
    if not isinstance(reference, Reference):
        reference = summarize(reference, columns=columns, categorical=categorical, text=text)
    table = _table(current, "current")
    names = [n for n in (columns or list(reference.kinds)) if n in reference.kinds]
    missing = [n for n in names if n not in table.column_names]
    if missing:
        raise InvalidInput(
            f"The current data lacks the reference's columns {missing}.",
            "Pass the same columns as the reference, or choose some with columns=[...].",
        )
    if not names:
        raise InvalidInput(
            "The reference and the current data share no column.",
            "Compare frames with the same column names.",
        )
    if table.num_rows == 0:
        raise InvalidInput(
            "The current data has no rows.", "Compare a window that holds some rows."
        )
    _check_types(reference, table, names)
    weights = _check_roles(names, label, prediction, importance)
    counted = _parallel(
        lambda name: _count(reference.summaries[name], table[name], reference.kinds[name]), names
    )
    results = {
        name: _test(reference.kinds[name], reference.summaries[name], current_summary)
        for name, current_summary in zip(names, counted, strict=True)
    }
    p_values = np.array([r[1] if r[1] is not None else np.nan for r in results.values()])
    q_values = stats.benjamini_hochberg(p_values)
    features = {
        name: dataclasses.replace(
            _decide(name, reference.kinds[name], result, q, limits),
            chart=_chart(reference.kinds[name], reference.summaries[name], current_summary),
        )
        for (name, result), q, current_summary in zip(
            results.items(), q_values, counted, strict=True
        )
    }
    reference_rows = max((_rows(reference.summaries[n]) for n in names), default=0)
    source = importance_stats.MODEL if weights else importance_stats.EQUAL
    return DriftReport(
        features, limits, reference_rows, table.num_rows, label, prediction, weights, source
    )


def _check_roles(
    names: list[str],
    label: str | None,
    prediction: str | None,
    importance: Mapping[str, float] | None,
) -> dict[str, float]:
    """The importance weights, once the label and prediction columns are known to be among
    the compared ones and the weights are magnitudes."""
    for role, name in (("label", label), ("prediction", prediction)):
        if name is not None and name not in names:
            raise InvalidInput(
                f"The {role} column {name!r} is not among the compared columns {names}.",
                f"Name one of them as {role}=, or leave {role}= out.",
            )
    weights = {str(k): float(v) for k, v in (importance or {}).items()}
    bad = {k: v for k, v in weights.items() if not (math.isfinite(v) and v >= 0)}
    if bad:
        raise InvalidInput(
            f"Importances must be finite and not negative; got {bad}.",
            "Pass magnitudes, e.g. abs(model.coef_) or model.feature_importances_.",
        )
    return weights


def _check_types(reference: Reference, table: pa.Table, names: list[str]) -> None:
    for name in names:
        column_type = table.schema.field(name).type
        if reference.kinds[name] == "numeric" and not (
            _is_number(column_type) or pa.types.is_null(column_type)
        ):
            raise InvalidInput(
                f"Column {name!r} is numeric in the reference but "
                f"{_describe(column_type)} in the current data.",
                "Convert it to numbers first, or compare it as categorical=[...] on both sides.",
            )


CHART_POINTS = 100
CHART_CATEGORIES = 12


def _chart(kind: str, reference: Any, current: Any) -> dict[str, Any]:
    if kind == "numeric":
        if reference.rows == 0 or current.rows == 0 or reference.edges.size == 0:
            return {}
        at = np.unique(np.linspace(0, reference.edges.size - 1, CHART_POINTS).round().astype(int))
        ref_cdf = np.cumsum(reference.counts)[:-1][at] / reference.rows
        cur_cdf = np.cumsum(current.counts)[:-1][at] / current.rows
        return {
            "x": reference.edges[at].tolist(),
            "reference_cdf": ref_cdf.tolist(),
            "current_cdf": cur_cdf.tolist(),
        }
    if kind == "categorical":
        labels, ref, cur = stats.aligned_counts(reference, current)
    else:
        labels, ref, cur = stats.align(
            reference.tokens, reference.counts, current.tokens, current.counts
        )
    ref_share = ref / max(ref.sum(), 1)
    cur_share = cur / max(cur.sum(), 1)
    top = np.argsort(-(ref_share + cur_share), kind="stable")[:CHART_CATEGORIES]
    return {
        "categories": [str(labels[i]) for i in top],
        "reference_share": ref_share[top].tolist(),
        "current_share": cur_share[top].tolist(),
    }


def _rows(summary: Any) -> int:
    return int(summary.rows + getattr(summary, "nulls", 0))


_Result = tuple[str, float | None, dict[str, Any], int, int]
"""(method, p-value, statistics, reference rows, current rows)"""


def _test(kind: str, reference: Any, current: Any) -> _Result:
    if kind == "numeric":
        numeric = stats.numeric_drift(reference, current)
        values = {
            "ks_statistic": numeric.ks_statistic,
            "wasserstein": numeric.wasserstein,
            "psi": numeric.psi,
            "reference_mean": reference.mean,
            "current_mean": current.mean,
            "reference_nulls": reference.nulls,
            "current_nulls": current.nulls,
        }
        return "ks", numeric.p_value, values, reference.rows, current.rows
    if kind == "categorical":
        category = stats.category_drift(reference, current)
        values = {
            "chi2": category.chi2,
            "degrees_of_freedom": category.degrees_of_freedom,
            "jensen_shannon": category.js_distance,
            "jensen_shannon_noise_floor": category.js_noise_floor,
            "psi": category.psi,
            "new_categories": category.new_categories,
            "reference_nulls": reference.nulls,
            "current_nulls": current.nulls,
        }
        return category.test, category.p_value, values, reference.rows, current.rows
    words = text_stats.text_drift(reference, current)
    values = {
        "oov_rate": words.oov_rate,
        "expected_oov_rate": words.expected_oov_rate,
        "jensen_shannon": words.js_distance,
        "jensen_shannon_noise_floor": words.js_noise_floor,
        "new_tokens": words.new_tokens,
    }
    return "oov+jensen_shannon", words.p_value, values, reference.rows, current.rows


def _decide(name: str, kind: str, result: _Result, q: float, limits: Thresholds) -> FeatureDrift:
    method, p_value, values, reference_rows, current_rows = result
    significant = not math.isnan(q) and q <= limits.alpha
    findings: list[str] = []
    if kind == "numeric":
        effect, threshold = "wasserstein", limits.wasserstein
        value = values["wasserstein"]
        drifted = significant and value >= threshold
    else:
        effect = "jensen_shannon"
        value = values["jensen_shannon"]
        threshold = max(limits.jensen_shannon, values["jensen_shannon_noise_floor"])
        if kind == "categorical":
            drifted = significant and value >= threshold
            new = values["new_categories"]
            common = [k for k, v in new.items() if v >= limits.new_category_share]
            if common:
                findings.append("new_categories:" + ",".join(common))
        else:
            oov = values["oov_rate"]
            new_words = significant and oov >= limits.oov_rate  # NaN compares False
            drifted = new_words or value >= threshold
            if new_words:
                findings.append(f"oov_rate:{oov:.4f}")
    return FeatureDrift(
        name,
        kind,
        bool(drifted),
        method,
        p_value,
        None if math.isnan(q) else float(q),
        effect,
        float(value),
        float(threshold),
        values,
        reference_rows,
        current_rows,
        findings,
    )


# -- reading columns ------------------------------------------------------------------------


def _table(frame: Any, side: str) -> pa.Table:
    if isinstance(frame, pa.Table):
        return frame
    if hasattr(frame, "columns") and hasattr(frame, "dtypes"):
        try:
            return pa.Table.from_pandas(frame, preserve_index=False)
        except (pa.ArrowException, TypeError, ValueError) as exc:
            raise InvalidInput(
                f"The {side} data frame has a column Arrow cannot read: {exc}",
                "Give each column one type (numbers, text or booleans).",
            ) from None
    raise InvalidInput(
        f"The {side} data is a {type(frame).__name__}, not a data frame.",
        "Pass a pandas DataFrame or a pyarrow Table.",
    )


def _columns(table: pa.Table, columns: Sequence[str] | None) -> list[str]:
    names = list(columns) if columns is not None else list(table.column_names)
    unknown = [n for n in names if n not in table.column_names]
    if unknown:
        raise InvalidInput(
            f"The reference has no columns {unknown}.",
            f"Choose among: {', '.join(table.column_names)}.",
        )
    if table.num_rows == 0:
        raise InvalidInput("The reference has no rows.", "Summarise a sample with rows in it.")
    return names


def _kinds(
    table: pa.Table, names: list[str], categorical: set[str], text: set[str]
) -> dict[str, str]:
    kinds = {}
    for name in names:
        column_type = table.schema.field(name).type
        if name in categorical:
            kinds[name] = "categorical"
        elif name in text:
            kinds[name] = "text"
        elif _is_number(column_type):
            kinds[name] = "numeric"
        elif _is_text(column_type):
            kinds[name] = "text" if _wordy(table[name]) else "categorical"
        elif pa.types.is_boolean(column_type) or pa.types.is_dictionary(column_type):
            kinds[name] = "categorical"
        else:
            raise InvalidInput(
                f"Column {name!r} has type {column_type}, which drift checks do not read.",
                "Pass numbers, text, booleans or categories, or leave the column out.",
            )
    return kinds


def _describe(column_type: pa.DataType) -> str:
    if _is_text(column_type):
        return "text"
    if pa.types.is_boolean(column_type):
        return "booleans"
    if pa.types.is_temporal(column_type):
        return "dates or times"
    return str(column_type)


def _is_number(column_type: pa.DataType) -> bool:
    return bool(
        pa.types.is_integer(column_type)
        or pa.types.is_floating(column_type)
        or pa.types.is_decimal(column_type)
    )


def _is_text(column_type: pa.DataType) -> bool:
    return bool(pa.types.is_string(column_type) or pa.types.is_large_string(column_type))


def _wordy(column: pa.ChunkedArray, sample: int = 2_000) -> bool:
    head = column.slice(0, sample).drop_null()
    if len(head) == 0:
        return False
    words = pc.list_value_length(pc.split_pattern_regex(pc.utf8_trim_whitespace(head), r"\s+"))
    return float(pc.mean(words).as_py() or 0.0) >= TEXT_WORDS


def _floats(column: pa.ChunkedArray) -> Any:
    if pa.types.is_decimal(column.type):
        column = column.cast(pa.float64())
    return column.to_numpy().astype(np.float64, copy=False)


def _category_counts(column: pa.ChunkedArray) -> stats.CategorySummary:
    nulls = column.null_count
    values = column.drop_null()
    if pa.types.is_dictionary(values.type):
        values = values.cast(values.type.value_type)
    if not _is_text(values.type):
        values = values.cast(pa.string())
    counted = pc.value_counts(values)
    labels = counted.field("values").to_numpy(zero_copy_only=False)
    counts = counted.field("counts").to_numpy()
    return stats.summarize_categories(labels, counts, nulls)


def _token_counts(column: pa.ChunkedArray, keep: int | None) -> text_stats.TokenSummary:
    values = column.drop_null()
    if not _is_text(values.type):
        values = values.cast(pa.string())
    tokens = pc.list_flatten(pc.split_pattern_regex(pc.utf8_lower(values), TOKEN_PATTERN))
    tokens = tokens.filter(pc.not_equal(pc.utf8_length(tokens), 0))
    counted = pc.value_counts(tokens)
    labels = counted.field("values").to_numpy(zero_copy_only=False)
    counts = counted.field("counts").to_numpy()
    return text_stats.summarize_tokens(labels, counts, len(values), keep)


def _parallel(work: Any, names: list[str]) -> list[Any]:
    """`work(name)` for each column, on a few threads (Arrow and numpy release the GIL)."""
    if len(names) < 2:
        return [work(name) for name in names]
    with ThreadPoolExecutor(max_workers=min(4, len(names))) as pool:
        return list(pool.map(work, names))
