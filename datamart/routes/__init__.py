"""The API's endpoints, in two routers: the catalog (what exists, who uses it) and the reads
(online features, training sets, reference data). What every endpoint shares lives here."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Header, Request

from datamart.payloads import ErrorBody
from featurestore.store import FeatureStore

DEFAULT_CONSUMER = "anonymous"
CONSUMER_MAX_LENGTH = 200
CONSUMER_DESCRIPTION = "Who reads (a model service, a notebook): recorded in the registry's usage statistics."


async def current_store(request: Request) -> FeatureStore:
    # async: resolved on the event loop, so a plain `def` endpoint costs one thread hop, not two.
    store: FeatureStore = request.app.state.store
    return store


StoreDep = Annotated[FeatureStore, Depends(current_store)]
ConsumerDep = Annotated[
    str,
    Header(
        alias="X-Consumer",
        min_length=1,
        max_length=CONSUMER_MAX_LENGTH,
        description=CONSUMER_DESCRIPTION,
    ),
]

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "Malformed request (e.g. a spine that is not CSV or Parquet)"},
    404: {"model": ErrorBody, "description": "Unknown feature view, feature or service; with suggestions"},
    422: {"model": ErrorBody, "description": "Invalid request (e.g. the spine lacks its timestamp column)"},
    503: {"model": ErrorBody, "description": "A store or the registry is unavailable"},
}
