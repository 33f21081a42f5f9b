"""Feature requests in the registry: the requests, their supporters' votes, their history and the
notifications the UI shows (see :mod:`featurestore.feature_requests` for the SDK).

Every change of state is checked and written in one transaction under the project's lock, so two
engineers deciding one request at once, or two runs delivering it, see each other's outcome: the
second gets :class:`RequestStateError`, never a second history event.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from featurestore.errors import InvalidRequestError, NotFoundError
from featurestore.registry.access import _audit
from featurestore.registry.locks import lock_project
from featurestore.registry.schema import (
    entities_t,
    feature_request_events_t,
    feature_request_notifications_t,
    feature_request_votes_t,
    feature_requests_t,
    now,
)


class RequestStatus(StrEnum):
    """Where a feature request stands. ``open`` → ``accepted`` → ``in_progress`` (linked to a view
    and features) → ``delivered`` (a run published them); ``declined`` (with a reason) from any
    state before delivery. ``delivered`` and ``declined`` are final."""

    OPEN = "open"
    ACCEPTED = "accepted"
    IN_PROGRESS = "in_progress"
    DELIVERED = "delivered"
    DECLINED = "declined"


FINAL = frozenset({RequestStatus.DELIVERED, RequestStatus.DECLINED})
TRANSITIONS: Mapping[str, frozenset[RequestStatus]] = {
    # event -> the states it may start from
    "supported": frozenset({RequestStatus.OPEN, RequestStatus.ACCEPTED, RequestStatus.IN_PROGRESS}),
    "accepted": frozenset({RequestStatus.OPEN}),
    "declined": frozenset({RequestStatus.OPEN, RequestStatus.ACCEPTED, RequestStatus.IN_PROGRESS}),
    "linked": frozenset({RequestStatus.OPEN, RequestStatus.ACCEPTED, RequestStatus.IN_PROGRESS}),
    "delivered": frozenset({RequestStatus.IN_PROGRESS}),
}
_VERBS = {
    "supported": "support",
    "accepted": "accept",
    "declined": "decline",
    "linked": "link",
    "delivered": "deliver",
}


class RequestStateError(InvalidRequestError):
    """The request's state does not allow this (accepting a declined request, supporting a
    delivered one). The message says what state it is in and what can be done."""


class DuplicateSupportError(InvalidRequestError):
    """This person already supports the request (or filed it): one vote each."""


@dataclass(frozen=True)
class RequestSupport:
    """One supporter's vote, with their comment."""

    voter: str
    comment: str
    at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {"voter": self.voter, "comment": self.comment, "at": self.at}


@dataclass(frozen=True)
class RequestEvent:
    """One step of a request's history."""

    at: datetime
    actor: str
    event: str
    detail: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"at": self.at, "actor": self.actor, "event": self.event, "detail": self.detail}


@dataclass(frozen=True)
class FeatureRequestRecord:
    """A feature request as the registry holds it, with its supporters and history (oldest first)."""

    id: int
    project: str
    title: str
    entity: str
    description: str
    reason: str
    due: date | None
    model: str | None
    status: RequestStatus
    requester: str
    created_at: datetime
    updated_at: datetime
    decided_by: str | None
    decline_reason: str | None
    view: str | None
    features: tuple[str, ...]
    delivered_at: datetime | None
    delivered_run: str | None
    supporters: tuple[RequestSupport, ...] = ()
    history: tuple[RequestEvent, ...] = ()

    @property
    def support(self) -> int:
        """Votes: the supporters (the requester is not counted)."""
        return len(self.supporters)

    @property
    def is_open(self) -> bool:
        return self.status not in FINAL

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "project": self.project,
            "title": self.title,
            "entity": self.entity,
            "description": self.description,
            "reason": self.reason,
            "due": self.due,
            "model": self.model,
            "status": self.status.value,
            "requester": self.requester,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "decided_by": self.decided_by,
            "decline_reason": self.decline_reason,
            "view": self.view,
            "features": list(self.features),
            "delivered_at": self.delivered_at,
            "delivered_run": self.delivered_run,
            "support": self.support,
            "supporters": [s.to_dict() for s in self.supporters],
            "history": [e.to_dict() for e in self.history],
        }


