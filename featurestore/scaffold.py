"""``featurestore init``: a small working project to start from."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from featurestore.config import CONFIG_FILE_NAME, render_default_config
from featurestore.errors import ConfigError

EXAMPLE_FEATURES = '''\
"""Definitions of this project: entities, sources, feature views and feature services."""

from datetime import timedelta

from featurestore import Entity, Feature, FeatureService, FeatureView, FileSource, Float64, Int64

driver = Entity(name="driver", join_keys=("driver_id",), key_types=(Int64,), description="A delivery driver")

trips = FileSource(name="trips", path="data/trips.csv", timestamp_field="trip_end", description="Finished trips")

driver_daily = FeatureView(
    name="driver_daily",
    entities=(driver,),
    source=trips,
    timestamp_field="day",
    ttl=timedelta(days=2),
    transformation="""
        SELECT driver_id, date_trunc('day', trip_end) + INTERVAL 1 DAY AS day,
               count(*) AS trips, avg(rating) AS avg_rating
        FROM trips GROUP BY ALL
    """,
    features=(
        Feature("trips", Int64, description="Trips finished during the previous day"),
        Feature("avg_rating", Float64, description="Mean customer rating of the previous day's trips"),
    ),
    description="Daily activity of each driver, available at the start of the next day",
)

driver_ranking = FeatureService(name="driver_ranking", features=(driver_daily,), description="Features of the ranking model")
'''


def scaffold_project(directory: Path, project: str | None = None) -> list[Path]:
    """Write featurestore.yaml, features.py and data/trips.csv; refuse to overwrite a project."""
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / CONFIG_FILE_NAME
    if config.exists():
        raise ConfigError("a project already exists here; edit it or choose another folder", file=str(config))
    name = project or re.sub(r"[^A-Za-z0-9_]", "_", directory.resolve().name) or "my_project"
    config.write_text(render_default_config(name))
    features = directory / "features.py"
    created = [config]
    if not features.exists():
        features.write_text(EXAMPLE_FEATURES)
        created.append(features)
    data = directory / "data" / "trips.csv"
    if not data.exists():
        data.parent.mkdir(parents=True, exist_ok=True)
        start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=5)
        lines = ["driver_id,trip_end,rating"]
        for i in range(60):
            when = start + timedelta(hours=2 * i)
            lines.append(f"{1 + i % 3},{when.isoformat()},{3 + (i * 7) % 3}")
        data.write_text("\n".join(lines) + "\n")
        created.append(data)
    return created
