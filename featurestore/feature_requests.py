"""Feature requests: what a scientist or analyst needs that the catalog does not have yet.

A request says what is needed, for which entity, why, by when and, optionally, for which model.
Others support it (one vote each, with a comment). An engineer accepts it, declines it with a
reason, or links it to the feature view and features that fulfil it; the first successful run of
that view after the link delivers it: the request closes, and its requester and supporters are
notified in the registry UI and through the project's alert channels (``alerts.channels`` of
``featurestore.yaml``: webhooks, email), with a ``request.delivered`` message.

States (:class:`RequestStatus`)::

    open ──accept──> accepted ──link──> in_progress ──first run publishing the features──> delivered
      │                 │                    │
      └──────link───────┴──── decline (with a reason) ──> declined

An illegal step raises :class:`RequestStateError`, a second vote :class:`DuplicateSupportError`,
an unknown request :class:`~featurestore.errors.NotFoundError`. Who may do what is checked by the
API and the UI (``requests:file`` for scientists, analysts and engineers; ``requests:manage`` for
engineers); through the SDK and the CLI the registry's credentials authorise, as for ``apply``.

    requests = FeatureRequests(store)
    filed = requests.file(title="chargeback ratio", entity="customer", description="...", reason="...")
    requests.support(filed.id, comment="the fraud model needs it too", actor="ana")
    requests.link(filed.id, view="customer_spend", features=["chargeback_ratio_90d"])
"""

from __future__ import annotations

import builtins
import json
import logging
from collections.abc import Sequence
from datetime import date
from typing import Literal, Protocol

from featurestore.alert_channels import AlertChannel, AlertMessage, channel_of
from featurestore.auth import local_actor
from featurestore.definitions import FeatureView
from featurestore.errors import InvalidRequestError, NotFoundError
from featurestore.registry.requests import (
    DuplicateSupportError,
    FeatureRequestRecord,
    RequestEvent,
    RequestNotification,
    RequestStateError,
    RequestStatus,
    RequestSupport,
    delivered_line,
)
from featurestore.secrets import redact
from featurestore.store import FeatureStore

__all__ = [
    "DuplicateSupportError",
    "FeatureRequestRecord",
    "FeatureRequests",
    "PublishedRun",
    "RequestEvent",
    "RequestNotification",
    "RequestStateError",
    "RequestStatus",
    "RequestSupport",
    "deliver_published",
    "sort_requests",
]

log = logging.getLogger(__name__)

TITLE_MAX = 200
TEXT_MAX = 4000
TABS: dict[str, tuple[RequestStatus, ...]] = {
    "open": (RequestStatus.OPEN,),
    "in_progress": (RequestStatus.ACCEPTED, RequestStatus.IN_PROGRESS),
    "delivered": (RequestStatus.DELIVERED,),
    "declined": (RequestStatus.DECLINED,),
}
"""The groups the UI and ``featurestore request list --state`` show: ``in_progress`` holds the
accepted requests and those linked to a view."""
SortKey = Literal["support", "due", "newest"]


