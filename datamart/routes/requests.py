"""Feature requests (:mod:`featurestore.feature_requests`): file one, support one, and, for
engineers, accept, decline or link one to the view and features that fulfil it.

Reading requests needs ``catalog:read``; filing and supporting ``requests:file`` (scientists,
analysts, engineers); accepting, declining and linking ``requests:manage`` (engineers). The
caller's identity (its token's name) is recorded as the requester, supporter or decider.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from datamart.routes import ERROR_RESPONSES, CatalogReader, StoreDep, allow
from featurestore.auth import Identity, Permission
from featurestore.feature_requests import FeatureRequests
from featurestore.registry.requests import FeatureRequestRecord

router = APIRouter(responses=ERROR_RESPONSES)
Requester = Annotated[Identity, allow(Permission.REQUEST_FEATURES)]
RequestManager = Annotated[Identity, allow(Permission.MANAGE_REQUESTS)]
RequestId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The request's number (#12 is 12).")]
TAG = "requests"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NewRequest(_Body):
    title: str = Field(max_length=200, description="What is needed, in a few words (what catalog search finds).")
    entity: str = Field(max_length=200, description="For which entity: one of the project's.")
    description: str = Field(max_length=4000, description="What exactly: how it is computed, over which window.")
    reason: str = Field(max_length=4000, description="Why: the decision or model it serves.")
    due: date | None = Field(default=None, description="By when.")
    model: str | None = Field(default=None, max_length=200, description="The model it is for, if any.")


class Comment(_Body):
    comment: str = Field(default="", max_length=4000)


class Decline(_Body):
    reason: str = Field(max_length=4000, description="Why not: the requester and supporters read it.")


class Link(_Body):
    view: str = Field(max_length=200, description="The feature view that fulfils the request (applied).")
    features: list[str] = Field(min_length=1, max_length=500, description="Its features that fulfil it.")


class SupportInfo(BaseModel):
    voter: str
    comment: str
    at: datetime


class EventInfo(BaseModel):
    at: datetime
    actor: str
    event: str = Field(description="filed, supported, accepted, declined, linked or delivered.")
    detail: dict[str, Any]


class FeatureRequestInfo(BaseModel):
    id: int
    project: str
    title: str
    entity: str
    description: str
    reason: str
    due: date | None
    model: str | None
    status: str = Field(description="open, accepted, in_progress (linked), delivered or declined.")
    requester: str
    created_at: datetime
    updated_at: datetime
    decided_by: str | None
    decline_reason: str | None
    view: str | None = Field(description="The linked feature view.")
    features: list[str] = Field(description="The linked features of that view.")
    delivered_at: datetime | None
    delivered_run: str | None = Field(description="The run whose publication delivered it.")
    support: int = Field(description="Supporters' votes (the requester is not counted).")
    supporters: list[SupportInfo]
    history: list[EventInfo] = Field(description="Oldest first; empty in lists.")


class NotificationInfo(BaseModel):
    id: int
    request_id: int
    at: datetime
    message: str
    read: bool


def _info(record: FeatureRequestRecord) -> FeatureRequestInfo:
    return FeatureRequestInfo.model_validate(record.to_dict())


@router.get("/requests", tags=[TAG], summary="Feature requests")
def list_requests(
    store: StoreDep,
    _who: CatalogReader,
    state: Annotated[
        Literal["open", "in_progress", "delivered", "declined"] | None,
        Query(description="Only these (in_progress: accepted or linked)."),
    ] = None,
    sort: Annotated[
        Literal["support", "due", "newest"],
        Query(description="support: most votes first; due: soonest first, undated last."),
    ] = "newest",
) -> list[FeatureRequestInfo]:
    return [_info(r) for r in FeatureRequests(store).list(tab=state, sort=sort)]


@router.post("/requests", tags=[TAG], status_code=201, summary="File a feature request")
def file_request(store: StoreDep, who: Requester, body: NewRequest) -> FeatureRequestInfo:
    """The caller is recorded as the requester; the request starts ``open``."""
    return _info(FeatureRequests(store).file(**body.model_dump(), actor=who.name))


@router.get("/requests/notifications", tags=[TAG], summary="The caller's notifications")
def notifications(
    store: StoreDep,
    who: CatalogReader,
    unread: Annotated[bool, Query(description="Only those not yet read.")] = False,
) -> list[NotificationInfo]:
    """A request the caller filed or supported was delivered (newest first, the 100 newest)."""
    found = store.registry.notifications(store.project, who.name, unread_only=unread)
    return [NotificationInfo.model_validate(n.to_dict()) for n in found]


@router.get("/requests/{request_id}", tags=[TAG], summary="One feature request, with its supporters and history")
def get_request(store: StoreDep, _who: CatalogReader, request_id: RequestId) -> FeatureRequestInfo:
    return _info(FeatureRequests(store).get(request_id))


@router.post("/requests/{request_id}/support", tags=[TAG], summary="Support (vote for) a feature request")
def support_request(store: StoreDep, who: Requester, request_id: RequestId, body: Comment) -> FeatureRequestInfo:
    """One vote per person; the requester's own need counts already (422 for either)."""
    return _info(FeatureRequests(store).support(request_id, comment=body.comment, actor=who.name))


@router.post("/requests/{request_id}/accept", tags=[TAG], summary="Accept an open feature request")
def accept_request(store: StoreDep, who: RequestManager, request_id: RequestId, body: Comment) -> FeatureRequestInfo:
    return _info(FeatureRequests(store).accept(request_id, comment=body.comment, actor=who.name))


@router.post("/requests/{request_id}/decline", tags=[TAG], summary="Decline a feature request, with a reason")
def decline_request(store: StoreDep, who: RequestManager, request_id: RequestId, body: Decline) -> FeatureRequestInfo:
    return _info(FeatureRequests(store).decline(request_id, reason=body.reason, actor=who.name))


@router.post(
    "/requests/{request_id}/link", tags=[TAG], summary="Link a feature request to the view and features fulfilling it"
)
def link_request(store: StoreDep, who: RequestManager, request_id: RequestId, body: Link) -> FeatureRequestInfo:
    """The view's next successful run delivers it: its requester and supporters are notified."""
    return _info(FeatureRequests(store).link(request_id, view=body.view, features=body.features, actor=who.name))
