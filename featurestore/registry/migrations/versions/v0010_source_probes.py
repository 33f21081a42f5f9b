"""Source probes: each source's latest probe (issue 18, part 2).

``source_probes``: one row per source probed (``featurestore apply``, ``featurestore source
check``): its status (ok, missing, unreadable, failed), when, and what the probe found as JSON
(columns, row count, event-time range, partitions, a few sample rows without the columns tagged
sensitive). A newer probe replaces the row.

Revision ID: 0010_source_probes
Revises: 0009_feature_requests
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_source_probes"
down_revision: str | None = "0009_feature_requests"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "source_probes",
        sa.Column("project", sa.String(200), primary_key=True),
        sa.Column("source", sa.String(200), primary_key=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("probed_at", sa.DateTime, nullable=False),
        sa.Column("probe", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("source_probes")
