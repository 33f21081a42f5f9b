"""Baseline: the registry's schema as release 0.1 created it.

Release 0.1 is the last release without migrations.
Release 0.1 created its tables with ``create_all`` each time it opened a registry, so a registry
it wrote has every table below and no ``alembic_version``. This revision creates only the tables
a database lacks: on a fresh database all of them, on a 0.1 registry none (it is adopted as it
is, as a stamp would), and on a registry from before 0.1 added a table (``usage_daily``,
``run_quality``, ``consistency_checks``) the missing ones, filling ``usage_daily`` from the usage
events as 0.1 did. Frozen: later changes are later revisions.

Revision ID: 0001_baseline
Revises:
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0001_baseline"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def _definition(name: str, *extra: sa.Column[Any]) -> tuple[str, list[sa.Column[Any]]]:
    return name, [
        sa.Column("project", sa.String(200), primary_key=True),
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("spec", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        *extra,
    ]


def _tables() -> list[tuple[str, list[sa.Column[Any]]]]:
    """Every table of release 0.1, in the order it created them."""
    return [
        _definition("entities"),
        _definition("sources"),
        _definition(
            "feature_views",
            sa.Column("version", sa.Integer, nullable=False),
            sa.Column("fingerprint", sa.String(64), nullable=False),
        ),
        _definition("feature_services"),
        _definition("models"),
        (
            "feature_view_versions",
            [
                sa.Column("project", sa.String(200), primary_key=True),
                sa.Column("name", sa.String(200), primary_key=True),
                sa.Column("version", sa.Integer, primary_key=True),
                sa.Column("fingerprint", sa.String(64), nullable=False),
                sa.Column("spec", sa.Text, nullable=False),
                sa.Column("changes", sa.Text, nullable=False),
                sa.Column("created_at", sa.DateTime, nullable=False),
            ],
        ),
        (
            "features",
            [
                sa.Column("project", sa.String(200), primary_key=True),
                sa.Column("view", sa.String(200), primary_key=True),
                sa.Column("name", sa.String(200), primary_key=True),
                sa.Column("dtype", sa.String(20), nullable=False),
                sa.Column("description", sa.Text, nullable=False),
                sa.Column("owner", sa.String(200), nullable=False),
                sa.Column("tags", sa.Text, nullable=False),
            ],
        ),
        (
            "lineage_edges",
            [
                sa.Column("project", sa.String(200), primary_key=True),
                sa.Column("src_kind", sa.String(40), primary_key=True),
                sa.Column("src_name", sa.String(200), primary_key=True),
                sa.Column("dst_kind", sa.String(40), primary_key=True),
                sa.Column("dst_name", sa.String(200), primary_key=True),
            ],
        ),
        (
            "runs",
            [
                sa.Column("id", sa.String(36), primary_key=True),
                sa.Column("project", sa.String(200), nullable=False),
                sa.Column("view", sa.String(200), nullable=False),
                sa.Column("view_version", sa.Integer, nullable=False),
                sa.Column("engine", sa.String(40), nullable=False),
                sa.Column("window_start", sa.DateTime, nullable=True),
                sa.Column("window_end", sa.DateTime, nullable=True),
                sa.Column("status", sa.String(20), nullable=False),
                sa.Column("rows_computed", sa.BigInteger, nullable=True),
                sa.Column("rows_offline", sa.BigInteger, nullable=True),
                sa.Column("rows_online", sa.BigInteger, nullable=True),
                sa.Column("started_at", sa.DateTime, nullable=False),
                sa.Column("finished_at", sa.DateTime, nullable=True),
                sa.Column("timings", sa.Text, nullable=False),
                sa.Column("watermark", sa.DateTime, nullable=True),
                sa.Column("error", sa.Text, nullable=True),
            ],
        ),
        (
            "usage_events",
            [
                sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
                sa.Column("project", sa.String(200), nullable=False),
                sa.Column("at", sa.DateTime, nullable=False),
                sa.Column("consumer", sa.String(200), nullable=False),
                sa.Column("kind", sa.String(20), nullable=False),
                sa.Column("view", sa.String(200), nullable=False),
                sa.Column("feature", sa.String(200), nullable=False),
                sa.Column("rows", sa.BigInteger, nullable=False),
                sa.Column("reads", sa.BigInteger, nullable=False, server_default="1"),
            ],
        ),
        (
            "usage_daily",
            [
                sa.Column("project", sa.String(200), primary_key=True),
                sa.Column("day", sa.Date, primary_key=True),
                sa.Column("view", sa.String(200), primary_key=True),
                sa.Column("feature", sa.String(200), primary_key=True),
                sa.Column("consumer", sa.String(200), primary_key=True),
                sa.Column("kind", sa.String(20), primary_key=True),
                sa.Column("reads", sa.BigInteger, nullable=False),
                sa.Column("rows", sa.BigInteger, nullable=False),
                sa.Column("last_read", sa.DateTime, nullable=False),
            ],
        ),
        (
            "consistency_checks",
            [
                sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
                sa.Column("project", sa.String(200), nullable=False),
                sa.Column("view", sa.String(200), nullable=False),
                sa.Column("checked_at", sa.DateTime, nullable=False),
                sa.Column("consistent", sa.Boolean, nullable=False),
                sa.Column("checked", sa.BigInteger, nullable=False),
                sa.Column("mismatched", sa.BigInteger, nullable=False),
                sa.Column("missing", sa.BigInteger, nullable=False),
                sa.Column("extra", sa.BigInteger, nullable=False),
                sa.Column("report", sa.Text, nullable=False),
            ],
        ),
        (
            "run_quality",
            [
                sa.Column("run_id", sa.String(36), primary_key=True),
                sa.Column("validation", sa.Text, nullable=False),
                sa.Column("statistics", sa.Text, nullable=False),
                sa.Column("recorded_at", sa.DateTime, nullable=False),
            ],
        ),
    ]


INDEXES = (
    ("ix_runs_project", "runs", "project"),
    ("ix_runs_view", "runs", "view"),
    ("ix_usage_events_project", "usage_events", "project"),
    ("ix_consistency_checks_project", "consistency_checks", "project"),
)


def upgrade() -> None:
    bind = op.get_bind()
    present = set(sa.inspect(bind).get_table_names())
    created: set[str] = set()
    for name, columns in _tables():
        if name not in present:
            op.create_table(name, *columns)
            created.add(name)
    for index, table, column in INDEXES:
        if table in created:
            op.create_index(index, table, [column])
    if "usage_daily" in created and "usage_events" in present:
        _roll_up_usage(bind)


def _roll_up_usage(bind: sa.Connection) -> None:
    """Fill the new ``usage_daily`` from the events of a registry older than the roll-up."""
    u = sa.table(
        "usage_events",
        *(sa.column(c) for c in ("project", "view", "feature", "consumer", "kind", "reads", "rows")),
        sa.column("at", sa.DateTime),
    )
    # SQLite keeps datetimes as ISO text: date() takes their day; elsewhere a cast does.
    day = sa.func.date(u.c.at) if bind.dialect.name == "sqlite" else sa.cast(u.c.at, sa.Date)
    groups = (u.c.project, day, u.c.view, u.c.feature, u.c.consumer, u.c.kind)
    select = sa.select(*groups, sa.func.sum(u.c.reads), sa.func.sum(u.c.rows), sa.func.max(u.c.at)).group_by(*groups)
    names = ["project", "day", "view", "feature", "consumer", "kind", "reads", "rows", "last_read"]
    daily = sa.table("usage_daily", *(sa.column(n) for n in names))
    bind.execute(daily.insert().from_select(names, select))


def downgrade() -> None:
    for index, table, _ in INDEXES:
        op.drop_index(index, table_name=table)
    for name, _ in reversed(_tables()):
        op.drop_table(name)