@dataclass(frozen=True)
class RequestNotification:
    """A message the UI shows ``recipient``: a request they filed or supported was delivered."""

    id: int
    recipient: str
    request_id: int
    at: datetime
    message: str
    read_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "recipient": self.recipient,
            "request_id": self.request_id,
            "at": self.at,
            "message": self.message,
            "read": self.read_at is not None,
        }


class FeatureRequests:
    """The registry's feature requests (a part of :class:`~featurestore.registry.Registry`)."""

    _engine: Engine

    def file_request(
        self,
        project: str,
        *,
        title: str,
        entity: str,
        description: str,
        reason: str,
        requester: str,
        due: date | None = None,
        model: str | None = None,
    ) -> FeatureRequestRecord:
        """Record a new ``open`` request; the entity must be one of the project's."""
        at = now()
        with self._engine.begin() as conn:
            lock_project(conn, project)
            entities = list(conn.execute(sa.select(entities_t.c.name).where(entities_t.c.project == project)).scalars())
            if entity not in entities:
                raise NotFoundError("entity", entity, project=project, candidates=entities)
            inserted = conn.execute(
                feature_requests_t.insert().values(
                    project=project,
                    title=title,
                    entity=entity,
                    description=description,
                    reason=reason,
                    due=due,
                    model=model,
                    status=RequestStatus.OPEN.value,
                    requester=requester[:200],
                    created_at=at,
                    updated_at=at,
                    features="[]",
                )
            )
            request_id = int(inserted.inserted_primary_key[0])  # type: ignore[index]  # set on every insert
            detail = {"title": title, "entity": entity, "due": due.isoformat() if due else None, "model": model}
            _event(conn, request_id, requester, "filed", detail, at)
            _audit(conn, project, requester, "request.file", f"feature_request:{request_id}", detail)
        return self.get_request(project, request_id)

    def get_request(self, project: str, request_id: int) -> FeatureRequestRecord:
        """A request with its supporters and history, or :class:`NotFoundError`."""
        with self._engine.connect() as conn:
            found = _records(conn, project, [feature_requests_t.c.id == request_id], with_history=True)
        if not found:
            raise NotFoundError("feature request", f"#{request_id}", project=project)
        return found[0]

    def list_requests(
        self, project: str, *, statuses: Iterable[RequestStatus | str] | None = None, view: str | None = None
    ) -> list[FeatureRequestRecord]:
        """The project's requests (of ``statuses``, linked to ``view``), newest first, with their supporters."""
        where: list[Any] = []
        if statuses is not None:
            where.append(feature_requests_t.c.status.in_([RequestStatus(s).value for s in statuses]))
        if view is not None:
            where.append(feature_requests_t.c.view == view)
        with self._engine.connect() as conn:
            return _records(conn, project, where, with_history=False)

    def support_request(self, project: str, request_id: int, *, voter: str, comment: str = "") -> FeatureRequestRecord:
        """Add ``voter``'s vote with a comment: once per person, not the requester's own."""
        at = now()
        with self._engine.begin() as conn:
            lock_project(conn, project)
            row = _current(conn, project, request_id, "supported")
            if row.requester == voter:
                raise DuplicateSupportError(
                    f"'{voter}' filed feature request #{request_id}: the requester's need counts already; "
                    "ask colleagues who need it too to support it"
                )
            voted = conn.execute(
                sa.select(feature_request_votes_t.c.at).where(
                    feature_request_votes_t.c.request_id == request_id, feature_request_votes_t.c.voter == voter
                )
            ).first()
            if voted is not None:
                raise DuplicateSupportError(
                    f"'{voter}' already supports feature request #{request_id} (since {voted.at:%Y-%m-%d}): "
                    "one vote per person"
                )
            conn.execute(
                feature_request_votes_t.insert().values(request_id=request_id, voter=voter, comment=comment, at=at)
            )
            conn.execute(feature_requests_t.update().where(feature_requests_t.c.id == request_id).values(updated_at=at))
            _event(conn, request_id, voter, "supported", {"comment": comment}, at)
            _audit(conn, project, voter, "request.support", f"feature_request:{request_id}", {"comment": comment})
        return self.get_request(project, request_id)

    def decide_request(
        self,
        project: str,
        request_id: int,
        event: str,
        *,
        actor: str,
        values: Mapping[str, Any],
        detail: Mapping[str, Any],
    ) -> FeatureRequestRecord:
        """Move a request through ``event`` (``accepted``, ``declined``, ``linked``, ``delivered``),
        checking in the transaction that its current state allows it; ``values`` are the columns
        set with the new status."""
        at = now()
        status = {
            "accepted": RequestStatus.ACCEPTED,
            "declined": RequestStatus.DECLINED,
            "linked": RequestStatus.IN_PROGRESS,
            "delivered": RequestStatus.DELIVERED,
        }[event]
        with self._engine.begin() as conn:
            lock_project(conn, project)
            _current(conn, project, request_id, event)
            conn.execute(
                feature_requests_t.update()
                .where(feature_requests_t.c.id == request_id)
                .values(status=status.value, updated_at=at, **values)
            )
            _event(conn, request_id, actor, event, detail, at)
            _audit(conn, project, actor, f"request.{_VERBS[event]}", f"feature_request:{request_id}", detail)
        return self.get_request(project, request_id)

    def deliver_request(
        self, project: str, request_id: int, *, view: str, published: Collection[str], run_id: str
    ) -> FeatureRequestRecord:
        """Deliver a request because run ``run_id`` of ``view`` published rows of the features
        ``published``. One transaction checks that the request is still in progress, linked to
        ``view`` and to features among ``published`` (an engineer may re-link it while the run
        publishes: :class:`RequestStateError` then), closes it, records the event and the audit
        entry, and writes the UI notification of its requester and each supporter: the state
        change and the notifications are kept, or lost, together."""
        at = now()
        with self._engine.begin() as conn:
            lock_project(conn, project)
            row = _current(conn, project, request_id, "delivered")
            features = list(json.loads(row.features or "[]"))
            if row.view != view or not set(features) <= set(published):
                raise RequestStateError(
                    f"Cannot deliver feature request #{request_id} with run {run_id} of '{view}': it is linked to "
                    f"{row.view}: {', '.join(features)} now; the next run publishing those delivers it."
                )
            conn.execute(
                feature_requests_t.update()
                .where(feature_requests_t.c.id == request_id)
                .values(status=RequestStatus.DELIVERED.value, updated_at=at, delivered_at=at, delivered_run=run_id)
            )
            detail = {"run_id": run_id, "view": view, "features": features}
            _event(conn, request_id, f"run:{run_id}", "delivered", detail, at)
            _audit(conn, project, f"run:{run_id}", "request.deliver", f"feature_request:{request_id}", detail)
            voters = conn.execute(
                sa.select(feature_request_votes_t.c.voter)
                .where(feature_request_votes_t.c.request_id == request_id)
                .order_by(feature_request_votes_t.c.at, feature_request_votes_t.c.voter)
            ).scalars()
            message = delivered_line(request_id, row.title, view, features)
            for recipient in dict.fromkeys([row.requester, *voters]):
                conn.execute(
                    feature_request_notifications_t.insert().values(
                        project=project, recipient=recipient, request_id=request_id, at=at, message=message
                    )
                )
        return self.get_request(project, request_id)

    # ------------------------------------------------------------------ notifications

    def notifications(self, project: str, recipient: str, *, unread_only: bool = False) -> list[RequestNotification]:
        """``recipient``'s notifications, newest first (the 100 newest)."""
        t = feature_request_notifications_t
        query = sa.select(t).where(t.c.project == project, t.c.recipient == recipient)
        if unread_only:
            query = query.where(t.c.read_at.is_(None))
        with self._engine.connect() as conn:
            rows = conn.execute(query.order_by(t.c.id.desc()).limit(100)).all()
        return [
            RequestNotification(
                id=r.id, recipient=r.recipient, request_id=r.request_id, at=r.at, message=r.message, read_at=r.read_at
            )
            for r in rows
        ]

    def mark_notifications_read(self, project: str, recipient: str) -> int:
        """Mark every unread notification of ``recipient`` read; returns how many."""
        t = feature_request_notifications_t
        with self._engine.begin() as conn:
            result = conn.execute(
                t.update()
                .where(t.c.project == project, t.c.recipient == recipient, t.c.read_at.is_(None))
                .values(read_at=now())
            )
        return int(result.rowcount or 0)

    def request_counts(self, project: str) -> dict[str, int]:
        """Requests per status, and ``votes``: every supporter's vote, of the project."""
        with self._engine.connect() as conn:
            counts = {
                str(status): int(n)
                for status, n in conn.execute(
                    sa.select(feature_requests_t.c.status, sa.func.count())
                    .where(feature_requests_t.c.project == project)
                    .group_by(feature_requests_t.c.status)
                )
            }
            votes = conn.execute(
                sa.select(sa.func.count())
                .select_from(
                    feature_request_votes_t.join(
                        feature_requests_t, feature_requests_t.c.id == feature_request_votes_t.c.request_id
                    )
                )
                .where(feature_requests_t.c.project == project)
            ).scalar_one()
        return {**{s.value: counts.get(s.value, 0) for s in RequestStatus}, "votes": int(votes)}


