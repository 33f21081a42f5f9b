"""Push: rows a service has just seen (a card payment), published offline then online at once."""

from __future__ import annotations

import asyncio
import weakref
from datetime import datetime
from typing import Annotated, Any

import anyio
import anyio.to_thread
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from datamart.metrics import MeasuredRoute, measured
from datamart.routes import ERROR_RESPONSES, StoreDep, allow
from featurestore.auth import Identity, Permission, Role
from featurestore.errors import PermissionDeniedError
from featurestore.store import FeatureStore

router = APIRouter(responses=ERROR_RESPONSES, route_class=MeasuredRoute)

Pusher = Annotated[Identity, allow(Permission.PUSH)]

PUSH_THREADS = 4
"""Worker threads pushes may hold at once (a push waits up to ``etl.push.PUSH_LOCK_WAIT`` for a
run of its view): the others stay free for the other routes (online lookups have a pool of their
own, ``datamart.routes.reads.LOOKUP_THREADS``)."""
_LIMITERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, anyio.CapacityLimiter] = weakref.WeakKeyDictionary()
"""One limiter per event loop (anyio's belongs to the loop it was made on)."""


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
    push_id: str | None = Field(description="The push's id in the view's run history (engine 'push'); null: no rows.")
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
async def push_rows(request: Request, view: str, body: PushRequest, store: StoreDep, who: Pusher) -> PushResponse:
    """Rows are validated as one batch (the view's columns and types, one row per entity and event
    time, its blocking row-level expectations), published offline (training sets and reference
    data see them at once), then online for their entities, so the next lookup reflects them.
    A row with the entity and event time of a published row replaces it: replaying a push is
    harmless. If the online store fails, nothing stays published (503): push again; so too when a
    run of the view holds its lock for more than 10 s. A ``service`` token pushes only into the
    views of its models' feature services."""
    from etl.push import push

    def publish() -> Any:
        store.get_feature_view(view)  # 404 with a suggestion for an unknown view
        request.state.metric_target = view
        if who.role is Role.SERVICE:
            _check_service_pushes(store, who, view)
        return push(store, view, body.rows, actor=who.name)

    loop = asyncio.get_running_loop()
    limiter = _LIMITERS.get(loop)
    if limiter is None:
        limiter = _LIMITERS[loop] = anyio.CapacityLimiter(PUSH_THREADS)
    result = await anyio.to_thread.run_sync(publish, limiter=limiter)
    return PushResponse(
        push_id=result.push_id,
        view=result.view,
        rows=result.rows,
        entities=result.entities,
        replaced=result.replaced,
        watermark=result.watermark,
    )


def _check_service_pushes(store: FeatureStore, who: Identity, view: str) -> None:
    """A service pushes only into the views its models' feature services read (as it reads)."""
    services = store.feature_services()
    allowed = sorted(
        {
            sel.view
            for name in store.model_feature_services(who.models)
            if name in services
            for sel in services[name].selections()
        }
    )
    if view not in allowed:
        raise PermissionDeniedError(
            f"{who.describe()} may push only into the feature views of its models' feature services "
            f"({', '.join(allowed) or 'none'}), not into '{view}'; push with a token of a model that reads it, "
            "or an engineer's"
        )
