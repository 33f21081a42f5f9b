"""API tokens and the audit log.

``api_tokens``: one row per token (the secret only as its SHA-256, with role, project, expiry,
revocation and last use); ``audit_log``: every state change, with who, when and what.

Revision ID: 0003_tokens_and_audit
Revises: 0002_run_online_counts
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_tokens_and_audit"
down_revision: str | None = "0002_run_online_counts"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.String(12), primary_key=True),
        sa.Column("project", sa.String(200), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("models", sa.Text, nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("expires_at", sa.DateTime, nullable=True),
        sa.Column("revoked_at", sa.DateTime, nullable=True),
        sa.Column("revoked_by", sa.String(200), nullable=True),
        sa.Column("last_used_at", sa.DateTime, nullable=True),
    )
    op.create_index("ix_api_tokens_project", "api_tokens", ["project"])
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("project", sa.String(200), nullable=False),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("action", sa.String(60), nullable=False),
        sa.Column("target", sa.String(300), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
    )
    op.create_index("ix_audit_log_project", "audit_log", ["project"])


def downgrade() -> None:
    op.drop_index("ix_audit_log_project", "audit_log")
    op.drop_table("audit_log")
    op.drop_index("ix_api_tokens_project", "api_tokens")
    op.drop_table("api_tokens")
