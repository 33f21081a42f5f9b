"""Model traffic: how the model server divides a model's predictions between its versions.

``model_traffic``: one row per model that has a traffic setting (``featurestore model-traffic``):
the split (JSON, version -> percentage, summing to 100), the shadow version whose predictions
are logged but not returned (or none), who set it and when. A model without a row is served by
its newest recorded version.

Revision ID: 0007_model_traffic
Revises: 0006_model_versions
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_model_traffic"
down_revision: str | None = "0006_model_versions"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "model_traffic",
        sa.Column("project", sa.String(200), primary_key=True),
        sa.Column("model", sa.String(200), primary_key=True),
        sa.Column("split", sa.Text, nullable=False),
        sa.Column("shadow", sa.Integer, nullable=True),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.Column("updated_by", sa.String(200), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("model_traffic")
