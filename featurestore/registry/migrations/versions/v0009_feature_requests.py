"""Feature requests: requests, their supporters and history (issue 18, part 1).

Placeholder reserved this session so that three pieces of work in parallel chain their migrations
without colliding: filled in by the work that needs it (or removed, with the chain relinked, before
any release).

Revision ID: 0009_feature_requests
Revises: 0008_served_vectors
"""

from __future__ import annotations

revision = "0009_feature_requests"
down_revision: str | None = "0008_served_vectors"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
