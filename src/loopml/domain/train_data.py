"""The training data recipe of a retrain policy, as people write it: base tables plus labelled
predictions, all of them or a sliding window, optionally weighted by recency.

    "reference + all labelled predictions"                      (cumulative)
    "churn@12 + labelled predictions of the last 30d"           (sliding)
    "reference + all labelled predictions, half-life 14d"       (recency-weighted)
    "reference + all labelled predictions, half-life 4000 rows" (by rows)

The labelled predictions term is required: its rows are split into the rows the challenger
trains on and the holdout both models are scored on, which the challenger never saw: the
newest rows by default (`holdout_mode="time"`, the closest thing to the future), a seeded
random share on request. A recency-weighted recipe hands the pipeline a weight column
(`weight_column`) halving with every half-life of a row's age, in time or in the labelled rows
served after it; base rows count as old as the oldest labelled row.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from loopml.domain.durations import format_duration, parse_duration
from loopml.domain.refs import NAME_RE
from loopml.errors import InvalidInput


@dataclass(frozen=True)
class TrainData:
    """The training data recipe: base tables plus labelled rows (all of them, or those of a
    sliding window), optionally weighted by recency."""

    bases: tuple[str, ...]
    """`reference` (the deployment's drift monitor's reference) or `NAME@VERSION` / `NAME`."""
    window_s: int | None
    """The sliding window; None takes every labelled row (cumulative)."""
    half_life_s: int | None = None
    """Rows weigh half as much with every half-life of age; None: all weigh the same."""
    half_life_rows: int | None = None
    """Rows weigh half as much with every this many labelled rows served after them."""

    def text(self) -> str:
        recent = (
            "all labelled predictions"
            if self.window_s is None
            else f"labelled predictions of the last {format_duration(self.window_s)}"
        )
        if self.half_life_s is not None:
            recent += f", half-life {format_duration(self.half_life_s)}"
        if self.half_life_rows is not None:
            recent += f", half-life {self.half_life_rows} rows"
        return " + ".join([*self.bases, recent])

    @property
    def weighted(self) -> bool:
        return self.half_life_s is not None or self.half_life_rows is not None

    @property
    def kind(self) -> str:
        if self.weighted:
            return "recency-weighted"
        return "cumulative" if self.window_s is None else "sliding"


_RECENT = re.compile(
    r"^(?:(?P<all>all) )?labell?ed (?:predictions|rows)"
    r"(?: of the last (?P<window>[^,]+?))?(?:,? (?:with a )?half-life(?: of)? (?P<half>.+))?$"
)
_DATA_HINT = (
    'Write terms joined by +: "reference", a dataset version (churn@12) and one of "all '
    'labelled predictions", "labelled predictions of the last 30d", optionally followed by '
    '", half-life 14d" or ", half-life 4000 rows", e.g. "reference + all labelled predictions".'
)
_ROWS = re.compile(r"^(?P<rows>\d[\d,_]*) rows?$")


def parse_train_data(text: str) -> TrainData:
    bases: list[str] = []
    recents: list[TrainData] = []
    for term in (part.strip() for part in text.split("+")):
        recent = _RECENT.match(" ".join(term.lower().split()))
        if recent and bool(recent["all"]) != bool(recent["window"]):
            window = None if recent["all"] else parse_duration(recent["window"])
            recents.append(TrainData((), window, *_half_life(recent["half"])))
        elif term == "reference" or _is_dataset_ref(term):
            bases.append(term)
        else:
            raise InvalidInput(f"The training data term {term!r} cannot be read.", _DATA_HINT)
    if len(recents) != 1:
        raise InvalidInput(
            f"The training data {text!r} has {len(recents)} 'labelled predictions' terms; "
            "it needs exactly one.",
            "The labelled rows give the challenger new data and both models a fresh "
            "holdout. " + _DATA_HINT,
        )
    (found,) = recents
    return TrainData(
        tuple(dict.fromkeys(bases)), found.window_s, found.half_life_s, found.half_life_rows
    )


def _half_life(text: str | None) -> tuple[int | None, int | None]:
    """(seconds, rows) of a half-life written as a duration (14d) or rows (4000 rows)."""
    if not text:
        return None, None
    rows = _ROWS.match(text.strip())
    if rows is None:
        return parse_duration(text), None
    count = int(rows["rows"].replace(",", "").replace("_", ""))
    if count < 1:
        raise InvalidInput(f"The half-life {text!r} is not a positive number of rows.", _DATA_HINT)
    return None, count


def _is_dataset_ref(term: str) -> bool:
    name, _, version = term.partition("@")
    return bool(NAME_RE.match(name)) and (not version or version.isdigit() or version == "latest")