class PublishedRun(Protocol):
    """What delivery needs of a run's outcome (``etl.runs.RunResult`` has it)."""

    @property
    def run_id(self) -> str: ...
    @property
    def view(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def rows_offline(self) -> int:
        """Rows the run published offline (0: a window without data)."""
        ...


class FeatureRequests:
    """The feature requests of ``store``'s project. ``actor`` of each change defaults to this
    process's user@host (the CLI's and SDK's identity in the audit log); the API passes the caller's.
    ``channels``: where delivery messages go (default: the project's alert channels)."""

    def __init__(self, store: FeatureStore, *, channels: Sequence[AlertChannel] | None = None) -> None:
        self.store = store
        self.registry, self.project = store.registry, store.project
        self._channels = channels

    def file(
        self,
        *,
        title: str,
        entity: str,
        description: str,
        reason: str,
        due: date | None = None,
        model: str | None = None,
        actor: str | None = None,
    ) -> FeatureRequestRecord:
        """File a request: ``title`` (what is needed, in a few words: it is what search finds),
        ``entity`` (one of the project's), ``description`` (how it should be computed, what
        window), ``reason`` (why: the decision or model it serves), ``due`` and ``model``."""
        title = _text(title, "title", TITLE_MAX, required=True)
        description = _text(description, "description", TEXT_MAX, required=True)
        reason = _text(reason, "reason", TEXT_MAX, required=True)
        model = _text(model or "", "model", 200, required=False) or None
        return self.registry.file_request(
            self.project,
            title=title,
            entity=entity.strip(),
            description=description,
            reason=reason,
            due=due,
            model=model,
            requester=actor or local_actor(),
        )

    def get(self, request_id: int) -> FeatureRequestRecord:
        return self.registry.get_request(self.project, request_id)

    def list(
        self, *, tab: str | None = None, sort: SortKey = "newest", view: str | None = None
    ) -> builtins.list[FeatureRequestRecord]:
        """The requests of a ``tab`` (``open``, ``in_progress``, ``delivered``, ``declined``; all
        when None), sorted by ``support`` (most first), ``due`` (soonest first, undated last) or
        ``newest``."""
        if tab is not None and tab not in TABS:
            raise InvalidRequestError(f"unknown request state {tab!r}: choose one of {', '.join(TABS)}")
        found = self.registry.list_requests(self.project, statuses=TABS[tab] if tab else None, view=view)
        return sort_requests(found, sort)

    def support(self, request_id: int, *, comment: str = "", actor: str | None = None) -> FeatureRequestRecord:
        """Add a vote, with a comment saying why you need it too. One per person."""
        comment = _text(comment, "comment", TEXT_MAX, required=False)
        return self.registry.support_request(self.project, request_id, voter=actor or local_actor(), comment=comment)

    def accept(self, request_id: int, *, comment: str = "", actor: str | None = None) -> FeatureRequestRecord:
        """An engineer takes the request on (from ``open``)."""
        comment = _text(comment, "comment", TEXT_MAX, required=False)
        who = actor or local_actor()
        return self.registry.decide_request(
            self.project, request_id, "accepted", actor=who, values={"decided_by": who}, detail={"comment": comment}
        )

    def decline(self, request_id: int, *, reason: str, actor: str | None = None) -> FeatureRequestRecord:
        """An engineer declines the request, saying why (the requester and supporters read it)."""
        reason = _text(reason, "reason", TEXT_MAX, required=True)
        who = actor or local_actor()
        return self.registry.decide_request(
            self.project,
            request_id,
            "declined",
            actor=who,
            values={"decided_by": who, "decline_reason": reason},
            detail={"reason": reason},
        )

    def link(
        self, request_id: int, *, view: str, features: Sequence[str], actor: str | None = None
    ) -> FeatureRequestRecord:
        """Link the request to the feature view and features that fulfil it (applied already,
        not necessarily run): the next successful run of the view delivers it."""
        self.store.refresh()
        found = self.store.get_feature_view(view)  # NotFoundError with suggestions
        names = [f.name for f in found.features]
        wanted = list(dict.fromkeys(f.strip() for f in features if f.strip()))
        if not wanted:
            raise InvalidRequestError(
                f"name the features of '{view}' that fulfil request #{request_id} (features of '{view}': "
                f"{', '.join(names)})"
            )
        for name in wanted:
            if name not in names:
                raise NotFoundError(f"feature of view '{view}'", name, project=self.project, candidates=names)
        who = actor or local_actor()
        values = {"view": view, "features": json.dumps(wanted)}
        if self.registry.get_request(self.project, request_id).decided_by is None:
            values["decided_by"] = who
        return self.registry.decide_request(
            self.project, request_id, "linked", actor=who, values=values, detail={"view": view, "features": wanted}
        )

    # ------------------------------------------------------------------ delivery

    def deliver_published(self, view: FeatureView, run: PublishedRun) -> builtins.list[FeatureRequestRecord]:
        """Deliver the requests linked to ``view`` whose features ``run`` has just published, and
        notify their requesters and supporters. Returns them.

        A run that published no rows (a window without data) delivers nothing. Each request
        closes in one registry transaction with its UI notifications (see
        :meth:`~featurestore.registry.Registry.deliver_request`); the messages to the alert
        channels follow the commit, once each, and their outcome (``sent`` or the error) is in
        the audit log (``request.notify``): a channel down, or a crash before they are sent,
        is not retried."""
        if run.status != "succeeded" or run.view != view.name or run.rows_offline <= 0:
            return []
        published = [f.name for f in view.features]
        delivered = []
        for request in self.registry.list_requests(self.project, statuses=[RequestStatus.IN_PROGRESS], view=view.name):
            try:
                record = self.registry.deliver_request(
                    self.project, request.id, view=view.name, published=published, run_id=run.run_id
                )
            except RequestStateError:  # declined, delivered or re-linked meanwhile, or not these features
                continue
            self._send(record)
            delivered.append(record)
        return delivered

    def _send(self, request: FeatureRequestRecord) -> None:
        """The ``request.delivered`` message to each alert channel, once; outcomes in the audit log."""
        message = delivered_message(request)
        channels = self._channels
        if channels is None:
            channels = [channel_of(c) for c in self.store.config.alerts.channels]
        outcomes: dict[str, str] = {}
        for channel in channels:
            try:
                channel.send(message)
                outcomes[channel.name] = "sent"
            except Exception as err:  # a channel down must not fail the run that delivered
                outcomes[channel.name] = redact(f"{type(err).__name__}: {err}")
                log.warning(
                    "feature request #%d delivered; notifying channel '%s' failed (not retried): %s",
                    request.id,
                    channel.name,
                    outcomes[channel.name],
                )
        if outcomes:
            self.registry.record_audit(
                self.project, "featurestore", "request.notify", f"feature_request:{request.id}", {"channels": outcomes}
            )

    def notifications(self, recipient: str, *, unread_only: bool = False) -> builtins.list[RequestNotification]:
        return self.registry.notifications(self.project, recipient, unread_only=unread_only)


def delivered_message(request: FeatureRequestRecord) -> AlertMessage:
    """The ``request.delivered`` message: to people (subject, body) and to webhooks (payload)."""
    people = [request.requester, *(s.voter for s in request.supporters)]
    body = (
        f"{delivered_line(request.id, request.title, request.view, request.features)}\n\n"
        f"Project: {request.project}\nEntity: {request.entity}\nRequested by: {request.requester}\n"
        f"Supported by: {', '.join(s.voter for s in request.supporters) or 'nobody else'}\n"
        f"Run: {request.delivered_run}\n\n"
        "See 'featurestore request show' or the registry UI's Requests page.\n"
    )
    return AlertMessage(
        subject=f"[featurestore {request.project}] DELIVERED: {request.title}",
        body=body,
        payload={
            "event": "request.delivered",
            "project": request.project,
            "request": request.id,
            "title": request.title,
            "entity": request.entity,
            "view": request.view,
            "features": list(request.features),
            "requester": request.requester,
            "supporters": [s.voter for s in request.supporters],
            "notify": people,
            "run_id": request.delivered_run,
            "delivered_at": request.delivered_at.isoformat() if request.delivered_at else None,
        },
    )


def deliver_published(store: FeatureStore, view: FeatureView, run: PublishedRun) -> None:
    """The run pipeline's hook after a successful run: deliver the requests it fulfils (see
    :meth:`FeatureRequests.deliver_published`). Never raises: the run has published. If the
    registry fails here, the failure is logged and the requests stay in progress, so the next
    run publishing their features delivers them; channel messages that fail are logged and
    audited, not retried."""
    try:
        FeatureRequests(store).deliver_published(view, run)
    except Exception as err:
        log.error("run %s of '%s': delivering feature requests failed: %s", run.run_id, view.name, redact(str(err)))


def sort_requests(requests: Sequence[FeatureRequestRecord], sort: str) -> builtins.list[FeatureRequestRecord]:
    """Sorted by ``support`` (most first, then soonest due), ``due`` (soonest first, undated
    last) or ``newest`` (the registry's order)."""
    if sort == "support":
        return sorted(requests, key=lambda r: (-r.support, r.due or date.max, -r.id))
    if sort == "due":
        return sorted(requests, key=lambda r: (r.due is None, r.due or date.max, -r.support, -r.id))
    if sort == "newest":
        return sorted(requests, key=lambda r: -r.id)
    raise InvalidRequestError(f"unknown sort {sort!r}: choose support, due or newest")


def _text(value: str, what: str, limit: int, *, required: bool) -> str:
    value = value.strip()
    if required and not value:
        raise InvalidRequestError(f"a feature request needs a {what}: say it in a sentence")
    if len(value) > limit:
        raise InvalidRequestError(f"the {what} is {len(value)} characters long: keep it within {limit}")
    return value
