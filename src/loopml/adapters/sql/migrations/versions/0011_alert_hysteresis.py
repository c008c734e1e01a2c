"""alert hysteresis and importance-weighted drift

- `alert_rules.resolve_after`: consecutive monitor runs on which a rule's condition must be
  false before its alert resolves (1, the first such run, for the rules made before).
- `alert_rules.resolve_margin`: how far past the threshold a value must be to count as false
  (0 for the rules made before).
- `monitor_runs.weighted_drift`: the share of the model's importance on the drifted inputs
  (null for the runs made before: they did not measure it).

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "alert_rules", sa.Column("resolve_after", sa.Integer(), nullable=False, server_default="1")
    )
    op.add_column(
        "alert_rules", sa.Column("resolve_margin", sa.Float(), nullable=False, server_default="0")
    )
    op.add_column("monitor_runs", sa.Column("weighted_drift", sa.Float(), nullable=True))


def downgrade() -> None:
    op.drop_column("monitor_runs", "weighted_drift")
    with op.batch_alter_table("alert_rules") as batch:
        batch.drop_column("resolve_margin")
        batch.drop_column("resolve_after")
