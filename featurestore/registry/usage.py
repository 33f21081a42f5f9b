"""Usage: reads of features by consumers, recorded as events and rolled up per UTC day in the
same transaction. Every statistic reads the daily roll-up only, so it stays fast with millions
of events."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from featurestore.registry.records import UsageEvent
from featurestore.registry.schema import as_utc, features_t, usage_daily_t, usage_t


class Usage:
    """The registry's usage events and statistics."""

    _engine: Engine

    def record_usage(self, project: str, events: Iterable[UsageEvent]) -> int:
        """Record the events and add them to the daily roll-up; returns how many were recorded."""
        rows = [
            {
                "project": project,
                "at": e.at,
                "consumer": e.consumer,
                "kind": e.kind,
                "view": e.view,
                "feature": e.feature,
                "rows": e.rows,
                "reads": e.reads,
            }
            for e in events
        ]
        if rows:
            with self._engine.begin() as conn:
                conn.execute(usage_t.insert(), rows)
                _add_daily_usage(conn, rows)
        return len(rows)

    def usage_summary(self, project: str, *, since: date | None = None) -> list[dict[str, Any]]:
        """Reads per feature and consumer: number of reads, rows read, last read (aware UTC),
        most read first; from UTC day ``since`` on, or ever. Reads the daily roll-up only."""
        d = usage_daily_t.c
        query = (
            sa.select(
                d.view,
                d.feature,
                d.consumer,
                d.kind,
                sa.func.sum(d.reads).label("reads"),
                sa.func.sum(d.rows).label("rows"),
                sa.func.max(d.last_read).label("last_read"),
            )
            .where(*_daily_filter(project, since))
            .group_by(d.view, d.feature, d.consumer, d.kind)
            .order_by(sa.text("reads DESC"), d.view, d.feature, d.consumer, d.kind)
        )
        with self._engine.connect() as conn:
            return [
                {
                    "view": r.view,
                    "feature": r.feature,
                    "consumer": r.consumer,
                    "kind": r.kind,
                    "reads": int(r.reads),
                    "rows": int(r.rows or 0),
                    "last_read": as_utc(r.last_read),
                }
                for r in conn.execute(query)
            ]

    def most_read_features(self, project: str, *, since: date | None = None, limit: int = 20) -> list[dict[str, Any]]:
        """The most read features from UTC day ``since`` on (or ever), most read first: view,
        feature, reads, rows, number of consumers and last read. Reads the daily roll-up only."""
        d = usage_daily_t.c
        query = (
            sa.select(
                d.view,
                d.feature,
                sa.func.sum(d.reads).label("reads"),
                sa.func.sum(d.rows).label("rows"),
                sa.func.count(sa.distinct(d.consumer)).label("consumers"),
                sa.func.max(d.last_read).label("last_read"),
            )
            .where(*_daily_filter(project, since))
            .group_by(d.view, d.feature)
            .order_by(sa.text("reads DESC"), d.view, d.feature)
            .limit(limit)
        )
        with self._engine.connect() as conn:
            return [
                {
                    "view": r.view,
                    "feature": r.feature,
                    "reads": int(r.reads),
                    "rows": int(r.rows or 0),
                    "consumers": int(r.consumers),
                    "last_read": as_utc(r.last_read),
                }
                for r in conn.execute(query)
            ]

    def reads_per_day(
        self,
        project: str,
        *,
        since: date | None = None,
        view: str | None = None,
        feature: str | None = None,
        consumer: str | None = None,
    ) -> list[tuple[date, int]]:
        """Reads per UTC day, oldest first, optionally of one view, feature or consumer; days
        without reads are left out. Reads the daily roll-up only."""
        d = usage_daily_t.c
        where = _daily_filter(project, since)
        for column, value in ((d.view, view), (d.feature, feature), (d.consumer, consumer)):
            if value is not None:
                where.append(column == value)
        query = sa.select(d.day, sa.func.sum(d.reads).label("reads")).where(*where).group_by(d.day).order_by(d.day)
        with self._engine.connect() as conn:
            return [(_as_date(r.day), int(r.reads)) for r in conn.execute(query)]

    def unread_features(self, project: str, *, since: datetime) -> list[dict[str, Any]]:
        """The project's features nobody has read since ``since``: view, feature and last read
        (``None``: never read), never read first. Reads the daily roll-up only."""
        d = usage_daily_t.c
        last = (
            sa.select(d.view, d.feature, sa.func.max(d.last_read).label("last_read"))
            .where(d.project == project)
            .group_by(d.view, d.feature)
            .subquery()
        )
        f = features_t.c
        query = (
            sa.select(f.view, f.name, last.c.last_read)
            .select_from(features_t.outerjoin(last, sa.and_(last.c.view == f.view, last.c.feature == f.name)))
            .where(f.project == project)
            .order_by(f.view, f.name)
        )
        with self._engine.connect() as conn:
            rows = [(r.view, r.name, as_utc(r.last_read)) for r in conn.execute(query)]
        unread = [
            {"view": v, "feature": n, "last_read": at} for v, n, at in rows if at is None or at < since.astimezone(UTC)
        ]
        return sorted(
            unread, key=lambda u: (u["last_read"] is not None, u["last_read"] or since, u["view"], u["feature"])
        )


