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
