"""Served vectors: the skew reports computed from logged online lookups (issue 16, part 4).

``skew_reports``: one row per report of ``featurestore skew`` (:mod:`featurestore.skew`): the
feature service, the window of request times it read, when and by whom it was computed, its
totals (entity rows, values compared, values that matched) and the whole report as JSON (per
feature: counts per class, examples).

Revision ID: 0008_served_vectors
Revises: 0007_model_traffic
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_served_vectors"
down_revision: str | None = "0007_model_traffic"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "skew_reports",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("project", sa.String(200), nullable=False),
        sa.Column("service", sa.String(200), nullable=False),
        sa.Column("since", sa.DateTime, nullable=False),
        sa.Column("until", sa.DateTime, nullable=True),
        sa.Column("computed_at", sa.DateTime, nullable=False),
        sa.Column("computed_by", sa.String(200), nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("values_compared", sa.Integer, nullable=False),
        sa.Column("matched", sa.Integer, nullable=False),
        sa.Column("report", sa.Text, nullable=False),
    )
    op.create_index("ix_skew_reports_project", "skew_reports", ["project"])


def downgrade() -> None:
    op.drop_index("ix_skew_reports_project", table_name="skew_reports")
    op.drop_table("skew_reports")
