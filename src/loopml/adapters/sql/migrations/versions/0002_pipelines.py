"""pipelines: typed artifacts, run inputs/outputs, step cache

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "artifacts",
        sa.Column("digest", sa.String(length=80), nullable=False),
        sa.Column("serializer", sa.String(length=30), nullable=False),
        sa.Column("type_name", sa.String(length=300), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("manifest", sa.JSON(), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("digest", name=op.f("pk_artifacts")),
    )
    op.create_table(
        "run_io",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("direction", sa.String(length=3), nullable=False),
        sa.Column("name", sa.String(length=250), nullable=False),
        sa.Column("artifact_digest", sa.String(length=80), nullable=False),
        sa.ForeignKeyConstraint(
            ["artifact_digest"],
            ["artifacts.digest"],
            name=op.f("fk_run_io_artifact_digest_artifacts"),
        ),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_run_io_run_id_runs")),
        sa.PrimaryKeyConstraint("run_id", "direction", "name", name=op.f("pk_run_io")),
    )
    with op.batch_alter_table("run_io", schema=None) as batch_op:
        batch_op.create_index("ix_run_io_artifact", ["artifact_digest", "direction"], unique=False)
    op.create_table(
        "step_cache",
        sa.Column("project", sa.String(length=200), nullable=False),
        sa.Column("cache_key", sa.String(length=80), nullable=False),
        sa.Column("step_name", sa.String(length=250), nullable=False),
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("outputs", sa.JSON(), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project"], ["projects.name"], name=op.f("fk_step_cache_project_projects")
        ),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_step_cache_run_id_runs")),
        sa.PrimaryKeyConstraint("project", "cache_key", name=op.f("pk_step_cache")),
    )


def downgrade() -> None:
    op.drop_table("step_cache")
    with op.batch_alter_table("run_io", schema=None) as batch_op:
        batch_op.drop_index("ix_run_io_artifact")
    op.drop_table("run_io")
    op.drop_table("artifacts")
