"""The gate's data checks as policy: thresholds, their written form, and their verdicts.

A check is written as people write it, one per `--check`:

    missing <= 0.01      no input column may lack more than 1% of its values (default 0.05)
    duplicates <= 0.1    at most 10% of the rows may repeat an earlier row exactly
                         (default: none, the share is reported and blocks nothing)
    labelled >= 200      at least 200 labelled rows (default 30)

`missing` and `duplicates` are shares between 0 and 1; `labelled` is a count of rows. Real data
with coded categories repeats rows by chance (2.6% of a 600-row holdout, 7.9% of 3,000 rows), so
duplicates only block when asked to. `DataChecks.to_texts()` and `parse_checks(texts)` carry a
policy as a list of strings (what a loop stores) and back.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

from loopml.errors import InvalidInput

CHECK_HINT = (
    'Write CHECK OP NUMBER, e.g. --check "missing <= 0.01", --check "duplicates <= 0.1" or '
    '--check "labelled >= 200": missing and duplicates take a share between 0 and 1 with <=, '
    "labelled a whole number of rows with >=."
)
NOT_BLOCKING = "reported, not blocking; set --check duplicates<=X to block"
"""The detail of the duplicates check when no threshold was set."""

_FORM = re.compile(r"^\s*(?P<name>[A-Za-z_]\w*)\s*(?P<op>[<>=!]=?)\s*(?P<number>\S+)\s*$")
_SHARES = {"missing": "max_missing", "duplicates": "max_duplicates"}
_COUNTS = {"labelled": "min_labelled", "labeled": "min_labelled"}


@dataclass(frozen=True)
class DataChecks:
    """The thresholds of the gate's data checks; `None` duplicates: reported, not blocking."""

    max_missing: float = 0.05
    """The largest share of missing values allowed in any one input column."""
    max_duplicates: float | None = None
    """The largest share of rows that may repeat an earlier row exactly; None: no limit."""
    min_labelled: int = 30
    """The fewest labelled rows the gate decides on."""

    def __post_init__(self) -> None:
        for name, value in (("missing", self.max_missing), ("duplicates", self.max_duplicates)):
            if value is not None:
                _check_share(f"{name} <= {value!r}", value)
        _check_count(f"labelled >= {self.min_labelled!r}", self.min_labelled)

    def to_texts(self) -> list[str]:
        """The checks that differ from the defaults, written as `parse_checks` reads them
        (an empty list: the defaults)."""
        default = DataChecks()
        texts = []
        if self.max_missing != default.max_missing:
            texts.append(f"missing <= {self.max_missing!r}")
        if self.max_duplicates is not None:
            texts.append(f"duplicates <= {self.max_duplicates!r}")
        if self.min_labelled != default.min_labelled:
            texts.append(f"labelled >= {self.min_labelled}")
        return texts


@dataclass(frozen=True)
class DataFacts:
    """What was measured on the labelled rows the gate scores."""

    rows: int
    """Labelled rows."""
    missing_share: float
    """The largest share of missing values in one input column (0 without inputs)."""
    duplicate_share: float
    """The share of rows that repeat an earlier row exactly."""
    worst_column: str | None = None
    """The input column with the largest missing share, when one lacks any value."""


@dataclass(frozen=True)
class CheckOutcome:
    """One data check applied: its key (`duplicates`), its title (`duplicate rows`), whether it
    held, the value measured, the threshold (None: reported, not blocking) and a detail."""

    check: str
    title: str
    ok: bool
    value: float
    op: str
    threshold: float | None
    detail: str

    @property
    def row(self) -> tuple[str, bool, str]:
        """(title, ok, detail), as a gate result lists its checks."""
        return self.title, self.ok, self.detail


def parse_check(text: str) -> tuple[str, float | int]:
    """(the `DataChecks` field, its threshold) that one check `text` sets, or InvalidInput."""
    match = _FORM.match(text)
    if match is None:
        raise InvalidInput(f"The data check {text!r} cannot be read.", CHECK_HINT)
    name, op = match["name"].lower(), match["op"]
    if name not in _SHARES and name not in _COUNTS:
        raise InvalidInput(
            f"The data check {text!r} names {match['name']!r}, which the gate does not check.",
            f"Use one of: duplicates, labelled, missing. {CHECK_HINT}",
        )
    wanted = "<=" if name in _SHARES else ">="
    if op != wanted:
        raise InvalidInput(
            f"The data check {text!r} uses {op!r}, but {name} takes {wanted}.",
            f'Write e.g. "{name} {wanted} {match["number"]}".',
        )
    try:
        number = float(match["number"])
    except ValueError:
        raise InvalidInput(
            f"The data check {text!r} sets {match['number']!r}, which is not a number.",
            CHECK_HINT,
        ) from None
    if name in _SHARES:
        _check_share(text, number)
        return _SHARES[name], number
    _check_count(text, number)
    return _COUNTS[name], int(number)


def parse_checks(texts: Iterable[str]) -> DataChecks:
    """The defaults changed by every check in `texts` (each check at most once)."""
    changes: dict[str, float | int] = {}
    for text in texts:
        field, value = parse_check(text)
        if field in changes:
            raise InvalidInput(
                f"The data check {text!r} sets {field.split('_')[1]} a second time.",
                "Give each check once.",
            )
        changes[field] = value
    default = DataChecks()
    duplicates = changes.get("max_duplicates")
    return DataChecks(
        max_missing=float(changes.get("max_missing", default.max_missing)),
        max_duplicates=None if duplicates is None else float(duplicates),
        min_labelled=int(changes.get("min_labelled", default.min_labelled)),
    )


def apply_checks(checks: DataChecks, facts: DataFacts) -> list[CheckOutcome]:
    """The three data checks on `facts`: missing values, duplicate rows, labelled rows."""
    worst = f"worst {facts.worst_column}: {facts.missing_share:.1%}"
    if facts.missing_share == 0:
        worst = "none"
    missing = CheckOutcome(
        "missing",
        "missing values in the inputs",
        facts.missing_share <= checks.max_missing,
        facts.missing_share,
        "<=",
        checks.max_missing,
        f"{worst}, limit missing <= {checks.max_missing:g}",
    )
    share = f"{facts.duplicate_share:.1%} of rows"
    limit = checks.max_duplicates
    duplicates = CheckOutcome(
        "duplicates",
        "duplicate rows",
        limit is None or facts.duplicate_share <= limit,
        facts.duplicate_share,
        "<=",
        limit,
        f"{share}; {NOT_BLOCKING}" if limit is None else f"{share}, limit duplicates <= {limit:g}",
    )
    labelled = CheckOutcome(
        "labelled",
        "labelled rows",
        facts.rows >= checks.min_labelled,
        float(facts.rows),
        ">=",
        float(checks.min_labelled),
        f"{facts.rows:,}, limit labelled >= {checks.min_labelled}",
    )
    return [missing, duplicates, labelled]


def _check_share(text: str, value: float) -> None:
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise InvalidInput(
            f"The data check {text!r} sets a share of {value:g}, outside 0..1.",
            'Write the share as a fraction between 0 and 1, e.g. "duplicates <= 0.05" for 5%.',
        )


def _check_count(text: str, value: float) -> None:
    if not (math.isfinite(value) and value >= 0 and value == int(value)):
        raise InvalidInput(
            f"The data check {text!r} sets {value:g} labelled rows; a count of rows is a whole "
            "number, 0 or more.",
            'Write e.g. "labelled >= 200".',
        )
