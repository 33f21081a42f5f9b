"""Builders of small real projects for the unit tests, in ``tmp_path`` (no servers).

Every project here uses the embedded default (Parquet offline store, SQLite online store and
registry, DuckDB engine) written by :func:`render_default_config`, so a test exercises the same
code paths as a user's first project.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from featurestore.config import CONFIG_FILE_NAME, render_default_config

UTC_US = pa.timestamp("us", tz="UTC")


def utc(*args: int) -> datetime:
    """A timezone-aware UTC datetime: ``utc(2024, 3, 1, 12)``."""
    return datetime(*args, tzinfo=UTC)


def new_project(root: Path, name: str) -> Path:
    """An empty project folder with the default ``featurestore.yaml``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / CONFIG_FILE_NAME).write_text(render_default_config(name))
    return root


def write_parquet(path: Path, columns: dict[str, pa.Array | list[object]]) -> Path:
    """Write one Parquet file, creating its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path)
    return path


def tree_snapshot(root: Path) -> dict[str, bytes | None]:
    """Every file (with its bytes) and folder (``None``) under ``root``, by relative path."""
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


@contextmanager
def machine_time_zone(name: str) -> Iterator[None]:
    """Run with the process's local time zone set to ``name`` (e.g. ``Asia/Tokyo``), to show that
    nothing depends on where the code runs."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = name
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = before
        time.tzset()
