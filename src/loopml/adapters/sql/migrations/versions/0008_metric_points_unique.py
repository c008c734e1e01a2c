"""metric points: an exact repeat of a point is the same point (so a retried batch is applied
once); the unique index replaces the history index it extends

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "DELETE FROM metrics WHERE id NOT IN (SELECT MIN(id) FROM metrics "
        "GROUP BY run_id, key, step, timestamp_ms, value)"
    )
    op.drop_index("ix_metrics_run_key_step", table_name="metrics")
    op.create_index(
        "uq_metrics_point",
        "metrics",
        ["run_id", "key", "step", "timestamp_ms", "value"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_index("uq_metrics_point", table_name="metrics")
    op.create_index("ix_metrics_run_key_step", "metrics", ["run_id", "key", "step"])
