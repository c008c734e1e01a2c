"""enable_wal: processes that open a new SQLite file together all get it in WAL mode."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from loopml.adapters.sqlite_wal import enable_wal

_OPENER = """
import sqlite3, sys
from loopml.adapters.sqlite_wal import enable_wal
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("PRAGMA busy_timeout = 10000")
enable_wal(db, timeout_s=10)
db.execute("CREATE TABLE IF NOT EXISTS t (x)")
for i in range(20):
    db.execute("INSERT INTO t VALUES (?)", (i,))
"""


def test_processes_opening_a_new_file_together_all_succeed(tmp_path: Path) -> None:
    # A bare "PRAGMA journal_mode=WAL" lost this race about once in a hundred openings.
    for round_ in range(25):
        db = tmp_path / f"r{round_}.sqlite"
        openers = [
            subprocess.Popen([sys.executable, "-c", _OPENER, str(db)], stderr=subprocess.PIPE)
            for _ in range(4)
        ]
        errors = [o.communicate(timeout=60)[1].decode() for o in openers]
        assert [o.returncode for o in openers] == [0, 0, 0, 0], errors
        check = sqlite3.connect(db)
        try:
            assert check.execute("PRAGMA journal_mode").fetchone() == ("wal",)
            assert check.execute("SELECT count(*) FROM t").fetchone() == (80,)
        finally:
            check.close()


def test_other_errors_are_not_retried(tmp_path: Path) -> None:
    folder = tmp_path / "not-a-database"
    folder.write_bytes(b"this is not a SQLite file, and it is long enough to have a header" * 4)
    db = sqlite3.connect(folder, isolation_level=None)
    try:
        with pytest.raises(sqlite3.DatabaseError, match="not a database"):
            enable_wal(db, timeout_s=30)
    finally:
        db.close()
