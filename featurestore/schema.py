"""The physical schema of a feature view's rows, shared by the offline and online stores."""

from __future__ import annotations

import pyarrow as pa

from featurestore.definitions import FeatureView
from featurestore.errors import RunError
from featurestore.types import UTC_TIMESTAMP, ValueType


def view_schema(view: FeatureView) -> pa.Schema:
    """Join keys, then the event timestamp (UTC, microseconds), then the features."""
    fields = [pa.field(k, t.arrow) for k, t in view.key_schema.items()]
    fields.append(pa.field(view.timestamp_field, UTC_TIMESTAMP))
    fields.extend(pa.field(f.name, f.dtype.arrow) for f in view.features)
    return pa.schema(fields)


def to_utc_timestamp(col: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """Timestamps (naive taken as UTC) or dates as ``timestamp[us, UTC]``."""
    import pyarrow.compute as pc  # ~60 ms of CPU to import: loaded by a run, not by an apply

    if pa.types.is_date(col.type):
        col = pc.cast(col, pa.timestamp("us"))
    if pa.types.is_timestamp(col.type) and col.type.tz is not None:
        return pc.cast(col, UTC_TIMESTAMP)
    return pc.cast(pc.cast(col, pa.timestamp("us")), UTC_TIMESTAMP)


def conform(view: FeatureView, table: pa.Table) -> pa.Table:
    """Select and cast a computed frame to the view's schema, naming any column that cannot be cast."""
    import pyarrow.compute as pc

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