def delivered_line(request_id: int, title: str, view: str | None, features: Sequence[str]) -> str:
    """The one-line notice of a delivery (the UI's notification, the first line of the message)."""
    named = ", ".join(f"{view}:{f}" for f in features)
    return f"Feature request #{request_id} '{title}' was delivered: {named} {'is' if len(features) == 1 else 'are'} published."


def _current(conn: sa.Connection, project: str, request_id: int, event: str) -> Any:
    row = conn.execute(
        sa.select(feature_requests_t).where(
            feature_requests_t.c.project == project, feature_requests_t.c.id == request_id
        )
    ).first()
    if row is None:
        raise NotFoundError("feature request", f"#{request_id}", project=project)
    status = RequestStatus(row.status)
    if status not in TRANSITIONS[event]:
        raise RequestStateError(_refusal(request_id, status, event, row))
    return row


def _refusal(request_id: int, status: RequestStatus, event: str, row: Any) -> str:
    verb = _VERBS[event]
    if status is RequestStatus.DELIVERED:
        why = f"it was delivered ({row.view}: {', '.join(json.loads(row.features))})"
        todo = "file a new request for what is still missing"
    elif status is RequestStatus.DECLINED:
        why = f"it was declined by {row.decided_by}: {row.decline_reason}"
        todo = "file a new request if the need has changed"
    elif event == "accepted":
        why = f"it is {status.value.replace('_', ' ')} already"
        todo = "link it to the view and features that fulfil it, or decline it"
    else:  # delivered before being linked
        why = f"it is {status.value.replace('_', ' ')}, not linked to a view and features"
        todo = "link it first ('featurestore request link')"
    return f"Cannot {verb} feature request #{request_id}: {why}; {todo}."