def _daily_filter(project: str, since: date | None) -> list[sa.ColumnElement[bool]]:
    where = [usage_daily_t.c.project == project]
    if since is not None:
        where.append(usage_daily_t.c.day >= since)
    return where


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def _add_daily_usage(conn: sa.Connection, events: Sequence[Mapping[str, Any]]) -> None:
    """Add usage rows (``usage_events`` rows) to the daily roll-up: one upsert per project, UTC
    day, view, feature, consumer and kind, in the caller's transaction."""
    totals: dict[tuple[str, date, str, str, str, str], list[Any]] = {}
    for e in events:
        at: datetime = e["at"] if e["at"].tzinfo else e["at"].replace(tzinfo=UTC)
        at = at.astimezone(UTC)
        key = (e["project"], at.date(), e["view"], e["feature"], e["consumer"], e["kind"])
        total = totals.get(key)
        if total is None:
            totals[key] = [e["reads"], e["rows"], at]
        else:
            total[0] += e["reads"]
            total[1] += e["rows"]
            total[2] = max(total[2], at)
    keys = ("project", "day", "view", "feature", "consumer", "kind")
    values = [
        {**dict(zip(keys, key, strict=True)), "reads": reads, "rows": rows, "last_read": last}
        for key, (reads, rows, last) in totals.items()
    ]
    d = usage_daily_t.c
    dialect = conn.dialect.name
    if dialect in ("sqlite", "postgresql"):
        # INSERT ... ON CONFLICT DO UPDATE: one statement, safe against concurrent writers.
        from sqlalchemy.dialects import postgresql, sqlite

        stmt = (sqlite.insert if dialect == "sqlite" else postgresql.insert)(usage_daily_t)
        new = stmt.excluded
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=list(keys),
                set_={
                    "reads": d.reads + new.reads,
                    "rows": d.rows + new.rows,
                    "last_read": sa.case((new.last_read > d.last_read, new.last_read), else_=d.last_read),
                },
            ),
            values,
        )
        return
    for v in values:  # other databases: update, or insert what is not there yet
        match = [getattr(d, k) == v[k] for k in keys]
        updated = conn.execute(
            usage_daily_t.update()
            .where(*match)
            .values(
                reads=d.reads + v["reads"],
                rows=d.rows + v["rows"],
                last_read=sa.case((d.last_read < v["last_read"], v["last_read"]), else_=d.last_read),
            )
        )
        if updated.rowcount == 0:
            conn.execute(usage_daily_t.insert().values(**v))


def backfill_usage_daily(conn: sa.Connection) -> None:
    """Roll up every usage event into an empty ``usage_daily`` (a registry whose roll-up table
    was just created over existing events), in the caller's transaction."""
    u = usage_t.c
    if conn.execute(sa.select(u.id).limit(1)).first() is None:
        return
    # SQLite keeps datetimes as ISO text: date() takes their day; elsewhere a cast does.
    day = sa.func.date(u.at) if conn.dialect.name == "sqlite" else sa.cast(u.at, sa.Date)
    groups = (u.project, day, u.view, u.feature, u.consumer, u.kind)
    select = sa.select(*groups, sa.func.sum(u.reads), sa.func.sum(u.rows), sa.func.max(u.at)).group_by(*groups)
    names = ["project", "day", "view", "feature", "consumer", "kind", "reads", "rows", "last_read"]
    conn.execute(usage_daily_t.insert().from_select(names, select))
