"""The prediction log: the model server's writer of served rows and labels, and the reader
monitors, feedback, explanations and the CLI read it back with."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from loopml.errors import Unavailable

if TYPE_CHECKING:  # Arrow only for the prediction log's users: a list command needs none
    from collections.abc import Iterator, Sequence
    from pathlib import Path

    import pyarrow as pa

    from loopml.domain.log_upkeep import UpkeepReport

INPUT_PREFIX = "input."
"""A served row's inputs are typed columns named `input.<feature>` (a feature may share a name
with a log column); rows written before typed columns keep them as JSON text (`inputs_json`)."""
INPUTS = "input.*"
"""Among the columns a read asks for: every typed input column of the deployment."""
OUTPUT = "output"
"""A served row's output as a typed column (the model's type: integer, float, boolean or text);
null where the output is JSON text in `output_json` (rows written before typed outputs, and
outputs Arrow cannot type, such as a multi-output model's lists)."""
PROBA = "proba"
"""A served row's class probabilities as a list of floats, when the server computed them; null
where they are JSON text in `proba_json` (rows written before typed probabilities)."""


def is_typed(name: str) -> bool:
    """Whether a log column is one of the typed columns a deployment's schema registry lists:
    an input feature's, the output or the probabilities."""
    return name in (OUTPUT, PROBA) or (name.startswith(INPUT_PREFIX) and name != INPUT_PREFIX)


PIECE_ROWS = 131_072
"""Rows of the log held at once by a reader of pieces (`read_batches`), and a compacted file's
row group: small enough to skip by statistics and to keep memory flat, large enough for zstd and
for few footer entries."""


class PredictionWriter(Protocol):
    """The prediction log's writing side: the model server's served rows and the labels that
    come later, taken as Arrow tables in the log's columns and written in the background.
    Back-pressure, never loss: rows appended against room held by `reserve` are always taken;
    a taken row is never dropped (a failed write is retried)."""

    @property
    def flush_interval_s(self) -> float:
        """How long a taken row may wait before the writer tries to store it."""
        ...

    def reserve(self, rows: int) -> bool:
        """Hold room for `rows` rows, appended later with `reserved=True`; False when full."""
        ...

    def release(self, rows: int) -> None:
        """Give back room held for rows that will not be appended."""
        ...

    def append(self, rows: pa.Table, *, reserved: bool = False) -> int:
        """Queue served rows; returns how many were taken (all, when `reserved`)."""
        ...

    def append_feedback(self, rows: pa.Table, *, reserved: bool = False) -> int:
        """Queue labels (request_id, time_us, deployment, label_json); returns how many."""
        ...

    def pending_request_ids(self, deployment: str) -> set[str]:
        """Request ids of `deployment` taken and not yet written."""
        ...

    def flush(self, timeout_s: float = 10.0) -> None:
        """Write everything taken; Unavailable when the store refuses it for `timeout_s`."""
        ...

    def close(self, timeout_s: float = 10.0) -> None:
        """Flush and stop; calling it again does nothing."""
        ...

    def stats(self) -> dict[str, int]:
        """Counters: queue_depth, reserved_rows, refused_rows, invalid_rows, written_rows,
        write_errors, files_written."""
        ...


class LogChanged(Unavailable):
    """A file of the log went away while it was read in pieces (a compaction or an expiry
    ran): read it again."""


class PredictionReader(Protocol):
    """The prediction log's reading side: what monitors, feedback, explanations and the CLI
    read back."""

    def read(
        self,
        deployment: str,
        *,
        since_us: int | None = None,
        until_us: int | None = None,
        limit: int | None = None,
        columns: list[str] | None = None,
        with_feedback: bool = True,
    ) -> pa.Table:
        """Rows of `deployment` in time order (newest first with `limit`), with `label_json`
        when `with_feedback`; an unknown deployment reads as an empty table."""
        ...

    def read_batches(
        self,
        deployment: str,
        *,
        since_us: int | None = None,
        until_us: int | None = None,
        columns: list[str] | None = None,
        batch_rows: int = PIECE_ROWS,
    ) -> Iterator[pa.Table]:
        """The rows `read` gives, with `label_json`, in pieces of at most `batch_rows` rows in
        no set order (memory holds one piece); `LogChanged` when a file went away meanwhile."""
        ...

    def files_of(self, deployment: str, since_us: int, until_us: int) -> str | None:
        """A fingerprint of the files the rows of `[since_us, until_us)` and their labels are
        read from: it changes whenever a file that may hold one of them comes, goes or is
        merged, so a summary of those rows can be kept under it. None when the rows cannot be
        bounded by folder (a deployment whose requests give event times)."""
        ...

    def tail(self, deployment: str, n: int = 20) -> pa.Table:
        """The `n` newest rows of `deployment`, newest first."""
        ...

    def get(self, request_id: str, deployment: str | None = None) -> dict[str, Any] | None:
        """One served row with its latest label, or None."""
        ...

    def served_ids(self, deployment: str, request_ids: list[str]) -> set[str]:
        """Which of `request_ids` the log holds a row of, for `deployment`."""
        ...

    def export(
        self,
        deployment: str,
        path: Path,
        *,
        since_us: int | None = None,
        until_us: int | None = None,
    ) -> int:
        """Write the window's rows with `label_json` to the Parquet file `path` (whole or not
        at all), with memory bounded by an hour's rows; how many rows it holds."""
        ...


class PredictionLogUpkeep(Protocol):
    """Keeping the prediction log fast and bounded: merging each closed hour's many small files
    into one, and removing hours older than the retention."""

    def deployments(self) -> list[str]:
        """Every deployment with rows or labels in the log."""
        ...

    def compact(
        self, *, min_age_s: float, deployments: Sequence[str] | None = None, dry_run: bool = False
    ) -> UpkeepReport:
        """Merge the files of every hour that ended `min_age_s` ago or more; atomic for
        readers, and finished by the next run when interrupted."""
        ...

    def expire(
        self, *, before_us: int, deployments: Sequence[str] | None = None, dry_run: bool = False
    ) -> UpkeepReport:
        """Remove the rows served, and labels that came, in hours that ended by `before_us`."""
        ...
