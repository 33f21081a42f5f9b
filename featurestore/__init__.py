"""A feature store with online/offline consistency.

Define a feature once; one run computes it and writes the same rows to the offline store (for
training sets) and the online store (for lookups).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from featurestore.definitions import Entity, Feature, FeatureService, FeatureView, FileSource, SqlSource
from featurestore.errors import (
    ConfigError,
    DefinitionError,
    FeatureStoreError,
    InvalidRequestError,
    NotFoundError,
    QualityCheckFailedError,
    RunError,
    StoreUnavailableError,
)
from featurestore.expectations import (
    Fresh,
    GxExpectation,
    InRange,
    InSet,
    MatchesRegex,
    NotNull,
    RowCount,
    UniqueKeys,
)
from featurestore.types import Bool, Float64, Int64, String, Timestamp, ValueType

if TYPE_CHECKING:
    from featurestore.store import FeatureStore

__version__ = "0.1.0"

__all__ = [
    "Bool",
    "ConfigError",
    "DefinitionError",
    "Entity",
    "Feature",
    "FeatureService",
    "FeatureStore",
    "FeatureStoreError",
    "FeatureView",
    "FileSource",
    "Float64",
    "Fresh",
    "GxExpectation",
    "InRange",
    "InSet",
    "Int64",
    "InvalidRequestError",
    "MatchesRegex",
    "NotFoundError",
    "NotNull",
    "QualityCheckFailedError",
    "RowCount",
    "RunError",
    "SqlSource",
    "StoreUnavailableError",
    "String",
    "Timestamp",
    "UniqueKeys",
    "ValueType",
]


def __getattr__(name: str) -> Any:
    # The facade pulls in DuckDB and SQLAlchemy: load it on first use, keeping `import featurestore` light.
    if name == "FeatureStore":
        from featurestore.store import FeatureStore

        return FeatureStore
    raise AttributeError(f"module 'featurestore' has no attribute {name!r}")
