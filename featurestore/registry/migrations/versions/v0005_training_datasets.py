"""Named training datasets.

``training_datasets``: one row per saved dataset (its spine and rows as content-hashed Parquet
files in the offline store, the feature service, each view's version and watermark, the runs
whose published files it read, who saved it and when). Rows are never updated: names are
immutable.

Revision ID: 0005_training_datasets
Revises: 0004_alert_incidents
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_training_datasets"
down_revision: str | None = "0004_alert_incidents"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "training_datasets",
        sa.Column("project", sa.String(200), primary_key=True),
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("feature_service", sa.String(200), nullable=True),
        sa.Column("features", sa.Text, nullable=False),
        sa.Column("view_versions", sa.Text, nullable=False),
        sa.Column("timestamp_column", sa.String(200), nullable=False),
        sa.Column("full_feature_names", sa.Boolean, nullable=False),
        sa.Column("spine_file", sa.String(300), nullable=False),
        sa.Column("spine_sha256", sa.String(64), nullable=False),
        sa.Column("spine_rows", sa.BigInteger, nullable=False),
        sa.Column("rows_file", sa.String(300), nullable=False),
        sa.Column("rows_sha256", sa.String(64), nullable=False),
        sa.Column("columns", sa.Text, nullable=False),
        sa.Column("watermarks", sa.Text, nullable=False),
        sa.Column("inputs", sa.Text, nullable=False),
        sa.Column("run_ids", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("training_datasets")
