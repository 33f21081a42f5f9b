"""Value types of features and entity keys, and their Arrow equivalents."""

from __future__ import annotations

from enum import StrEnum
from functools import cache
from typing import TYPE_CHECKING, Any

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

    def accepts(self, arrow_type: pa.DataType) -> bool:
        """Whether a column of ``arrow_type`` can hold values of this type without loss of meaning."""
        import pyarrow as pa

        if self is ValueType.INT64:
            return bool(pa.types.is_integer(arrow_type))
        if self is ValueType.FLOAT64:
            return bool(
                pa.types.is_floating(arrow_type) or pa.types.is_integer(arrow_type) or pa.types.is_decimal(arrow_type)
            )
        if self is ValueType.STRING:
            return bool(pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type))
        if self is ValueType.BOOL:
            return bool(pa.types.is_boolean(arrow_type))
        return bool(pa.types.is_timestamp(arrow_type) or pa.types.is_date(arrow_type))


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
