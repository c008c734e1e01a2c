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
The statistics themselves are in `loopml.domain.drift_statistics` and
`loopml.domain.text_drift`; what each column kind does with them (summary, test, decision,
chart) is its method in `loopml.monitoring.drift_methods`, which this module asks instead of
telling kinds apart.

The drift share counts the model's inputs: `compare(..., label="churned", prediction="prediction")`
compares those two columns too but reports them apart (`label_drift`, `prediction_drift`).
`compare(..., importance={"tenure": 0.8, ...})` (the model's importance per input) gives
`weighted_drift`, the share of that importance on the drifted inputs; without it every input
weighs the same and it equals the drift share (`loopml.domain.importance`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa

from loopml.domain import drift_statistics as stats
from loopml.domain import importance as importance_stats
from loopml.errors import InvalidInput
from loopml.monitoring.column_kinds import CATEGORICAL, NUMERIC, TEXT
from loopml.monitoring.drift_methods import kind_of, method_for
from loopml.monitoring.drift_methods.base import DriftMethod, Evidence, Thresholds
from loopml.monitoring.drift_report import SCHEMA_VERSION, DriftReport, FeatureDrift

__all__ = [
    "DriftReport",
    "FeatureDrift",
    "Reference",
    "Thresholds",
    "compare",
    "compare_batches",
    "summarize",
]

_T = TypeVar("_T")


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
        for name, column in data.get("columns", {}).items():
            kinds[name] = column["kind"]
            summaries[name] = method_for(column["kind"]).read(column)
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
    summaries = _parallel(lambda name: method_for(kinds[name]).summarize(table[name]), names)
    return Reference(kinds, dict(zip(names, summaries, strict=True)))


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
    if not isinstance(reference, Reference):
        reference = summarize(reference, columns=columns, categorical=categorical, text=text)
    table = _table(current, "current")
    names = [n for n in (columns or list(reference.kinds)) if n in reference.kinds]
    _check_shared(table, names)
    counted = _count(reference, names, table)
    return _report(reference, names, counted, rows=table.num_rows, thresholds=thresholds,
                   label=label, prediction=prediction, importance=importance)  # fmt: skip


def compare_batches(
    reference: Reference,
    batches: Iterable[Any],
    *,
    columns: Sequence[str] | None = None,
    thresholds: Thresholds | None = None,
    label: str | None = None,
    prediction: str | None = None,
    importance: Mapping[str, float] | None = None,
) -> DriftReport:
    """`compare` of current data too large to hold at once: `batches` (Arrow record batches or
    tables, or DataFrames, such as `pyarrow.dataset.dataset(path).to_batches()`) are counted one
    at a time and folded into the summaries the tests compare (bin, category and token counts,
    moments), so memory holds one batch and the counts. The report is the one `compare` gives
    for all the batches as one table."""
    if not isinstance(reference, Reference):
        raise InvalidInput(
            f"compare_batches takes a Reference, not a {type(reference).__name__}.",
            "Summarise the reference once: loopml.monitoring.summarize(reference_df).",
        )
    names = [n for n in (columns or list(reference.kinds)) if n in reference.kinds]
    counts = DriftCounts(reference)
    for batch in batches:
        table = _table(pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch)
                       else batch, "current")  # fmt: skip
        if table.num_rows:
            _check_shared(table, names)
            counts.add(table.select(names))
    return counts.report(names, thresholds=thresholds, label=label, prediction=prediction,
                         importance=importance)  # fmt: skip


class DriftCounts:
    """The summaries `compare` tests, counted piece by piece (`add`) and folded, so a current
    sample of any size is compared holding one piece and the counts."""

    def __init__(self, reference: Reference) -> None:
        self.reference = reference
        self.rows = 0
        self.counted: dict[str, Any] = {}

    def add(self, table: pa.Table) -> None:
        """Count the reference's columns in `table` (one a piece lacks counts as null there)."""
        if table.num_rows == 0:
            return
        kinds = self.reference.kinds
        present = [n for n in kinds if n in table.column_names]
        absent = {n: pa.nulls(table.num_rows, _NULL_TYPES.get(kinds[n], pa.string()))
                  for n in kinds if n in self.counted and n not in table.column_names}  # fmt: skip
        if absent:
            table = table.select(present)
            for name, nulls in absent.items():
                table = table.append_column(name, nulls)
        names = [*present, *absent]
        for name, part in zip(names, _count(self.reference, names, table), strict=True):
            whole = self.counted.get(name)
            if whole is None and self.rows:  # first seen now: the pieces before held nulls
                whole = _count(self.reference, [name], _nulls(name, kinds[name], self.rows))[0]
            method = method_for(kinds[name])
            self.counted[name] = part if whole is None else method.merge(whole, part)
        self.rows += table.num_rows

    def merge(self, other: DriftCounts) -> None:
        """Another part's counts (on the same reference) into these: a column one part lacks
        counts as null in its rows, as `add` counts it."""
        kinds = self.reference.kinds
        for name in [*self.counted, *(n for n in other.counted if n not in self.counted)]:
            mine, theirs = self.counted.get(name), other.counted.get(name)
            if mine is None and self.rows:
                mine = _count(self.reference, [name], _nulls(name, kinds[name], self.rows))[0]
            if theirs is None and other.rows:
                theirs = _count(self.reference, [name], _nulls(name, kinds[name], other.rows))[0]
            both = [part for part in (mine, theirs) if part is not None]
            self.counted[name] = both[0] if len(both) == 1 else method_for(kinds[name]).merge(*both)
        self.rows += other.rows

    def state(self) -> dict[str, Any]:
        counted = {name: part.to_dict() for name, part in self.counted.items()}
        return {"rows": self.rows, "counted": counted}

    @classmethod
    def from_state(cls, reference: Reference, state: Mapping[str, Any]) -> DriftCounts:
        made = cls(reference)
        made.rows = int(state["rows"])
        for name, part in state["counted"].items():
            made.counted[name] = method_for(reference.kinds[name]).read(part)
        return made

    def report(
        self,
        columns: Sequence[str],
        *,
        thresholds: Thresholds | None = None,
        label: str | None = None,
        prediction: str | None = None,
        importance: Mapping[str, float] | None = None,
    ) -> DriftReport:
        """The drift report of every piece counted, on `columns`."""
        if self.rows == 0:
            raise InvalidInput(
                "The current data has no rows.", "Compare a window that holds some rows."
            )
        names = [name for name in columns if name in self.counted]
        counted = [self.counted[name] for name in names]
        return _report(self.reference, names, counted, rows=self.rows, thresholds=thresholds,
                       label=label, prediction=prediction, importance=importance)  # fmt: skip


_NULL_TYPES = {NUMERIC: pa.float64()}


def _nulls(name: str, kind: str, rows: int) -> pa.Table:
    return pa.table({name: pa.nulls(rows, _NULL_TYPES.get(kind, pa.string()))})


def _count(reference: Reference, names: list[str], table: pa.Table) -> list[Any]:
    """Each column of `table` counted on the terms of its reference summary."""
    chosen = {name: method_for(reference.kinds[name]) for name in names}
    for name in names:
        chosen[name].check(name, table.schema.field(name).type)
    return _parallel(lambda name: chosen[name].count(reference.summaries[name], table[name]), names)


def _report(
    reference: Reference,
    names: list[str],
    counted: list[Any],
    *,
    rows: int,
    thresholds: Thresholds | None,
    label: str | None,
    prediction: str | None,
    importance: Mapping[str, float] | None,
) -> DriftReport:
    """Every column's test and decision on its counts, and the whole table's verdict."""
    limits = thresholds or Thresholds()
    chosen = {name: method_for(reference.kinds[name]) for name in names}
    weights = _check_roles(names, label, prediction, importance)
    pairs = [(reference.summaries[name], found) for name, found in zip(names, counted, strict=True)]
    evidence = [chosen[name].test(*pair) for name, pair in zip(names, pairs, strict=True)]
    p_values = np.array([e.p_value if e.p_value is not None else np.nan for e in evidence])
    q_values = stats.benjamini_hochberg(p_values)
    features = {
        name: _feature(name, chosen[name], pair, found, q_value=float(q), limits=limits)
        for name, pair, found, q in zip(names, pairs, evidence, q_values, strict=True)
    }
    reference_rows = max((_rows(reference.summaries[n]) for n in names), default=0)
    source = importance_stats.MODEL if weights else importance_stats.EQUAL
    return DriftReport(features, limits, reference_rows, rows, label, prediction, weights, source)


def _feature(
    name: str,
    method: DriftMethod,
    pair: tuple[Any, Any],
    evidence: Evidence,
    *,
    q_value: float,
    limits: Thresholds,
) -> FeatureDrift:
    """One column's verdict: its method's decision on the test, and its chart."""
    reference, current = pair
    decision = method.decide(evidence, q_value, limits)
    return FeatureDrift(
        name,
        method.kind,
        decision.drifted,
        evidence.method,
        evidence.p_value,
        None if math.isnan(q_value) else q_value,
        decision.effect,
        decision.value,
        decision.threshold,
        evidence.statistics,
        reference.rows,
        current.rows,
        list(decision.findings),
        method.chart(reference, current),
    )


def _check_shared(table: pa.Table, names: list[str]) -> None:
    """InvalidInput unless the current data has rows and every compared column."""
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


def _rows(summary: Any) -> int:
    return int(summary.rows + getattr(summary, "nulls", 0))


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
    """Each column's kind: as declared (`categorical=`, `text=`), else the first method's that
    claims it."""
    kinds = {}
    for name in names:
        if name in categorical:
            kinds[name] = CATEGORICAL
        elif name in text:
            kinds[name] = TEXT
        else:
            found = kind_of(table[name])
            if found is None:
                raise InvalidInput(
                    f"Column {name!r} has type {table.schema.field(name).type}, which drift "
                    "checks do not read.",
                    "Pass numbers, text, booleans or categories, or leave the column out.",
                )
            kinds[name] = found
    return kinds


def _parallel(work: Callable[[str], _T], names: list[str]) -> list[_T]:
    """`work(name)` for each column, on a few threads (Arrow and numpy release the GIL)."""
    if len(names) < 2:
        return [work(name) for name in names]
    return list(_pool().map(work, names))


@functools.cache
def _pool() -> ThreadPoolExecutor:
    """One pool for every piece of every window (starting threads per piece costs more than
    counting a small piece)."""
    return ThreadPoolExecutor(max_workers=4, thread_name_prefix="loopml-drift")
