"""trust: which projects hold each blob (and who uploaded it), run heartbeats, and the web UI's
server-side sessions

- `blob_refs` (digest, project): a blob may be read through the team server only by someone who
  may read a project holding it (in a dataset or model manifest, a run artifact, a step output
  or a monitor report); filled here from every record that names a blob.
- `blob_uploads` (digest, user): blobs a user sent, readable by them before any record names
  them.
- `runs.heartbeat_us`: the last sign of life of a running run's process (indexed with the status,
  so finding the running runs that went quiet is one index range).
- `ui_sessions`: a browser session is a random id whose hash is kept here, tied to the token it
  logged in with (so revoking the token ends the session), with an expiry.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("heartbeat_us", sa.BigInteger(), nullable=True))
    op.create_index("ix_runs_status_heartbeat", "runs", ["status", "heartbeat_us"])
    op.create_table(
        "blob_refs",
        sa.Column("digest", sa.String(length=80), nullable=False),
        sa.Column("project", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["project"], ["projects.name"], name=op.f("fk_blob_refs_project_projects")
        ),
        sa.PrimaryKeyConstraint("digest", "project", name=op.f("pk_blob_refs")),
    )
    op.create_table(
        "blob_uploads",
        sa.Column("digest", sa.String(length=80), nullable=False),
        sa.Column("user", sa.String(length=200), nullable=False),
        sa.Column("time_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("digest", "user", name=op.f("pk_blob_uploads")),
    )
    op.create_table(
        "ui_sessions",
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("token_id", sa.Integer(), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("expires_us", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["token_id"], ["tokens.id"], name=op.f("fk_ui_sessions_token_id_tokens")
        ),
        sa.PrimaryKeyConstraint("hash", name=op.f("pk_ui_sessions")),
    )
    _backfill_blob_refs()


def downgrade() -> None:
    op.drop_table("ui_sessions")
    op.drop_table("blob_uploads")
    op.drop_table("blob_refs")
    op.drop_index("ix_runs_status_heartbeat", table_name="runs")
    op.drop_column("runs", "heartbeat_us")


def _backfill_blob_refs() -> None:
    """Every (blob, project) pair the records already name."""
    conn = op.get_bind()
    pairs: set[tuple[str, str]] = set()
    for project, manifest in conn.execute(
        sa.text(
            "SELECT d.project, v.manifest FROM dataset_versions v "
            "JOIN datasets d ON d.id = v.dataset_id"
        )
    ):
        pairs.update((digest, project) for digest in _manifest_digests(manifest))
    for project, manifest in conn.execute(
        sa.text(
            "SELECT m.project, v.manifest FROM model_versions v JOIN models m ON m.id = v.model_id"
        )
    ):
        pairs.update((digest, project) for digest in _manifest_digests(manifest))
    for project, digest in conn.execute(
        sa.text("SELECT r.project, a.digest FROM run_artifacts a JOIN runs r ON r.id = a.run_id")
    ):
        pairs.add((digest, project))
    for project, manifest in conn.execute(
        sa.text(
            "SELECT r.project, a.manifest FROM run_io i "
            "JOIN runs r ON r.id = i.run_id JOIN artifacts a ON a.digest = i.artifact_digest"
        )
    ):
        pairs.update((digest, project) for digest in _manifest_digests(manifest))
    for project, digest in conn.execute(
        sa.text("SELECT project, summary_digest FROM monitors WHERE summary_digest IS NOT NULL")
    ):
        pairs.add((digest, project))
    for project, digest in conn.execute(
        sa.text("SELECT DISTINCT project, report_digest FROM monitor_runs")
    ):
        pairs.add((digest, project))
    table = sa.table("blob_refs", sa.column("digest"), sa.column("project"))
    for chunk in _chunks(sorted(pairs), 1000):
        op.bulk_insert(table, [{"digest": d, "project": p} for d, p in chunk])


def _manifest_digests(manifest: Any) -> Iterator[str]:
    data = json.loads(manifest) if isinstance(manifest, str) else manifest
    for entry in (data or {}).get("files", {}).values():
        if isinstance(entry, dict) and isinstance(entry.get("digest"), str):
            yield entry["digest"]


def _chunks(items: list[tuple[str, str]], size: int) -> Iterable[list[tuple[str, str]]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
