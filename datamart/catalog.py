"""Catalog search, for the API: the logic lives in the core (:mod:`featurestore.catalog`),
shared with the registry UI; this module keeps the names the datamart has always imported."""

from __future__ import annotations

from featurestore.catalog import (
    EXACT_NAME,
    KINDS,
    NAME_CONTAINS,
    TEXT_CONTAINS,
    CatalogEntry,
    CatalogKind,
    SearchHit,
    catalog_entries,
    search_catalog,
)

__all__ = [
    "EXACT_NAME",
    "KINDS",
    "NAME_CONTAINS",
    "TEXT_CONTAINS",
    "CatalogEntry",
    "CatalogKind",
    "SearchHit",
    "catalog_entries",
    "search_catalog",
]
