"""The Alembic migrations and the table definitions agree, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from loopml.adapters.sql.engine import Database
from loopml.adapters.sql.migrate import HEAD_REVISION, alembic_config, current_revision
from loopml.adapters.sql.tables import metadata


def test_head_revision_constant_is_the_newest_script() -> None:
    script = ScriptDirectory.from_config(alembic_config())  # type: ignore[arg-type]
    assert script.get_current_head() == HEAD_REVISION


def test_migrated_schema_matches_the_tables(database: Database) -> None:
    with database.engine.connect() as conn:
        assert current_revision(conn) == HEAD_REVISION
        context = MigrationContext.configure(conn)
        differences = compare_metadata(context, metadata)
    assert differences == []


def test_every_revision_file_is_reachable() -> None:
    script = ScriptDirectory.from_config(alembic_config())  # type: ignore[arg-type]
    folder = Path(script.versions)
    files = {p.stem.split("_", 1)[0] for p in folder.glob("0*.py")}
    assert files == {rev.revision for rev in script.walk_revisions()}


def _digest(name: str) -> str:
    from loopml.domain.hashing import digest_bytes

    return str(digest_bytes(name.encode()))


def _manifest(*names: str) -> dict[str, object]:
    return {
        "schema_version": 1,
        "files": {f"{n}.bin": {"digest": _digest(n), "size": 1} for n in names},
    }


def _records_of_0009(db: Database) -> None:
    """One record of every kind that names blobs, in projects a and b, as 0009 stored them."""
    from loopml.adapters.sql import tables as t

    run = {"status": "finished", "start_us": 1, "environment": {}}
    named = {"description": "", "created_us": 1, "latest_version": 1}
    rows = [
        (t.projects, {"name": "a", "created_us": 1}),
        (t.projects, {"name": "b", "created_us": 1}),
        (t.datasets, {"id": 1, "project": "a", "name": "d", "updated_us": 1, **named}),
        (t.runs, {"id": "r" * 32, "project": "a", "name": "r", **run}),
        (t.runs, {"id": "s" * 32, "project": "b", "name": "s", **run}),
        (t.run_artifacts, {"run_id": "s" * 32, "path": "x", "digest": _digest("art"), "size": 1}),
        (t.models, {"id": 1, "project": "b", "name": "m", **named}),
        (t.monitors, {"project": "b", "name": "mon", "deployment": "dep", "window_s": 1,
                      "every_s": 1, "created_us": 1, "updated_us": 1,
                      "summary_digest": _digest("summary")}),
    ]  # fmt: skip
    with db.write() as conn:
        for table, values in rows:
            conn.execute(table.insert().values(**{k: v for k, v in values.items() if k in table.c}))
        conn.execute(
            t.dataset_versions.insert().values(
                dataset_id=1, version=1, digest=_digest("dv"), message="", actor="x",
                created_us=1, file_count=2, total_size=2, manifest=_manifest("data1", "shared"),
            )
        )  # fmt: skip
        conn.execute(
            t.model_versions.insert().values(
                model_id=1, version=1, run_id="s" * 32, flavor="sklearn", flavor_info={},
                artifact_digest=_digest("mv"), manifest=_manifest("model", "shared"),
                signature={}, metrics={}, actor="x", created_us=1,
            )
        )  # fmt: skip
        conn.execute(
            t.artifacts.insert().values(
                digest=_digest("out"), serializer="json", type_name="dict", size=1,
                manifest=_manifest("output"), created_us=1,
            )
        )  # fmt: skip
        conn.execute(
            t.run_io.insert().values(
                run_id="r" * 32, direction="out", name="output_0", artifact_digest=_digest("out")
            )
        )
        conn.execute(
            t.monitor_runs.insert().values(
                project="a", monitor="mon", time_us=1, window_start_us=0, window_end_us=1,
                rows=1, drift_share=0.0, drifted_json="[]", report_digest=_digest("report"),
            )
        )  # fmt: skip


def test_upgrading_to_0010_fills_blob_refs_from_every_record(db_url: str) -> None:
    """A database of 0009 with records naming blobs, upgraded: each blob is held by exactly the
    projects whose records name it (a blob named in two projects, by both)."""
    from sqlalchemy import select

    from loopml.adapters.sql import tables as t
    from loopml.adapters.sql.engine import create_store_engine
    from loopml.adapters.sql.migrate import upgrade

    db = Database(create_store_engine(db_url))
    try:
        upgrade(db, "0009")
        _records_of_0009(db)
        upgrade(db)
        with db.read() as conn:
            held = set(conn.execute(select(t.blob_refs.c.digest, t.blob_refs.c.project)).all())
    finally:
        db.dispose()
    expected = {("data1", "a"), ("shared", "a"), ("art", "b"), ("model", "b"), ("shared", "b"),
                ("output", "a"), ("summary", "b"), ("report", "a")}  # fmt: skip
    assert held == {(_digest(name), project) for name, project in expected}


def test_upgrading_to_0011_keeps_old_rules_resolving_as_before(db_url: str) -> None:
    """Rules made before hysteresis resolve on the first clear run (1, margin 0); runs made
    before importance-weighted drift have none (null, never a made-up 0)."""
    from loopml.adapters.sql import tables as t
    from loopml.adapters.sql.alerts import SqlAlertStore
    from loopml.adapters.sql.engine import create_store_engine
    from loopml.adapters.sql.migrate import upgrade
    from loopml.adapters.sql.monitors import SqlMonitorStore

    db = Database(create_store_engine(db_url))
    try:
        upgrade(db, "0010")
        with db.write() as conn:
            conn.execute(t.projects.insert().values(name="a", created_us=1))
            conn.execute(
                t.alert_rules.insert().values(
                    project="a", target="mon", condition="drift_share > 0.3",
                    channels_json='["log:"]', cooldown_s=0, created_us=1,
                )
            )  # fmt: skip
            conn.execute(
                t.monitor_runs.insert().values(
                    project="a", monitor="mon", time_us=1, window_start_us=0, window_end_us=1,
                    rows=1, drift_share=0.5, drifted_json="[]", report_digest=_digest("report"),
                )
            )  # fmt: skip
        upgrade(db)
        (rule,) = SqlAlertStore(db).rules("a")
        (run,) = SqlMonitorStore(db).runs("a", "mon", 10)
    finally:
        db.dispose()
    assert (rule.resolve_after, rule.resolve_margin) == (1, 0.0)
    assert (run.drift_share, run.weighted_drift) == (0.5, None)


def test_upgrading_to_0012_keeps_a_loops_lease_held_and_allows_long_names(db_url: str) -> None:
    """A retraining in flight during the upgrade keeps its loop: its lease moves to the lease
    table; a free loop stays free; and a lease name as long as a project and loop name fits."""
    from sqlalchemy import text

    from loopml.adapters.sql import tables as t
    from loopml.adapters.sql.engine import create_store_engine
    from loopml.adapters.sql.leases import SqlLeases
    from loopml.adapters.sql.migrate import upgrade
    from loopml.domain.loops import loop_lease

    far = 2**62
    db = Database(create_store_engine(db_url))
    try:
        upgrade(db, "0011")
        with db.write() as conn:
            conn.execute(t.projects.insert().values(name="a", created_us=1))
            for name, owner, until in (("held", "worker-1", far), ("free", None, None)):
                conn.execute(
                    text(
                        "INSERT INTO loops (project, name, spec_json, state_json, lease_owner, "
                        "lease_until_us, created_us, updated_us) "
                        "VALUES ('a', :name, '{}', '{}', :owner, :until, 1, 1)"
                    ),
                    {"name": name, "owner": owner, "until": until},
                )
        upgrade(db)
        leases = SqlLeases(db)
        held, free = leases.holder(loop_lease("a", "held")), leases.holder(loop_lease("a", "free"))
        assert not leases.acquire(loop_lease("a", "held"), "worker-2", ttl_s=60)
        longest = loop_lease("p" * 200, "l" * 200)
        assert leases.acquire(longest, "worker-2", ttl_s=60)
        assert leases.holder(longest)[0] == "worker-2"
    finally:
        db.dispose()
    assert held == ("worker-1", far)
    assert free == (None, None)
