"""Model versions: which version of a model (registered in MLflow's model registry) consumes
which feature service, views' versions and training datasets.

``model_versions``: one row per recorded model version (the MLflow run that produced it, the
training datasets that run logged, the feature service and each view's version they were built
from, who recorded it and when). Recording the same version again replaces its row.

Revision ID: 0006_model_versions
Revises: 0005_training_datasets
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_model_versions"
down_revision: str | None = "0005_training_datasets"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "model_versions",
        sa.Column("project", sa.String(200), primary_key=True),
        sa.Column("model", sa.String(200), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("mlflow_run_id", sa.String(64), nullable=False),
        sa.Column("model_uri", sa.Text, nullable=False),
        sa.Column("feature_service", sa.String(200), nullable=True),
        sa.Column("view_versions", sa.Text, nullable=False),
        sa.Column("datasets", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("model_versions")
