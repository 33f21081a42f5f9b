"""Online lookups: values from the online store with a status per value, TTL honoured."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from featurestore.online import EVENT_TIME_COLUMN, OnlineStore
from featurestore.retrieval import ViewRequest, output_names


class FeatureStatus(StrEnum):
    """Why a value is what it is."""

    PRESENT = "present"
    """The stored value, within the view's TTL."""
    NULL = "null"
    """A stored row within TTL whose value is null."""
    MISSING = "missing"
    """No stored row for this entity."""
    EXPIRED = "expired"
    """A stored row older than the view's TTL: the value is withheld (null)."""


@dataclass(frozen=True)
class OnlineResponse:
    """Feature values for a batch of entities. ``values`` has the entity keys and one column per
    feature; ``statuses`` gives each feature's status per row; ``event_timestamps`` each view's
    event time per row (null when missing)."""

    values: pa.Table
    statuses: dict[str, list[FeatureStatus]]
    event_timestamps: dict[str, list[datetime | None]]

    def to_rows(self) -> list[dict[str, Any]]:
        """One dict per entity: its keys, then ``{"value": ..., "status": ...}`` per feature."""
        rows: list[dict[str, Any]] = self.values.to_pylist()
        for i, row in enumerate(rows):
            for name, statuses in self.statuses.items():
                row[name] = {"value": row[name], "status": statuses[i].value}
        return rows


def online_lookup(
    store: OnlineStore,
    requests: Sequence[ViewRequest],
    entity_rows: pa.Table,
    *,
    now: datetime | None = None,
    full_names: bool = False,
) -> OnlineResponse:
    now = now or datetime.now(UTC)
    names = output_names(requests, full_names)
    key_names = list(dict.fromkeys(k for r in requests for k in r.view.join_keys))
    out = entity_rows.select([k for k in key_names if k in entity_rows.column_names])
    statuses: dict[str, list[FeatureStatus]] = {}
    event_times: dict[str, list[datetime | None]] = {}
    now_scalar = pa.scalar(now.astimezone(UTC), pa.timestamp("us", tz="UTC"))
    for r in requests:
        result = store.read(r.view, entity_rows, r.features)
        ts = result.column(EVENT_TIME_COLUMN)
        age_us = pc.subtract(pc.cast(now_scalar, pa.int64()), pc.cast(ts, pa.int64()))
        ttl_us = int(r.view.ttl.total_seconds() * 1_000_000)
        expired = pc.fill_null(pc.greater(age_us, ttl_us), False).to_pylist()
        missing = ts.is_null().to_pylist()
        event_times[r.view.name] = ts.to_pylist()
        for k in r.view.join_keys:  # keys as the store cast them (the declared types)
            if k in out.column_names:
                out = out.set_column(out.column_names.index(k), k, result.column(k))
        for f in r.features:
            col = result.column(f)
            nulls = col.is_null().to_pylist()
            status = [
                FeatureStatus.MISSING
                if m
                else FeatureStatus.EXPIRED
                if e
                else FeatureStatus.NULL
                if n
                else FeatureStatus.PRESENT
                for m, e, n in zip(missing, expired, nulls, strict=True)
            ]
            if any(expired):
                col = pc.if_else(pa.array(expired), pa.nulls(len(col), col.type), col)
            name = names[(r.view.name, f)]
            out = out.append_column(pa.field(name, col.type), col)
            statuses[name] = status
    return OnlineResponse(values=out, statuses=statuses, event_timestamps=event_times)
