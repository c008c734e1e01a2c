"""a loop's lease moves to the lease table

- `leases.name` widens to 420 characters: a loop's lease is `loop:<project>/<loop>`.
- A lease held on a loop when the upgrade runs is copied to `leases`, so a retraining in flight
  keeps it; then `loops.lease_owner` and `loops.lease_until_us` go.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("leases") as batch:
        batch.alter_column("name", type_=sa.String(length=420), existing_nullable=False)
    op.execute(
        "INSERT INTO leases (name, owner, until_us) "
        "SELECT 'loop:' || project || '/' || name, lease_owner, lease_until_us FROM loops "
        "WHERE lease_owner IS NOT NULL AND lease_until_us IS NOT NULL"
    )
    with op.batch_alter_table("loops") as batch:
        batch.drop_column("lease_until_us")
        batch.drop_column("lease_owner")


def downgrade() -> None:
    with op.batch_alter_table("loops") as batch:
        batch.add_column(sa.Column("lease_owner", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("lease_until_us", sa.BigInteger(), nullable=True))
    op.execute("DELETE FROM leases WHERE name LIKE 'loop:%'")
    with op.batch_alter_table("leases") as batch:
        batch.alter_column("name", type_=sa.String(length=200), existing_nullable=False)
