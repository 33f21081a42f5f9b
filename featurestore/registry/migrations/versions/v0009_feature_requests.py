"""Feature requests: requests, their supporters and history (issue 18, part 1).

``feature_requests``: one row per request filed by a scientist or analyst (what is needed, for
which entity, why, by when, for which model), its state (open, accepted, in_progress, delivered,
declined), who decided and why, and the view and features linked to fulfil it.
``feature_request_votes``: one row per supporter of a request (one vote each, with a comment).
``feature_request_events``: the history of each request (filed, supported, accepted, declined,
linked, delivered), who did it and when (JSON detail).
``feature_request_notifications``: what the UI shows each person: their request, or one they
supported, was delivered; read or not.

Revision ID: 0009_feature_requests
Revises: 0008_served_vectors
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_feature_requests"
down_revision: str | None = "0008_served_vectors"
branch_labels: str | None = None
depends_on: str | None = None

INDEXES = (
    ("feature_requests", "project"),
    ("feature_request_events", "request_id"),
    ("feature_request_notifications", "project"),
    ("feature_request_notifications", "recipient"),
)


def upgrade() -> None:
    op.create_table(
        "feature_requests",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("project", sa.String(200), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("entity", sa.String(200), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("due", sa.Date, nullable=True),
        sa.Column("model", sa.String(200), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("requester", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.Column("decided_by", sa.String(200), nullable=True),
        sa.Column("decline_reason", sa.Text, nullable=True),
        sa.Column("view", sa.String(200), nullable=True),
        sa.Column("features", sa.Text, nullable=False),
        sa.Column("delivered_at", sa.DateTime, nullable=True),
        sa.Column("delivered_run", sa.String(36), nullable=True),
    )
    op.create_table(
        "feature_request_votes",
        sa.Column("request_id", sa.Integer, primary_key=True),
        sa.Column("voter", sa.String(200), primary_key=True),
        sa.Column("comment", sa.Text, nullable=False),
        sa.Column("at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "feature_request_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.Integer, nullable=False),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("event", sa.String(20), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
    )
    op.create_table(
        "feature_request_notifications",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("project", sa.String(200), nullable=False),
        sa.Column("recipient", sa.String(200), nullable=False),
        sa.Column("request_id", sa.Integer, nullable=False),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("read_at", sa.DateTime, nullable=True),
    )
    for table, column in INDEXES:
        op.create_index(f"ix_{table}_{column}", table, [column])


def downgrade() -> None:
    for table, column in INDEXES:
        op.drop_index(f"ix_{table}_{column}", table)
    op.drop_table("feature_request_notifications")
    op.drop_table("feature_request_events")
    op.drop_table("feature_request_votes")
    op.drop_table("feature_requests")
