"""`/feedback`: true labels for served rows, checked before anything is kept.

A body is one item `{"request_id": ..., "label": ...}` or a list of them (at most `MAX_ROWS`),
kept all together or not at all:

- each label is a scalar the model's output column takes (the rules of
  `loopml.domain.column_values`; `null`, objects and lists are refused): 422 naming the item;
- each id is one this deployment issued: 404 naming it. Ids are looked up in this order: the
  ids this process issued lately (`RecentIds`, in memory), then the rows queued in this
  process's log writer and the log itself, in one read limited to the days the ids' own times
  span (a server-made id is a UUIDv7). An id younger than the log's settle time (its flush
  interval plus a second) that is still not found may have been served by another worker process
  of the same deployment whose writer has not flushed yet: the check waits until that row would
  be in the log, and looks once more, before it answers 404. This holds after a restart and
  across `--workers N` processes.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from starlette.concurrency import run_in_threadpool

from loopml.domain.column_values import EXPECTED, describe, problem, typed
from loopml.domain.request_ids import unix_ms_of
from loopml.domain.signature import ColumnType
from loopml.serving.frames import MAX_ROWS, RequestError

MAX_RECENT_IDS = 200_000
"""Ids per process kept in memory for the feedback check (about 25 MB); older ones are looked
up in the log."""
_CLOCK_SKEW_S = 1.0
"""An id may carry a time this far ahead of this process's clock (another worker's)."""
_SCALARS = (str, int, float, bool)


class FeedbackLog(Protocol):
    """What the check needs of the prediction log."""

    @property
    def settle_s(self) -> float: ...

    def served_ids(self, deployment: str, request_ids: list[str]) -> set[str]: ...


class RecentIds:
    """The ids this process issued lately, per deployment, at most `limit` in all. Issuing is
    an append of the batch's list (a served row pays no hashing); the sets a feedback check
    looks ids up in are made from the pending batches when a check first needs them."""

    def __init__(self, limit: int = MAX_RECENT_IDS) -> None:
        self._limit = limit
        self._lock = threading.Lock()
        self._by_deployment: dict[str, set[str]] = {}
        self._pending: dict[str, list[Sequence[str]]] = {}
        """Per deployment, batches issued since its set was last brought up to date."""
        self._batches: deque[tuple[str, Sequence[str]]] = deque()
        self._count = 0

    def add(self, deployment: str, request_ids: Sequence[str]) -> None:
        with self._lock:
            self._pending.setdefault(deployment, []).append(request_ids)
            self._batches.append((deployment, request_ids))
            self._count += len(request_ids)
            while self._count > self._limit and len(self._batches) > 1:
                old_deployment, old = self._batches.popleft()
                waiting = self._pending.get(old_deployment, [])
                if waiting and waiting[0] is old:  # never made into the set: just drop it
                    waiting.pop(0)
                else:
                    self._by_deployment[old_deployment].difference_update(old)
                self._count -= len(old)

    def unknown(self, deployment: str, request_ids: Sequence[str]) -> list[str]:
        """Those of `request_ids` not issued lately for `deployment`."""
        with self._lock:
            known = self._by_deployment.setdefault(deployment, set())
            for batch in self._pending.pop(deployment, []):
                known.update(batch)
            return [request_id for request_id in request_ids if request_id not in known]


def feedback_items(body: Any) -> list[tuple[str, Any]]:
    """The (request id, label) pairs of a body; 422 (413 for too many) naming the bad item."""
    items = body if isinstance(body, list) else [body]
    if len(items) > MAX_ROWS:
        raise RequestError(
            413, f"The body has {len(items)} feedback items; at most {MAX_ROWS} are taken."
        )
    if not items:
        raise RequestError(422, "The body has no feedback items.")
    pairs: list[tuple[str, Any]] = []
    for index, item in enumerate(items):
        if (
            not isinstance(item, Mapping)
            or not isinstance(item.get("request_id"), str)
            or "label" not in item
        ):
            raise RequestError(422, f"Feedback item {index} needs 'request_id' (text) and 'label'.")
        pairs.append((item["request_id"], item["label"]))
    return pairs


def _scalar_problem(label: Any) -> str | None:
    if type(label) not in _SCALARS:
        return describe(label)
    return problem(label, ColumnType.FLOAT) if isinstance(label, float) else None


def _label_problem(label: Any, output: tuple[str, ColumnType] | None) -> str | None:
    if label is None:
        return "null"
    if output is None or output[1] is ColumnType.OBJECT:
        return _scalar_problem(label)
    return _scalar_problem(label) or problem(label, output[1])


def typed_labels(
    pairs: Sequence[tuple[str, Any]], outputs: Sequence[tuple[str, str]]
) -> list[tuple[str, Any]]:
    """The pairs with each label checked against the model's output column (any scalar when
    the signature names no output, one per output as a list when it names several)."""
    columns = [(name, ColumnType(kind)) for name, kind in outputs]
    typed_pairs = []
    for index, (request_id, label) in enumerate(pairs):
        if len(columns) > 1:
            typed_pairs.append((request_id, _label_list(index, label, columns)))
            continue
        output = columns[0] if columns else None
        found = _label_problem(label, output)
        if found is not None:
            raise RequestError(422, _refusal(index, found, output))
        typed_pairs.append((request_id, label if output is None else typed(label, output[1])))
    return typed_pairs


def _label_list(index: int, label: Any, columns: list[tuple[str, ColumnType]]) -> list[Any]:
    if not isinstance(label, list) or len(label) != len(columns):
        names = ", ".join(name for name, _ in columns)
        raise RequestError(
            422,
            f"Feedback item {index}: the label is {describe(label)}; the model has "
            f"{len(columns)} outputs ({names}). Send a list of one value per output.",
        )
    for value, output in zip(label, columns, strict=True):
        found = _label_problem(value, output)
        if found is not None:
            raise RequestError(422, _refusal(index, found, output))
    return [typed(value, kind) for value, (_, kind) in zip(label, columns, strict=True)]


def _refusal(index: int, found: str, output: tuple[str, ColumnType] | None) -> str:
    if output is None:
        return (
            f"Feedback item {index}: the label is {found}; a label is one value. "
            "Send a string, a number or true/false."
        )
    expected, fix = EXPECTED[output[1]]
    if output[1] is ColumnType.OBJECT:
        expected, fix = "one value", "Send a string, a number or true/false"
    return (
        f"Feedback item {index}: the label is {found}; the model's output {output[0]!r} "
        f"is {expected}. {fix}."
    )


async def check_served(
    recent: RecentIds,
    log: FeedbackLog,
    deployment: str,
    request_ids: list[str],
    clock_s: Callable[[], float] = time.time,
) -> None:
    """Return when every id was issued by `deployment`; else raise 404 naming one."""
    missing = recent.unknown(deployment, list(dict.fromkeys(request_ids)))
    if missing:
        missing = await _not_in_log(log, deployment, missing)
    waiting = [i for i in missing if 0 <= _settles_in(i, log.settle_s, clock_s) < 60]
    if waiting:  # young ids: another worker's rows may still be queued there
        await asyncio.sleep(max(_settles_in(i, log.settle_s, clock_s) for i in waiting))
        found = set(waiting) - set(await _not_in_log(log, deployment, waiting))
        missing = [i for i in missing if i not in found]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise RequestError(
            404,
            f"Deployment {deployment!r} never served request id {missing[0]!r}{more}; "
            "no label was kept. Send the request_ids a /predict or V2 answer gave.",
        )


def _settles_in(request_id: str, settle_s: float, clock_s: Callable[[], float]) -> float:
    """Seconds until a row of `request_id` is surely in the log; negative when it is already
    (or the id carries no time), and beyond a minute for an id from the future."""
    unix_ms = unix_ms_of(request_id)
    if unix_ms is None:
        return -1.0
    ahead = unix_ms / 1000 - clock_s()
    if ahead > _CLOCK_SKEW_S:
        return 3600.0
    return unix_ms / 1000 + settle_s - clock_s()


async def _not_in_log(log: FeedbackLog, deployment: str, request_ids: list[str]) -> list[str]:
    found = await run_in_threadpool(log.served_ids, deployment, request_ids)
    return [request_id for request_id in request_ids if request_id not in found]
