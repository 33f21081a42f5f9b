"""A view's offline files written by hand, laid out as ``ParquetOfflineStore`` publishes them:
``<root>/<view>/date=YYYY-MM-DD/<run>.parquet`` per date partition and a ``_manifest.json``
naming them. Lets a test hold files of an older version of a view (other columns) without
running anything.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


def publish_by_hand(root: Path, view: str, partitions: Mapping[date, pa.Table], watermark: datetime) -> None:
    """Write one file per date partition (each run of the test under its own name) and the
    manifest that makes them the view's published rows."""
    base = root / view
    manifest: dict[str, object] = {"partitions": {}, "superseded": [], "generation": 0}
    if (base / "_manifest.json").exists():
        manifest = json.loads((base / "_manifest.json").read_text())
    parts = dict(manifest["partitions"])  # type: ignore[call-overload]
    for day, table in partitions.items():
        rel = f"date={day.isoformat()}/run-{len(parts) + 1}.parquet"
        (base / rel).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, base / rel)
        parts[day.isoformat()] = rel
    manifest.update(
        partitions=dict(sorted(parts.items())),
        generation=int(manifest["generation"]) + 1,  # type: ignore[call-overload]
        watermark=watermark.isoformat(),
        run_id=f"run-{len(parts)}",
        updated_at=watermark.isoformat(),
    )
    (base / "_manifest.json").write_text(json.dumps(manifest, indent=1))
