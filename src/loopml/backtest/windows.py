"""The replayed data of a backtest: the base rows and the history in time order, cut into
windows, and what is measured on them (each model's predictions, kept once per window; scores;
paired comparisons; the training table and the labelled rows a recipe takes)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from loopml.backtest.results import MIN_HOLDOUT
from loopml.backtest.trainer import TrainedModel
from loopml.domain.loop_decisions import training_weights
from loopml.domain.loops import LoopSpec
from loopml.domain.train_data import TrainData
from loopml.errors import InvalidInput
from loopml.loops import LOWER_IS_BETTER


@dataclass
class ReplayTable:
    """The rows a backtest replays, in windows, with the measures taken on them."""

    bases: Any
    """Base rows (the reference and any named dataset), in the columns the pipeline trains on."""
    table: Any
    """The replayed rows in time order, in the same columns."""
    times: np.ndarray
    bounds: list[tuple[int, int]]
    """(first row, row after the last) of each window."""
    columns: list[str]
    label: str
    metric: str
    confidence: float
    recipe: TrainData
    weight_column: str
    _predictions: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)

    @classmethod
    def prepare(
        cls,
        spec: LoopSpec,
        *,
        reference: Any,
        extra_bases: list[Any],
        table: Any,
        time_column: str,
        window: int,
    ) -> ReplayTable:
        import pandas as pd

        label = spec.label or ""
        for name, frame in (("data", table), ("reference", reference)):
            if label not in frame.columns:
                raise InvalidInput(
                    f"The {name} has no label column {label!r} (it has: "
                    f"{', '.join(map(str, frame.columns))}).",
                    "Name the label column with --label.",
                )
        if time_column not in table.columns:
            raise InvalidInput(
                f"The data has no time column {time_column!r}.",
                "Name the column that says when each row happened with --time-column.",
            )
        columns = [c for c in reference.columns if c != time_column]
        missing = [c for c in columns if c not in table.columns]
        if missing:
            raise InvalidInput(
                f"The data lacks the reference's columns {missing}.",
                "The reference and the replayed data must have the same columns.",
            )
        if spec.data.weighted and spec.weight_column in table.columns:
            raise InvalidInput(
                f"The weight column {spec.weight_column!r} is already a column of the data.",
                "Name another with --weight-column.",
            )
        times = _times_us(table[time_column], time_column)
        order = np.argsort(times, kind="stable")
        ordered = table.iloc[order].reset_index(drop=True)[columns]
        times = times[order]
        n = len(ordered)
        bounds = [(start, min(start + window, n)) for start in range(0, n, window)]
        if len(bounds) and bounds[-1][1] - bounds[-1][0] < MIN_HOLDOUT:
            bounds = bounds[:-1]
        if len(bounds) < 2:
            raise InvalidInput(
                f"The data's {n} rows make {len(bounds)} window(s) of {window}; a backtest "
                "needs at least 2.",
                "Give a smaller --window, or more data.",
            )
        bases = pd.concat([reference[columns], *(b[columns] for b in extra_bases)])
        return cls(
            bases.reset_index(drop=True),
            ordered,
            times,
            bounds,
            columns,
            label,
            spec.watch_metric,
            spec.confidence,
            spec.data,
            spec.weight_column,
        )

    def end_us(self, w: int) -> int:
        """The time of window `w`'s last row: when the loop runs after it."""
        return int(self.times[self.bounds[w][1] - 1])

    def rows(self, first: int, last: int) -> np.ndarray:
        """Positions of the rows of windows first..last (inclusive)."""
        if last < first:
            return np.empty(0, dtype=np.int64)
        return np.arange(self.bounds[first][0], self.bounds[last][1])

    def predicted(self, model: TrainedModel, w: int) -> np.ndarray:
        key = (model.version, w)
        if key not in self._predictions:
            start, end = self.bounds[w]
            self._predictions[key] = model.predict(self.table.iloc[start:end])
        return self._predictions[key]

    def predicted_rows(self, model: TrainedModel, first: int, last: int) -> np.ndarray:
        parts = [self.predicted(model, w) for w in range(first, last + 1)]
        return np.asarray(np.concatenate(parts)) if parts else np.empty(0)

    def truth(self, first: int, last: int) -> np.ndarray:
        return np.asarray(self.table[self.label].iloc[self.rows(first, last)])

    def score(self, predicted: np.ndarray, truth: np.ndarray) -> float:
        from loopml.domain.weighted_metrics import EncodedRows

        rows = EncodedRows.encode(truth, {"m": predicted}, {"m": None}, {self.metric})
        return float(rows.value(self.metric, "m", np.ones((1, len(truth))))[0])

    def paired(self, new: np.ndarray, old: np.ndarray, truth: np.ndarray, **rule: Any) -> Any:
        from loopml.domain.paired import PairedRows, decide

        return decide(
            PairedRows(truth, new, old), metric=self.metric, confidence=self.confidence, **rule
        )

    def training(self, positions: np.ndarray) -> Any:
        """The base rows plus the replayed rows at `positions`, weighted when the recipe is."""
        import pandas as pd

        rows = self.table.iloc[positions]
        frame = pd.concat([self.bases, rows], ignore_index=True)
        if self.recipe.weighted:
            times = self.times[positions]
            frame[self.weight_column] = training_weights(
                times,
                bases=len(self.bases),
                now_us=int(times.max()) if len(times) else int(self.times[0]),
                half_life_s=self.recipe.half_life_s,
                half_life_rows=self.recipe.half_life_rows,
            )
        return frame

    def labelled(self, w: int) -> np.ndarray:
        """Positions of the labelled rows the recipe takes at the end of window `w`."""
        rows = self.rows(0, w)
        window_s = self.recipe.window_s
        if window_s is None:
            return rows
        now = self.end_us(w)
        return np.asarray(rows[self.times[rows] >= now - window_s * 1_000_000])

    @property
    def lower_is_better(self) -> bool:
        return self.metric in LOWER_IS_BETTER

    def served_worse(self, w: int, new: TrainedModel, old: TrainedModel) -> bool | None:
        """Whether `new`, taking over after window `w`, served worse over the next two windows
        than `old` would have; None when no window follows."""
        after = [v for v in (w + 1, w + 2) if v < len(self.bounds)]
        if not after:
            return None
        truth = self.truth(after[0], after[-1])
        new_score = self.score(self.predicted_rows(new, after[0], after[-1]), truth)
        old_score = self.score(self.predicted_rows(old, after[0], after[-1]), truth)
        return new_score > old_score if self.lower_is_better else new_score < old_score


def _times_us(values: Any, column: str) -> np.ndarray:
    import pandas as pd

    if pd.api.types.is_datetime64_any_dtype(values):
        since = pd.to_datetime(values, utc=True) - pd.Timestamp(0, tz="UTC")
        return np.asarray(since // pd.Timedelta(microseconds=1), dtype=np.int64)
    if pd.api.types.is_numeric_dtype(values):
        return np.asarray(np.asarray(values, dtype=float) * 1_000_000, dtype=np.int64)
    try:
        parsed = pd.to_datetime(values, utc=True)
    except (ValueError, TypeError):
        raise InvalidInput(
            f"The time column {column!r} holds neither times nor numbers.",
            "Give a column of timestamps (or seconds since 1970).",
        ) from None
    return _times_us(parsed, column)
