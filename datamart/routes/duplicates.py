"""Duplicate features: what ``featurestore apply`` found to compute what another feature does
(issue 18, part 4; see :mod:`featurestore.duplicates`). Reading them is the catalog's permission."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from datamart.routes import ERROR_RESPONSES, CatalogReader, StoreDep

router = APIRouter(responses=ERROR_RESPONSES)


class DuplicateInfo(BaseModel):
    feature: str = Field(description="The feature found to duplicate another, 'view:feature'.")
    duplicate_of: str = Field(description="The feature it computes again, 'view:feature'.")
    owner: str = Field(description="The owner of duplicate_of (its view's when the feature names none).")
    kind: Literal["exact", "equal", "correlated"] = Field(
        description="exact: same source and normalized expression; equal: equal values on the preview's sample; "
        "correlated: |Pearson correlation| over the threshold there."
    )
    figure: float | None = Field(description="equal: the share of rows with equal values; correlated: the correlation.")
    rows: int | None = Field(description="Joined rows (same entity and event time) the figure is over.")
    description: str = Field(description="The finding in words.")


@router.get("/duplicates", tags=["catalog"], summary="Features that compute what another does")
def list_duplicates(
    store: StoreDep,
    _who: CatalogReader,
    view: Annotated[
        str | None, Query(max_length=200, description="Only findings with this view on either side.")
    ] = None,
) -> list[DuplicateInfo]:
    """The duplicates recorded by ``featurestore apply``: exact ones, and features equal or
    correlated by value with an existing feature's published rows on the preview's sample."""
    if view is not None:
        store.registry.get_feature_view(store.project, view)  # 404 with suggestions
    return [DuplicateInfo(**f.to_dict(), description=f.render()) for f in store.find_recorded_duplicates(view)]
