"""``GET /v1/alerts``: the project's alert incidents (a view stale, a scheduled run given up),
opened and cleared by the scheduler, with the delivery of their messages to each channel."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from datamart.routes import ERROR_RESPONSES, StatisticsReader, StoreDep

router = APIRouter(responses=ERROR_RESPONSES)


class AlertDeliveryInfo(BaseModel):
    channel: str = Field(description="The channel's name in the alerts section of featurestore.yaml.")
    message: str = Field(description="opened or cleared.")
    status: str = Field(description="pending, retrying (tried again at the next tick), sent, or failed (given up).")
    attempts: int
    last_attempt_at: datetime | None
    error: str | None = Field(description="The last failure, without secrets.")


class AlertIncidentInfo(BaseModel):
    id: int
    view: str
    kind: str = Field(description="stale (lag beyond the view's freshness) or run_failed (a scheduled run given up).")
    open: bool
    opened_at: datetime
    cleared_at: datetime | None
    summary: str
    detail: dict[str, Any] = Field(description="What the scheduler saw when it opened the incident.")
    cleared_detail: dict[str, Any] | None = Field(description="What it saw when the incident cleared.")
    deliveries: list[AlertDeliveryInfo]


@router.get("/alerts", tags=["quality"], summary="Alert incidents: stale views and failed scheduled runs")
def alerts(
    store: StoreDep,
    _who: StatisticsReader,
    open: Annotated[bool, Query(description="Only incidents still open.")] = False,
    view: Annotated[str | None, Query(max_length=200, description="Only incidents of this feature view.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="How many, newest first.")] = 100,
) -> list[AlertIncidentInfo]:
    """Newest first. An incident alerts each channel once when it opens and once when it clears."""
    if view is not None:
        store.get_feature_view(view)  # 404 with a suggestion for an unknown view
    found = store.registry.list_incidents(store.project, open_only=open, view=view, limit=limit)
    return [AlertIncidentInfo.model_validate(i.to_dict()) for i in found]
