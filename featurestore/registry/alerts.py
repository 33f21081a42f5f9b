"""Alert incidents and the delivery of their messages (see :mod:`featurestore.alerts`).

An incident is opened at most once per view and kind while open (the check and the insert are
one transaction), so a scheduler that restarts finds its open incidents here and does not alert
again. Each message of an incident (``opened``, ``cleared``) has one delivery row per channel,
created ``pending`` with the message and updated by every attempt.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from featurestore.registry.records import AlertDelivery, AlertIncident
from featurestore.registry.schema import alert_deliveries_t, alert_incidents_t

INCIDENT_KINDS = ("stale", "run_failed")
MESSAGES = ("opened", "cleared")
DELIVERY_STATUSES = ("pending", "retrying", "sent", "failed")


class Alerts:
    """The registry's alert incidents and their deliveries."""

    _engine: Engine

    def open_incident(
        self,
        project: str,
        view: str,
        kind: str,
        *,
        at: datetime,
        detail: Mapping[str, Any],
        channels: Sequence[str],
    ) -> AlertIncident | None:
        """Open an incident of ``kind`` for ``view``, with a pending ``opened`` delivery to each
        channel; ``None`` (and nothing written) when one of that view and kind is open already."""
        if kind not in INCIDENT_KINDS:
            raise ValueError(f"unknown incident kind {kind!r}: one of {INCIDENT_KINDS}")
        c = alert_incidents_t.c
        with self._engine.begin() as conn:
            found = conn.execute(
                sa.select(c.id).where(c.project == project, c.view == view, c.kind == kind, c.cleared_at.is_(None))
            ).first()
            if found is not None:
                return None
            inserted = conn.execute(
                alert_incidents_t.insert().values(
                    project=project, view=view, kind=kind, opened_at=at, detail=json.dumps(dict(detail), default=str)
                )
            ).inserted_primary_key
            if inserted is None:  # every database SQLAlchemy supports returns it for an autoincrement key
                raise RuntimeError("the registry's database gave no id for the new alert incident")
            incident_id = int(inserted[0])
            _add_deliveries(conn, incident_id, "opened", channels)
        return self.get_incident(incident_id)

    def clear_incident(
        self, incident_id: int, *, at: datetime, detail: Mapping[str, Any], channels: Sequence[str]
    ) -> bool:
        """Close an open incident, with a pending ``cleared`` delivery to each channel; False when
        it was closed already (by another process)."""
        c = alert_incidents_t.c
        with self._engine.begin() as conn:
            closed = conn.execute(
                alert_incidents_t.update()
                .where(c.id == incident_id, c.cleared_at.is_(None))
                .values(cleared_at=at, cleared_detail=json.dumps(dict(detail), default=str))
            ).rowcount
            if closed:
                _add_deliveries(conn, incident_id, "cleared", channels)
        return bool(closed)

    def get_incident(self, incident_id: int) -> AlertIncident:
        with self._engine.connect() as conn:
            rows = conn.execute(sa.select(alert_incidents_t).where(alert_incidents_t.c.id == incident_id)).all()
            return _incidents(conn, rows)[0]

    def list_incidents(
        self, project: str, *, open_only: bool = False, view: str | None = None, limit: int = 100
    ) -> list[AlertIncident]:
        """The project's incidents (of ``view``; only open ones), newest first, with their deliveries."""
        c = alert_incidents_t.c
        query = sa.select(alert_incidents_t).where(c.project == project)
        if open_only:
            query = query.where(c.cleared_at.is_(None))
        if view is not None:
            query = query.where(c.view == view)
        with self._engine.connect() as conn:
            rows = conn.execute(query.order_by(c.opened_at.desc(), c.id.desc()).limit(limit)).all()
            return _incidents(conn, rows)

    def undelivered(self, project: str) -> list[tuple[AlertIncident, AlertDelivery]]:
        """The project's deliveries still to attempt (``pending`` or ``retrying``), oldest
        incident first, each with its incident."""
        d, c = alert_deliveries_t.c, alert_incidents_t.c
        query = (
            sa.select(alert_incidents_t.c.id)
            .join(alert_deliveries_t, d.incident_id == c.id)
            .where(c.project == project, d.status.in_(("pending", "retrying")))
            .distinct()
        )
        with self._engine.connect() as conn:
            ids = [r.id for r in conn.execute(query)]
            if not ids:
                return []
            rows = conn.execute(sa.select(alert_incidents_t).where(c.id.in_(ids)).order_by(c.id)).all()
            incidents = _incidents(conn, rows)
        return [
            (incident, delivery)
            for incident in incidents
            for delivery in incident.deliveries
            if delivery.status in ("pending", "retrying")
        ]

    def record_delivery(
        self, incident_id: int, message: str, channel: str, *, status: str, at: datetime, error: str | None = None
    ) -> None:
        """One attempt at a delivery: its outcome (``sent``, ``retrying``, ``failed``) and error."""
        if status not in DELIVERY_STATUSES:
            raise ValueError(f"unknown delivery status {status!r}: one of {DELIVERY_STATUSES}")
        d = alert_deliveries_t.c
        with self._engine.begin() as conn:
            conn.execute(
                alert_deliveries_t.update()
                .where(d.incident_id == incident_id, d.message == message, d.channel == channel)
                .values(status=status, attempts=d.attempts + 1, last_attempt_at=at, error=error)
            )

    def give_up_delivery(self, incident_id: int, message: str, channel: str, *, error: str) -> None:
        """Mark a delivery failed without an attempt (its channel is no longer configured)."""
        d = alert_deliveries_t.c
        with self._engine.begin() as conn:
            conn.execute(
                alert_deliveries_t.update()
                .where(d.incident_id == incident_id, d.message == message, d.channel == channel)
                .values(status="failed", error=error)
            )


def _add_deliveries(conn: Connection, incident_id: int, message: str, channels: Iterable[str]) -> None:
    rows = [
        {"incident_id": incident_id, "message": message, "channel": ch, "status": "pending", "attempts": 0}
        for ch in dict.fromkeys(channels)
    ]
    if rows:
        conn.execute(alert_deliveries_t.insert(), rows)


def _incidents(conn: Connection, rows: Sequence[sa.Row[Any]]) -> list[AlertIncident]:
    ids = [r.id for r in rows]
    deliveries: dict[int, list[AlertDelivery]] = {i: [] for i in ids}
    if ids:
        d = alert_deliveries_t.c
        query = (
            sa.select(alert_deliveries_t).where(d.incident_id.in_(ids)).order_by(d.incident_id, d.message, d.channel)
        )
        for r in conn.execute(query):
            deliveries[r.incident_id].append(
                AlertDelivery(
                    channel=r.channel,
                    message=r.message,
                    status=r.status,
                    attempts=int(r.attempts),
                    last_attempt_at=r.last_attempt_at,
                    error=r.error,
                )
            )
    return [
        AlertIncident(
            id=int(r.id),
            project=r.project,
            view=r.view,
            kind=r.kind,
            opened_at=r.opened_at,
            cleared_at=r.cleared_at,
            detail=json.loads(r.detail),
            cleared_detail=json.loads(r.cleared_detail) if r.cleared_detail else None,
            deliveries=tuple(
                sorted(deliveries[r.id], key=lambda x: MESSAGES.index(x.message) if x.message in MESSAGES else 9)
            ),
        )
        for r in rows
    ]
