"""Alembic environment: migrations run on the connection loopml hands over."""

from __future__ import annotations

from alembic import context

from loopml.adapters.sql.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("loopml runs its migrations through `loopml db upgrade`, not bare alembic.")
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
context.run_migrations()
