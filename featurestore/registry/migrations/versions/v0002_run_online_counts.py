"""Runs record what they did online: entities affected, and rows removed.

``runs.entities_affected``: entities whose online value the run re-derived from offline;
``runs.rows_online_removed``: entities it removed online. Nullable: runs recorded before have
neither.

Revision ID: 0002_run_online_counts
Revises: 0001_baseline
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_run_online_counts"
down_revision: str | None = "0001_baseline"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("entities_affected", sa.BigInteger, nullable=True))
        batch.add_column(sa.Column("rows_online_removed", sa.BigInteger, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("rows_online_removed")
        batch.drop_column("entities_affected")
