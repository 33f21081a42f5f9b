"""Push: rows a service has just seen (a card payment), published offline then online at once."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from datamart.metrics import MeasuredRoute, measured
from datamart.routes import ERROR_RESPONSES, StoreDep, allow
from featurestore.auth import Identity, Permission

router = APIRouter(responses=ERROR_RESPONSES, route_class=MeasuredRoute)

Pusher = Annotated[Identity, allow(Permission.PUSH)]


class PushRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "rows": [
                        {
                            "customer_id": 1,
                            "ts": "2024-03-08T10:15:00Z",
                            "amount": 42.5,
                            "merchant_category": "groceries",
                        }
                    ]
                }
            ]
        },
    )

    rows: list[dict[str, Any]] = Field(
        description="One object per row: the view's join keys, its event time (ISO 8601 with an offset) and "
        "every feature. The batch is refused as a whole (422, naming the rows) if a row does not fit."
    )


class PushResponse(BaseModel):
    push_id: str = Field(description="The push's id in the view's run history (engine 'push').")
    view: str
    rows: int = Field(description="Rows published offline (visible to training sets and reference data).")
    entities: int = Field(description="Entities whose online value was derived from offline again.")
    replaced: int = Field(description="Published rows of the same entity and event time the push replaced.")
    watermark: datetime | None = Field(description="The newest event time of the push.")


@router.post(
    "/push/{view}",
    tags=["push"],
    response_model=PushResponse,
    summary="Push rows into a feature view: offline first, then online",
)
@measured("push")
def push_rows(request: Request, view: str, body: PushRequest, store: StoreDep, who: Pusher) -> PushResponse:
    """Rows are validated as one batch (the view's columns and types, one row per entity and event
    time, its blocking row-level expectations), published offline (training sets and reference
    data see them at once), then online for their entities, so the next lookup reflects them.
    A row with the entity and event time of a published row replaces it: replaying a push is
    harmless. If the online store fails, nothing stays published (503): push again."""
    from etl.push import push

    store.get_feature_view(view)  # 404 with a suggestion for an unknown view
    request.state.metric_target = view
    result = push(store, view, body.rows, actor=who.name)
    return PushResponse(
        push_id=result.push_id,
        view=result.view,
        rows=result.rows,
        entities=result.entities,
        replaced=result.replaced,
        watermark=result.watermark,
    )
