"""``GET /v1/metrics``: the project's metrics in the Prometheus text format (see
:mod:`datamart.metrics`), for a scraper holding a token with ``metrics:read``."""

from __future__ import annotations

from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, Header, Request
from fastapi.responses import Response
from prometheus_client.exposition import choose_encoder

from datamart.metrics import ProjectMetrics
from datamart.routes import ERROR_RESPONSES, allow, store_of
from featurestore.auth import Identity, Permission

router = APIRouter(responses=ERROR_RESPONSES)
MetricsReader = Annotated[Identity, allow(Permission.METRICS)]


@router.get(
    "/metrics",
    tags=["service"],
    summary="The project's metrics, in the Prometheus text format",
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus text format 0.0.4 (or OpenMetrics, when the scraper asks)",
            "content": {"text/plain": {}},
        }
    },
)
async def metrics(
    request: Request,
    _who: MetricsReader,
    accept: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Response:
    """Reads of this server (online lookups, training sets, reference data: counts and latency by
    target and status, the status of every online value) and the project's figures from the
    registry (runs, rows published, freshness lag, the last consistency checks), every series
    labelled by ``project``. A server holding several projects serves each one's under
    ``/v1/projects/{project}/metrics``."""
    project_metrics: ProjectMetrics = request.app.state.metrics[store_of(request).project]
    encode, content_type = choose_encoder(accept or "")
    # The registry's figures may need a database read (every few seconds): off the event loop.
    body = await anyio.to_thread.run_sync(encode, project_metrics.registry)
    return Response(body, media_type=None, headers={"Content-Type": content_type})
