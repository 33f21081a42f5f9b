"""Skew reports: what ``featurestore skew`` found comparing served vectors with offline values."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from datamart.routes import ERROR_RESPONSES, StatisticsReader, StoreDep
from featurestore.errors import NotFoundError
from featurestore.skew import skew_reports

router = APIRouter(responses=ERROR_RESPONSES)


@router.get("/skew-reports", tags=["quality"], summary="Skew reports of served vectors against offline, newest first")
def list_skew_reports(
    store: StoreDep,
    _who: StatisticsReader,
    service: Annotated[str | None, Query(description="Only this feature service's reports.")] = None,
    limit: Annotated[int, Query(ge=1, le=500, description="How many reports, newest first.")] = 20,
) -> list[dict[str, Any]]:
    """Each report compares a feature service's logged online lookups and predictions with the
    offline values as of each request: per feature, values served, match rate, counts per class
    (match, late, differs, missing_online, expired) and examples. Made by ``featurestore skew``."""
    if service is not None and service not in store.feature_services():
        raise NotFoundError("feature service", service, project=store.project, candidates=store.feature_services())
    return [r.to_dict() for r in skew_reports(store.registry, store.project, service=service, limit=limit)]
