"""The quick store of runs: a run, a page of runs (the filter and order language compiled to SQL
text, as `run_query.py` compiles it with SQLAlchemy), artifacts, metric history, and the read
that finds silent runs; writes through the full `SqlRunStore` (see `loopml.adapters.sql.quick`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from loopml.adapters.sql.quick import QuickDatabase, QuickStore, Reader, placeholders
from loopml.adapters.sql.rows import Clock, to_run
from loopml.domain.filters import (
    Comparison,
    FieldKind,
    OrderKey,
    RunQuery,
    check_page,
    time_value,
)
from loopml.domain.hashing import Digest
from loopml.domain.records import (
    EventDraft,
    MetricPoint,
    Run,
    RunArtifact,
    RunId,
    RunStatus,
    missing_run,
)
from loopml.ports import NewRun, RunPage

if TYPE_CHECKING:
    from loopml.adapters.sql.engine import Database
    from loopml.adapters.sql.runs import SqlRunStore

_ATTRIBUTE_COLUMNS = {
    "status": "runs.status",
    "name": "runs.name",
    "run_id": "runs.id",
    "start_time": "runs.start_us",
    "end_time": "runs.end_us",
}
_TIME_ATTRIBUTES = {"start_time", "end_time"}
_SIDE_TABLES = {
    FieldKind.METRICS: "latest_metrics",
    FieldKind.PARAMS: "params",
    FieldKind.TAGS: "tags",
}
_OPERATORS = {"=": "=", "!=": "!=", ">": ">", ">=": ">=", "<": "<", "<=": "<="}


class _Statement:
    """The run ids a query selects, as SQL text and its parameters, built clause by clause."""

    def __init__(self, query: RunQuery) -> None:
        self.joins: list[str] = []
        self.join_params: list[Any] = []
        self.where = ["runs.project = ?"]
        self.params: list[Any] = [query.project]
        """The parameters of `where`, in order (those of `joins` are `join_params`)."""
        self.joined: dict[tuple[FieldKind, str], str] = {}
        """Columns already joined by a comparison: an order on the same field reuses them."""
        if query.parent_id is not None:
            self.where.append("runs.parent_id = ?")
            self.params.append(query.parent_id)
        elif query.top_level_only:
            self.where.append("runs.parent_id IS NULL")
        for index, cmp in enumerate(query.where):
            self._compare(index, cmp)

    def _compare(self, index: int, cmp: Comparison) -> None:
        op = _OPERATORS[cmp.op]
        if cmp.field.kind is FieldKind.ATTRIBUTES:
            column = _ATTRIBUTE_COLUMNS[cmp.field.key]
            value: Any = str(cmp.value)
            if cmp.field.key in _TIME_ATTRIBUTES:
                value = time_value(cmp.field, cmp.value)
            self.where.append(f"{column} {op} ?")
            self.params.append(value)
            return
        alias = f"w{index}"
        column = f"{alias}.value"
        if cmp.field.kind is FieldKind.PARAMS and isinstance(cmp.value, float):
            column = f"{alias}.value_num"
        if cmp.field.kind is not FieldKind.PARAMS or isinstance(cmp.value, float):
            self.joined.setdefault((cmp.field.kind, cmp.field.key), column)  # never NULL here
        self.joins.append(
            f"JOIN {_SIDE_TABLES[cmp.field.kind]} AS {alias} "
            f"ON {alias}.run_id = runs.id AND {alias}.key = ?"
        )
        self.join_params.append(cmp.field.key)
        self.where.append(f"{column} {op} ?")
        self.params.append(cmp.value)

    def body(self) -> tuple[str, list[Any]]:
        sql = f"FROM runs {' '.join(self.joins)} WHERE {' AND '.join(self.where)}"
        return sql, [*self.join_params, *self.params]


def _page(query: RunQuery, limit: int, offset: int) -> tuple[str, list[Any]]:
    """Run ids of one page, in the requested order; runs missing an order key come last."""
    stmt = _Statement(query)
    order: list[str] = []
    outer: list[str] = []
    outer_params: list[Any] = []
    for index, key in enumerate(query.order_by):
        order.append(_order_term(index, key, stmt, outer, outer_params))
    order += ["runs.start_us DESC", "runs.id"]
    joins = " ".join(stmt.joins + outer)
    sql = (
        f"SELECT runs.id FROM runs {joins} WHERE {' AND '.join(stmt.where)} "
        f"ORDER BY {', '.join(order)} LIMIT ? OFFSET ?"
    )
    return sql, [*stmt.join_params, *outer_params, *stmt.params, limit, offset]


def _order_term(
    index: int, key: OrderKey, stmt: _Statement, outer: list[str], outer_params: list[Any]
) -> str:
    """The ORDER BY term for `key`, joining its table unless a comparison already did."""
    direction = "DESC" if key.descending else "ASC"
    if key.field.kind is FieldKind.ATTRIBUTES:
        return f"{_ATTRIBUTE_COLUMNS[key.field.key]} {direction} NULLS LAST"
    reused = stmt.joined.get((key.field.kind, key.field.key))
    if reused is not None:  # an inner join: no NULLs
        return f"{reused} {direction}"
    alias = f"o{index}"
    outer.append(
        f"LEFT OUTER JOIN {_SIDE_TABLES[key.field.kind]} AS {alias} "
        f"ON {alias}.run_id = runs.id AND {alias}.key = ?"
    )
    outer_params.append(key.field.key)
    column = f"{alias}.value_num" if key.field.kind is FieldKind.PARAMS else f"{alias}.value"
    return f"{column} {direction} NULLS LAST"


def _count(query: RunQuery) -> tuple[str, list[Any]]:
    body, params = _Statement(query).body()
    return f"SELECT count(*) FROM (SELECT runs.id {body})", params


def _sql_runs(db: Database, clock: Clock) -> SqlRunStore:
    from loopml.adapters.sql.runs import SqlRunStore

    return SqlRunStore(db, clock)


class QuickRunStore(QuickStore["SqlRunStore"]):
    """The `RunStore` port with heartbeats and the reaper of silent runs: runs, pages of runs,
    artifacts and metric histories read quickly; a reap writes only when a run fell silent."""

    def __init__(self, quick: QuickDatabase) -> None:
        super().__init__(quick, _sql_runs)

    def create_run(self, new: NewRun, event: EventDraft) -> Run:
        return self.full.create_run(new, event)

    def end_run(
        self,
        run_id: RunId,
        status: RunStatus,
        error: str | None,
        now: datetime,
        event: EventDraft,
        *,
        final_metrics: Sequence[MetricPoint] = (),
    ) -> None:
        self.full.end_run(run_id, status, error, now, event, final_metrics=final_metrics)

    def log_batch(
        self,
        run_id: RunId,
        metrics: Sequence[MetricPoint] = (),
        params: dict[str, str] | None = None,
        tags: dict[str, str] | None = None,
    ) -> None:
        self.full.log_batch(run_id, metrics, params, tags)

    def delete_tag(self, run_id: RunId, key: str) -> None:
        self.full.delete_tag(run_id, key)

    def add_inputs_and_artifacts(
        self,
        run_id: RunId,
        dataset_refs: Iterable[tuple[str, str, int]],
        artifacts: Iterable[RunArtifact],
    ) -> None:
        self.full.add_inputs_and_artifacts(run_id, dataset_refs, artifacts)

    def heartbeat(self, run_ids: Sequence[RunId]) -> None:
        self.full.heartbeat(run_ids)

    def end_silent_runs(self, silent_s: float, event: EventDraft) -> list[RunId]:
        """One quick read finds the silent runs; only when there are some does the full store
        end them (it checks each again, in its write)."""
        cutoff = self._quick.clock() - int(silent_s * 1_000_000)
        with self._quick.read() as reader:
            found = reader.one(
                "SELECT id FROM runs WHERE status = ? AND coalesce(heartbeat_us, "
                "(SELECT max(timestamp_ms) * 1000 FROM latest_metrics "
                "WHERE latest_metrics.run_id = runs.id), start_us) < ? LIMIT 1",
                (RunStatus.RUNNING.value, cutoff),
            )
        return [] if found is None else self.full.end_silent_runs(silent_s, event)

    def get_run(self, run_id: RunId) -> Run:
        with self._quick.read() as reader:
            runs = _hydrate(reader, [run_id])
        if not runs:
            raise missing_run(run_id)
        return runs[0]

    def search(self, query: RunQuery, limit: int, offset: int) -> RunPage:
        check_page(limit, offset)
        with self._quick.read() as reader:
            ids = [row.id for row in reader.all(*_page(query, limit, offset))]
            if offset == 0 and len(ids) < limit:
                total = len(ids)  # the whole result fits the first page: no count needed
            else:
                total = int(reader.scalar(*_count(query)))
            return RunPage(_hydrate(reader, ids), total)

    def metric_history(self, run_id: RunId, key: str) -> list[MetricPoint]:
        with self._quick.read() as reader:
            _require(reader, run_id)
            rows = reader.all(
                "SELECT key, value, step, timestamp_ms FROM metrics WHERE run_id = ? AND key = ? "
                "ORDER BY step, timestamp_ms, id",
                (run_id, key),
            )
        return [MetricPoint(r.key, r.value, r.step, r.timestamp_ms) for r in rows]

    def list_artifacts(self, run_id: RunId) -> list[RunArtifact]:
        with self._quick.read() as reader:
            _require(reader, run_id)
            rows = reader.all(
                "SELECT path, digest, size FROM run_artifacts WHERE run_id = ? ORDER BY path",
                (run_id,),
            )
        return [RunArtifact(r.path, Digest(r.digest), r.size) for r in rows]


def _require(reader: Reader, run_id: str) -> None:
    if reader.scalar("SELECT status FROM runs WHERE id = ?", (run_id,)) is None:
        raise missing_run(run_id)


def _hydrate(reader: Reader, ids: list[str]) -> list[Run]:
    """The runs of `ids` in that order, with their params, latest metrics, tags and inputs."""
    if not ids:
        return []
    marks = placeholders(ids)
    rows = {r.id: r for r in reader.all(f"SELECT * FROM runs WHERE id IN ({marks})", ids)}
    side: dict[str, dict[str, dict[str, Any]]] = defaultdict(lambda: defaultdict(dict))
    for name, table in (("params", "params"), ("metrics", "latest_metrics"), ("tags", "tags")):
        sql = f"SELECT run_id, key, value FROM {table} WHERE run_id IN ({marks})"
        for row in reader.all(sql, ids):
            side[row.run_id][name][row.key] = row.value
    inputs: dict[str, list[str]] = defaultdict(list)
    sql = (
        "SELECT i.run_id, d.name, v.version FROM run_inputs i "
        "JOIN dataset_versions v ON v.id = i.dataset_version_id "
        f"JOIN datasets d ON d.id = v.dataset_id WHERE i.run_id IN ({marks})"
    )
    for row in reader.all(sql, ids):
        inputs[row.run_id].append(f"{row.name}@{row.version}")
    return [to_run(rows[i], side[i], inputs[i]) for i in ids if i in rows]
