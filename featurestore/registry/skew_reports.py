"""Skew reports in the registry: every report ``featurestore skew`` computed, kept as JSON.

Functions of a :class:`~featurestore.registry.Registry` rather than a mixin of it: the report's
shape belongs to :mod:`featurestore.skew`, which builds and reads it; this module stores rows.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from featurestore.registry.schema import skew_reports_t

if TYPE_CHECKING:
    from featurestore.registry import Registry


@dataclass(frozen=True)
class SkewReportRow:
    """One recorded report: its id, service, window, when and by whom, and the report's JSON."""

    id: int
    project: str
    service: str
    since: datetime
    until: datetime | None
    computed_at: datetime
    computed_by: str
    report: dict[str, Any]


def record_skew_report(registry: Registry, report: Mapping[str, Any]) -> int:
    """Store ``report`` (``SkewReport.to_dict()``) and return its id."""
    with registry._engine.begin() as conn:  # the registry's engine: one database for every record
        result = conn.execute(
            skew_reports_t.insert().values(
                project=report["project"],
                service=report["service"],
                since=datetime.fromisoformat(report["since"]),
                until=datetime.fromisoformat(report["until"]) if report["until"] else None,
                computed_at=datetime.fromisoformat(report["computed_at"]),
                computed_by=report["computed_by"],
                rows=report["rows"],
                values_compared=report["values_compared"],
                matched=report["matched"],
                report=json.dumps(report, default=str),
            )
        )
        key = result.inserted_primary_key
    return int(key[0]) if key else 0


def list_skew_reports(
    registry: Registry, project: str, *, service: str | None = None, limit: int = 20
) -> list[SkewReportRow]:
    """The project's reports (of ``service``, when given), newest first."""
    c = skew_reports_t.c
    query = sa.select(skew_reports_t).where(c.project == project)
    if service is not None:
        query = query.where(c.service == service)
    query = query.order_by(c.id.desc()).limit(limit)
    with registry._engine.connect() as conn:
        return [_row(r) for r in conn.execute(query)]


def latest_skew_reports(registry: Registry, project: str) -> list[SkewReportRow]:
    """Each service's newest report, by service name."""
    c = skew_reports_t.c
    newest = sa.select(sa.func.max(c.id)).where(c.project == project).group_by(c.service)
    query = sa.select(skew_reports_t).where(c.id.in_(newest)).order_by(c.service)
    with registry._engine.connect() as conn:
        return [_row(r) for r in conn.execute(query)]


def _row(r: sa.Row[Any]) -> SkewReportRow:
    return SkewReportRow(
        id=r.id,
        project=r.project,
        service=r.service,
        since=r.since,
        until=r.until,
        computed_at=r.computed_at,
        computed_by=r.computed_by,
        report={**json.loads(r.report), "id": r.id},
    )
