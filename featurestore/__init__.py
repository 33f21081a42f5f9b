"""A feature store with online/offline consistency.

Define a feature once; one run computes it and writes the same rows to the offline store (for
training sets) and the online store (for lookups).

The public names below load on first use (PEP 562): ``featurestore --help`` and every command
import ``featurestore.cli``, hence this package, and should not pay for the definitions' modules
(nor the facade's DuckDB, Arrow and SQLAlchemy) when they do not use them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
    from featurestore.store import FeatureStore
    from featurestore.types import Bool, Float64, Int64, String, Timestamp, ValueType

__version__ = "0.1.0"

# Each public name and the module defining it.
_EXPORTS = {
    **dict.fromkeys(("Entity", "Feature", "FeatureService", "FeatureView", "FileSource", "SqlSource"), "definitions"),
    **dict.fromkeys(
        (
            "ConfigError",
            "DefinitionError",
            "FeatureStoreError",
            "InvalidRequestError",
            "NotFoundError",
            "QualityCheckFailedError",
            "RunError",
            "StoreUnavailableError",
        ),
        "errors",
    ),
    **dict.fromkeys(
        ("Fresh", "GxExpectation", "InRange", "InSet", "MatchesRegex", "NotNull", "RowCount", "UniqueKeys"),
        "expectations",
    ),
    "FeatureStore": "store",
    **dict.fromkeys(("Bool", "Float64", "Int64", "String", "Timestamp", "ValueType"), "types"),
}

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
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'featurestore' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"featurestore.{module}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
