"""Source probes: each source's reachability, schema, sample, row count and time range (issue 18, part 2).

Placeholder reserved this session so that three pieces of work in parallel chain their migrations
without colliding: filled in by the work that needs it (or removed, with the chain relinked, before
any release).

Revision ID: 0010_source_probes
Revises: 0009_feature_requests
"""

from __future__ import annotations

revision = "0010_source_probes"
down_revision: str | None = "0009_feature_requests"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
