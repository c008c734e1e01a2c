"""monitors: drift checks against a summarised reference or health probes, and their runs

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "monitors",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("project", sa.String(length=200), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("deployment", sa.String(length=200), nullable=False),
        sa.Column("reference", sa.String(length=300), nullable=True),
        sa.Column("summary_digest", sa.String(length=80), nullable=True),
        sa.Column("probe_url", sa.String(length=500), nullable=True),
        sa.Column("window_s", sa.Integer(), nullable=False),
        sa.Column("every_s", sa.Integer(), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("updated_us", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project"], ["projects.name"], name=op.f("fk_monitors_project_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_monitors")),
        sa.UniqueConstraint("project", "name", name="uq_monitors_project_name"),
    )
    op.create_table(
        "monitor_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("project", sa.String(length=200), nullable=False),
        sa.Column("monitor", sa.String(length=200), nullable=False),
        sa.Column("time_us", sa.BigInteger(), nullable=False),
        sa.Column("window_start_us", sa.BigInteger(), nullable=False),
        sa.Column("window_end_us", sa.BigInteger(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("drift_share", sa.Float(), nullable=False),
        sa.Column("drifted_json", sa.Text(), nullable=False),
        sa.Column("report_digest", sa.String(length=80), nullable=False),
        sa.ForeignKeyConstraint(
            ["project"], ["projects.name"], name=op.f("fk_monitor_runs_project_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_monitor_runs")),
    )
    op.create_index(
        "ix_monitor_runs_project_monitor_time",
        "monitor_runs",
        ["project", "monitor", "time_us"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_monitor_runs_project_monitor_time", table_name="monitor_runs")
    op.drop_table("monitor_runs")
    op.drop_table("monitors")
