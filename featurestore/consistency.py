"""The consistency checker: does the online store hold what the offline store says it should?

For each entity of a view, the online store should hold the view's latest offline row as of
the last published watermark: same event time, same value for every feature. The checker reads
the expected rows offline, looks the same entities up online, and counts per entity and feature
what matches, what differs, what is missing online and what the online store holds beyond the
offline entities.

Values are compared as stored: the online store is read directly, not through lookups, so a row
past the view's TTL (which lookups withhold) is still compared. A stored value that cannot be read
(counted under :data:`UNREADABLE`) or a feature value that does not fit the feature's type (counted
under that feature, whatever offline holds: lookups serve it as ``invalid``) is a mismatch, shown
in the examples with the value as stored; the check never fails on one. Extra online entities are
only counted (the store interface has no key listing to name them), and only when every entity
is checked.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from featurestore.definitions import FeatureView
from featurestore.errors import InvalidRequestError
from featurestore.offline.parquet import ParquetOfflineStore
from featurestore.online import EVENT_TIME_COLUMN, OnlineStore
from featurestore.online.codec import Decoded, cast_keys, decode, encode_keys, shown
from featurestore.retrieval import as_of
from featurestore.schema import view_schema

MAX_EXAMPLES = 10
"""Examples kept per kind of difference (a differing value, a missing row)."""


@dataclass
class ConsistencyReport:
    """The outcome of one check. ``mismatched`` counts entities with at least one differing value
    or event time; ``by_feature`` counts differing values per feature; ``seed`` drew the sample
    (pass it again to check the same entities)."""

    view: str
    watermark: str | None
    checked_at: str
    sampled: bool
    offline_entities: int
    checked: int
    matched: int = 0
    mismatched: int = 0
    missing: int = 0
    extra: int = 0
    by_feature: dict[str, int] = field(default_factory=dict)
    examples: list[dict[str, Any]] = field(default_factory=list)
    seed: int | None = None

    @property
    def consistent(self) -> bool:
        return self.mismatched == 0 and self.missing == 0 and self.extra == 0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["consistent"] = self.consistent
        return out


def _same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b)


def check_consistency(
    view: FeatureView,
    offline: ParquetOfflineStore,
    online: OnlineStore,
    watermark: datetime | None,
    *,
    sample: int | None = 1000,
    seed: int | None = 0,
    batch_size: int = 1000,
) -> ConsistencyReport:
    """Compare online with offline for ``sample`` random entities (all of them when ``None``),
    drawn with ``seed`` (a fresh one, recorded in the report, when ``None``)."""
    if not view.online:
        raise InvalidRequestError(f"Feature view '{view.name}' is offline only; there is nothing online to check")
    if sample is not None and sample < 1:
        raise InvalidRequestError(
            f"Consistency check of '{view.name}': sample must be at least 1, got {sample}; check every entity instead"
        )
    now = datetime.now(UTC).isoformat()
    if watermark is None:
        expected = view_schema(view).empty_table()
    else:
        expected = as_of(view, offline.files(view), view.feature_names, watermark, include_expired=True)
    total = expected.num_rows
    indices = list(range(total))
    sampled = sample is not None and sample < total
    if seed is None:
        seed = random.SystemRandom().randrange(2**31)
    if sample is not None and sampled:
        indices = sorted(random.Random(seed).sample(indices, sample))
        expected = expected.take(pa.array(indices, pa.int64()))
    report = ConsistencyReport(
        view=view.name,
        watermark=watermark.isoformat() if watermark else None,
        checked_at=now,
        sampled=sampled,
        offline_entities=total,
        checked=expected.num_rows,
        seed=seed if sampled else None,
    )
    by_feature: Counter[str] = Counter()
    found_online = 0
    keys = list(view.join_keys)
    for start in range(0, expected.num_rows, batch_size):
        want = expected.slice(start, batch_size)
        want_rows = want.to_pylist()
        got = _read(online, view, want.select(keys))
        for i, (w, g) in enumerate(zip(want_rows, got.table.to_pylist(), strict=True)):
            key = {k: w[k] for k in keys}
            if i in got.unreadable:  # held online, but not as it should be
                found_online += 1
                report.mismatched += 1
                by_feature[UNREADABLE] += 1
                stored = f"cannot be read: {shown(got.unreadable[i])}; re-run the view"
                _example(report, "mismatch", key, UNREADABLE, stored, "(row)")
                continue
            if g[EVENT_TIME_COLUMN] is None:
                report.missing += 1
                _example(report, "missing", key, "(row)", "missing", w[view.timestamp_field])
                continue
            found_online += 1
            differs = False
            if g[EVENT_TIME_COLUMN] != w[view.timestamp_field]:
                differs = True
                by_feature[view.timestamp_field] += 1
                _example(report, "mismatch", key, view.timestamp_field, g[EVENT_TIME_COLUMN], w[view.timestamp_field])
            for f in view.feature_names:
                bad = got.invalid.get(f)
                if bad is not None and i in bad:  # read as null, but never a match, even for a null offline
                    differs = True
                    by_feature[f] += 1
                    _example(report, "mismatch", key, f, bad[i], w[f])
                elif not _same(g[f], w[f]):
                    differs = True
                    by_feature[f] += 1
                    _example(report, "mismatch", key, f, g[f], w[f])
            if differs:
                report.mismatched += 1
            else:
                report.matched += 1
    if not sampled:
        report.extra = max(0, online.count(view) - found_online)
    report.by_feature = dict(by_feature)
    return report


UNREADABLE = "(unreadable value)"
"""The feature name under which a stored value the store cannot read is counted as a mismatch."""


def _read(online: OnlineStore, view: FeatureView, keys: pa.Table) -> Decoded:
    """The stored rows of ``keys``, every feature of the view, with the values that cannot be
    read or do not fit their feature's type said apart (:func:`~featurestore.online.codec.decode`)
    rather than raised as :meth:`OnlineStore.read` does."""
    key_columns = cast_keys(view, keys)
    raw = online.read_packed(view, encode_keys(view, key_columns))
    return decode(view, key_columns, raw, view.feature_names, online.layout)


def _example(
    report: ConsistencyReport, kind: str, key: dict[str, Any], feature: str, online: Any, offline: Any
) -> None:
    # Capped per kind, so that many differing values do not hide the missing rows.
    if sum(1 for e in report.examples if e["kind"] == kind) < MAX_EXAMPLES:
        report.examples.append(
            {"kind": kind, "key": key, "feature": feature, "online": _plain(online), "offline": _plain(offline)}
        )


def _plain(v: Any) -> Any:
    return v.isoformat() if isinstance(v, datetime) else v