def _event(
    conn: sa.Connection, request_id: int, actor: str, event: str, detail: Mapping[str, Any], at: datetime
) -> None:
    conn.execute(
        feature_request_events_t.insert().values(
            request_id=request_id,
            at=at,
            actor=actor[:200],
            event=event,
            detail=json.dumps(dict(detail), sort_keys=True, default=str),
        )
    )


def _records(
    conn: sa.Connection, project: str, where: Sequence[Any], *, with_history: bool
) -> list[FeatureRequestRecord]:
    rows = conn.execute(
        sa.select(feature_requests_t)
        .where(feature_requests_t.c.project == project, *where)
        .order_by(feature_requests_t.c.id.desc())
    ).all()
    ids = [r.id for r in rows]
    votes: dict[int, list[RequestSupport]] = {}
    events: dict[int, list[RequestEvent]] = {}
    if ids:
        v = feature_request_votes_t
        for r in conn.execute(sa.select(v).where(v.c.request_id.in_(ids)).order_by(v.c.at, v.c.voter)):
            votes.setdefault(r.request_id, []).append(RequestSupport(voter=r.voter, comment=r.comment, at=r.at))
        if with_history:
            e = feature_request_events_t
            for r in conn.execute(sa.select(e).where(e.c.request_id.in_(ids)).order_by(e.c.id)):
                events.setdefault(r.request_id, []).append(
                    RequestEvent(at=r.at, actor=r.actor, event=r.event, detail=json.loads(r.detail))
                )
    return [
        FeatureRequestRecord(
            id=r.id,
            project=r.project,
            title=r.title,
            entity=r.entity,
            description=r.description,
            reason=r.reason,
            due=r.due,
            model=r.model,
            status=RequestStatus(r.status),
            requester=r.requester,
            created_at=r.created_at,
            updated_at=r.updated_at,
            decided_by=r.decided_by,
            decline_reason=r.decline_reason,
            view=r.view,
            features=tuple(json.loads(r.features)),
            delivered_at=r.delivered_at,
            delivered_run=r.delivered_run,
            supporters=tuple(votes.get(r.id, ())),
            history=tuple(events.get(r.id, ())),
        )
        for r in rows
    ]
