"""The schema revision this code reads and writes, apart from Alembic and SQLAlchemy so that the
quick read path (`loopml.adapters.sql.quick`) can check a database against it cheaply."""

HEAD_REVISION = "0012"
"""The newest migration; `tests/contract/test_migrations.py` checks it against the scripts."""
