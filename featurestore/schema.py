"""The physical schema of a feature view's rows, shared by the offline and online stores, and
the schema of a transformation's output as ``featurestore apply`` checks it.

pyarrow (with numpy, ~150 ms of CPU to import) loads on first use, not with this module: the
output of a SQL view is checked from DuckDB's plan without it (:class:`OutputSchema`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from featurestore.definitions import FeatureView
from featurestore.errors import RunError
from featurestore.types import ArrowTypeName, ValueType

if TYPE_CHECKING:
    import pyarrow as pa


def view_schema(view: FeatureView) -> pa.Schema:
    """Join keys, then the event timestamp (UTC, microseconds), then the features."""
    import pyarrow as pa

    from featurestore.types import UTC_TIMESTAMP

    fields = [pa.field(k, t.arrow) for k, t in view.key_schema.items()]
    fields.append(pa.field(view.timestamp_field, UTC_TIMESTAMP))
    fields.extend(pa.field(f.name, f.dtype.arrow) for f in view.features)
    return pa.schema(fields)


def to_utc_timestamp(col: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """Timestamps (naive taken as UTC) or dates as ``timestamp[us, UTC]``."""
    import pyarrow as pa
    import pyarrow.compute as pc  # ~60 ms of CPU to import: loaded by a run, not by an apply

    from featurestore.types import UTC_TIMESTAMP

    if pa.types.is_date(col.type):
        col = pc.cast(col, pa.timestamp("us"))
    if pa.types.is_timestamp(col.type) and col.type.tz is not None:
        return pc.cast(col, UTC_TIMESTAMP)
    return pc.cast(pc.cast(col, pa.timestamp("us")), UTC_TIMESTAMP)


def conform(view: FeatureView, table: pa.Table) -> pa.Table:
    """Select and cast a computed frame to the view's schema, naming any column that cannot be cast."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from featurestore.types import UTC_TIMESTAMP

    arrays = []
    schema = view_schema(view)
    for field in schema:
        if field.name not in table.column_names:
            raise RunError(
                f"Feature view '{view.name}': the transformation's output has no column '{field.name}'; "
                f"it has {table.column_names}"
            )
        col = table.column(field.name)
        try:
            if field.name == view.timestamp_field or field.type == UTC_TIMESTAMP:
                col = to_utc_timestamp(col)
            elif col.type != field.type:
                if pa.types.is_floating(col.type) and pa.types.is_integer(field.type):
                    col = pc.cast(col, field.type, safe=True)
                else:
                    col = pc.cast(col, field.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
            raise RunError(
                f"Feature view '{view.name}': column '{field.name}' of type {col.type} cannot be stored as "
                f"{ValueType(_vt(view, field.name)).value}: {err}"
            ) from err
        if pa.types.is_floating(field.type) and col.null_count < len(col):
            # NaN means "no value" in pandas and most sources; stored as null everywhere, so the
            # offline and online stores (JSON has no NaN) hold the same thing.
            col = pc.if_else(pc.is_nan(col), pa.scalar(None, field.type), col)
        arrays.append(col)
    return pa.Table.from_arrays(arrays, schema=schema)


def _vt(view: FeatureView, name: str) -> str:
    if name in view.key_schema:
        return view.key_schema[name].value
    if name == view.timestamp_field:
        return ValueType.TIMESTAMP.value
    return view.feature(name).dtype.value


# DuckDB's column types (``str()`` of a relation's types) and the Arrow types DuckDB gives them,
# in a session whose time zone is UTC (every connection of featurestore.sql) with DuckDB's default
# Arrow settings. tests/unit/test_output_schema.py checks each against DuckDB's own conversion.
# The types not named here (HUGEINT, UUID, ENUM, nested types...) are read through Arrow.
_DUCKDB_ARROW: dict[str, ArrowTypeName] = {
    "TINYINT": ArrowTypeName("int8", "integer"),
    "SMALLINT": ArrowTypeName("int16", "integer"),
    "INTEGER": ArrowTypeName("int32", "integer"),
    "BIGINT": ArrowTypeName("int64", "integer"),
    "UTINYINT": ArrowTypeName("uint8", "integer"),
    "USMALLINT": ArrowTypeName("uint16", "integer"),
    "UINTEGER": ArrowTypeName("uint32", "integer"),
    "UBIGINT": ArrowTypeName("uint64", "integer"),
    "FLOAT": ArrowTypeName("float", "floating"),
    "DOUBLE": ArrowTypeName("double", "floating"),
    "VARCHAR": ArrowTypeName("string", "string"),
    "BOOLEAN": ArrowTypeName("bool", "boolean"),
    "DATE": ArrowTypeName("date32[day]", "date"),
    "TIMESTAMP": ArrowTypeName("timestamp[us]", "timestamp"),
    "TIMESTAMP_S": ArrowTypeName("timestamp[s]", "timestamp"),
    "TIMESTAMP_MS": ArrowTypeName("timestamp[ms]", "timestamp"),
    "TIMESTAMP_NS": ArrowTypeName("timestamp[ns]", "timestamp"),
    "TIMESTAMP WITH TIME ZONE": ArrowTypeName("timestamp[us, tz=UTC]", "timestamp"),
}
_DUCKDB_DECIMAL = re.compile(r"DECIMAL\((\d+),(\d+)\)")


@dataclass(frozen=True)
class OutputField:
    """A column of a transformation's output: its name and its type in Arrow."""

    name: str
    type: ArrowTypeName


@dataclass(frozen=True)
class OutputSchema:
    """The columns of a transformation's output and their Arrow types, known without pyarrow:
    what :func:`featurestore.validation.check_output_schema` reads of a ``pa.Schema``
    (``names``, ``field(name).type``, judged by :meth:`ValueType.accepts` and printed)."""

    fields: tuple[OutputField, ...]

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.fields]

    def field(self, name: str) -> OutputField:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"no column '{name}' in {self.names}")

    @classmethod
    def from_duckdb(cls, columns: Sequence[str], types: Sequence[str]) -> OutputSchema | None:
        """The Arrow schema DuckDB would give a relation of ``columns`` of ``types`` (``str()`` of
        its types); None when a type is not one named here (read the schema through Arrow then)
        or a column name repeats."""
        if len(set(columns)) != len(columns):
            return None
        fields = []
        for name, duckdb_type in zip(columns, types, strict=True):
            arrow = _DUCKDB_ARROW.get(duckdb_type)
            if arrow is None:
                decimal = _DUCKDB_DECIMAL.fullmatch(duckdb_type)
                if decimal is None:
                    return None
                arrow = ArrowTypeName(f"decimal128({decimal[1]}, {decimal[2]})", "decimal")
            fields.append(OutputField(name, arrow))
        return cls(tuple(fields))
