"""When the quick read path (`loopml.adapters.sql.quick`) opens a database, and when it leaves
it to the full path: only a SQLite file that is there, at this code's schema revision."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from loopml.adapters.sql.quick import open_quick, sqlite_file
from loopml.adapters.sql.revision import HEAD_REVISION


def _database(path: Path, revision: str | None) -> str:
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode=WAL")
        if revision is not None:
            db.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
            db.execute("INSERT INTO alembic_version VALUES (?)", (revision,))
    return f"sqlite:///{path}"


@pytest.mark.parametrize(
    ("url", "file"),
    [
        ("sqlite:////tmp/a/loopml.db", Path("/tmp/a/loopml.db")),
        ("sqlite:///relative.db", Path("relative.db")),
        ("sqlite:///:memory:", None),
        ("sqlite://", None),
        ("sqlite:////tmp/a.db?mode=ro", None),
        ("postgresql+psycopg://postgres@127.0.0.1/x", None),
        ("memory://", None),
    ],
)
def test_only_a_plain_sqlite_file_url_is_read_quickly(url: str, file: Path | None) -> None:
    assert sqlite_file(url) == file


def test_a_file_at_the_current_revision_is_opened(tmp_path: Path) -> None:
    quick = open_quick(_database(tmp_path / "loopml.db", HEAD_REVISION))
    assert quick is not None
    assert quick.revision() == HEAD_REVISION
    quick.dispose()


@pytest.mark.parametrize("revision", ["0001", "9999", None], ids=["older", "newer", "none"])
def test_a_file_at_another_revision_is_left_to_the_full_path(
    tmp_path: Path, revision: str | None
) -> None:
    assert open_quick(_database(tmp_path / "loopml.db", revision)) is None


def test_a_missing_file_is_left_to_the_full_path_and_not_created(tmp_path: Path) -> None:
    assert open_quick(f"sqlite:///{tmp_path / 'loopml.db'}") is None
    assert not (tmp_path / "loopml.db").exists()


def test_a_read_takes_no_write_lock(tmp_path: Path) -> None:
    """A quick read in progress does not stop a writer (WAL), and sees one snapshot."""
    url = _database(tmp_path / "loopml.db", HEAD_REVISION)
    quick = open_quick(url)
    assert quick is not None
    with quick.read() as reader:
        before = reader.scalar("SELECT count(*) FROM alembic_version")
        with sqlite3.connect(tmp_path / "loopml.db", timeout=1) as writer:
            writer.execute("INSERT INTO alembic_version VALUES ('x')")
        assert reader.scalar("SELECT count(*) FROM alembic_version") == before
    with quick.read() as reader:
        assert reader.scalar("SELECT count(*) FROM alembic_version") == before + 1
    quick.dispose()
