"""Served vectors: the skew reports computed from logged online lookups (issue 16, part 4).

Placeholder reserved this session so that three pieces of work in parallel chain their migrations
without colliding: filled in by the work that needs it (or removed, with the chain relinked, before
any release).

Revision ID: 0008_served_vectors
Revises: 0007_model_traffic
"""

from __future__ import annotations

revision = "0008_served_vectors"
down_revision: str | None = "0007_model_traffic"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
