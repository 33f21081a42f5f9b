"""Value types of features and entity keys, and their Arrow equivalents."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import pyarrow as pa

# pyarrow loads on first use (``ValueType.arrow``, ``UTC_TIMESTAMP``), not with the definitions:
# `import featurestore` and `featurestore --help` stay fast (tests/unit/test_startup.py).


class ValueType(StrEnum):
    """The type of a feature value or an entity key."""

    INT64 = "int64"
    FLOAT64 = "float64"
    STRING = "string"
    BOOL = "bool"
    TIMESTAMP = "timestamp"

    @property
    def arrow(self) -> pa.DataType:
        return _arrow_types()[self]

    @classmethod
    def parse(cls, value: ValueType | str) -> ValueType:
        if isinstance(value, ValueType):
            return value
        return cls(str(value).lower())

    def accepts(self, arrow_type: pa.DataType | ArrowTypeName) -> bool:
        """Whether a column of ``arrow_type`` can hold values of this type without loss of meaning.
        An :class:`ArrowTypeName` is judged by its kind, without importing pyarrow."""
        kind = arrow_type.kind if isinstance(arrow_type, ArrowTypeName) else _arrow_kind(arrow_type)
        if self is ValueType.INT64:
            return kind == "integer"
        if self is ValueType.FLOAT64:
            return kind in ("floating", "integer", "decimal")
        if self is ValueType.STRING:
            return kind == "string"
        if self is ValueType.BOOL:
            return kind == "boolean"
        return kind in ("timestamp", "date")


TypeKind = Literal["integer", "floating", "decimal", "string", "boolean", "timestamp", "date", "other"]
"""The classes of Arrow types :meth:`ValueType.accepts` tells apart."""


@dataclass(frozen=True)
class ArrowTypeName:
    """An Arrow type known by its name and kind, without importing pyarrow (~150 ms of CPU with
    numpy): what a DuckDB plan's column type is in Arrow (see
    :class:`featurestore.schema.OutputSchema`). ``str()`` is Arrow's name for it, e.g. ``int64``."""

    name: str
    kind: TypeKind

    def __str__(self) -> str:
        return self.name


def _arrow_kind(arrow_type: pa.DataType) -> TypeKind:
    import pyarrow as pa

    if pa.types.is_integer(arrow_type):
        return "integer"
    if pa.types.is_floating(arrow_type):
        return "floating"
    if pa.types.is_decimal(arrow_type):
        return "decimal"
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "string"
    if pa.types.is_boolean(arrow_type):
        return "boolean"
    if pa.types.is_timestamp(arrow_type):
        return "timestamp"
    if pa.types.is_date(arrow_type):
        return "date"
    return "other"


@cache
def _arrow_types() -> dict[ValueType, pa.DataType]:
    import pyarrow as pa

    return {
        ValueType.INT64: pa.int64(),
        ValueType.FLOAT64: pa.float64(),
        ValueType.STRING: pa.string(),
        ValueType.BOOL: pa.bool_(),
        ValueType.TIMESTAMP: pa.timestamp("us", tz="UTC"),
    }


def __getattr__(name: str) -> Any:
    # UTC_TIMESTAMP (timestamp[us, UTC], how every time is stored): made with pyarrow when first imported.
    if name == "UTC_TIMESTAMP":
        return _arrow_types()[ValueType.TIMESTAMP]
    raise AttributeError(f"module 'featurestore.types' has no attribute {name!r}")


Int64 = ValueType.INT64
Float64 = ValueType.FLOAT64
String = ValueType.STRING
Bool = ValueType.BOOL
Timestamp = ValueType.TIMESTAMP
