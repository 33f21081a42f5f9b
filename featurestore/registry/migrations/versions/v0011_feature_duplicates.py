"""Feature duplicates: features found to compute what another does (issue 18, part 4).

``feature_duplicates``: one row per pair found by ``featurestore apply`` (see
:mod:`featurestore.duplicates`): the new feature, the one it duplicates, that one's owner when
found, the kind (exact, equal, correlated), the figure (share equal or correlation) over how
many rows, and when. A view checked again replaces its features' rows; a removed feature's rows
go.

Revision ID: 0011_feature_duplicates
Revises: 0010_source_probes
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_feature_duplicates"
down_revision: str | None = "0010_source_probes"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "feature_duplicates",
        sa.Column("project", sa.String(200), primary_key=True),
        sa.Column("feature", sa.String(400), primary_key=True),
        sa.Column("duplicate_of", sa.String(400), primary_key=True),
        sa.Column("view", sa.String(200), nullable=False),
        sa.Column("duplicate_view", sa.String(200), nullable=False),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("figure", sa.Float, nullable=True),
        sa.Column("rows", sa.Integer, nullable=True),
        sa.Column("found_at", sa.DateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("feature_duplicates")
