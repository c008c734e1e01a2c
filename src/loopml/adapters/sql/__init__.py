"""The metadata store on SQLAlchemy Core: SQLite (WAL) embedded, PostgreSQL at scale."""
