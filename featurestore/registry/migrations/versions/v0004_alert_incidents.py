"""Alert incidents and their deliveries.

``alert_incidents``: a feature view stale or a scheduled run given up, opened and cleared by the
scheduler; ``alert_deliveries``: each message of an incident to each alert channel, with its
status, attempts and last error.

Revision ID: 0004_alert_incidents
Revises: 0003_tokens_and_audit
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_alert_incidents"
down_revision: str | None = "0003_tokens_and_audit"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "alert_incidents",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("project", sa.String(200), nullable=False),
        sa.Column("view", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("opened_at", sa.DateTime, nullable=False),
        sa.Column("cleared_at", sa.DateTime, nullable=True),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("cleared_detail", sa.Text, nullable=True),
    )
    op.create_index("ix_alert_incidents_project", "alert_incidents", ["project"])
    op.create_table(
        "alert_deliveries",
        sa.Column("incident_id", sa.Integer, primary_key=True),
        sa.Column("message", sa.String(20), primary_key=True),
        sa.Column("channel", sa.String(100), primary_key=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_attempt_at", sa.DateTime, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("alert_deliveries")
    op.drop_index("ix_alert_incidents_project", "alert_incidents")
    op.drop_table("alert_incidents")
