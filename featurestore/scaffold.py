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


# The example trips start on this fixed date, so that the README's commands (windows in March 2024,
# reference data as of 2024-03-01) select data, and run up to yesterday, so that a lookup right
# after `featurestore run --all` finds values within driver_daily's 2-day TTL.
FIRST_TRIP_DAY = datetime(2024, 1, 1, tzinfo=UTC)
TRIP_EVERY = timedelta(hours=4)
DRIVERS = 3

# A spine for `featurestore training-set --spine spine.csv`: which drivers accepted a ranked
# offer, at times inside the example data.
EXAMPLE_SPINE = """\
driver_id,ts,accepted
1,2024-03-05T09:30:00Z,1
2,2024-03-05T11:00:00Z,0
3,2024-03-06T14:15:00Z,1
1,2024-03-07T08:45:00Z,1
2,2024-03-08T17:20:00Z,0
3,2024-03-09T12:05:00Z,1
"""


def example_trips(today: datetime) -> str:
    """Trips of three drivers, one every four hours in turn, from :data:`FIRST_TRIP_DAY` to the
    end of the day before ``today`` (so no feature row lies in the future)."""
    end = today.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    lines = ["driver_id,trip_end,rating"]
    when, i = FIRST_TRIP_DAY + timedelta(hours=1), 0
    while when < end:
        lines.append(f"{1 + i % DRIVERS},{when.isoformat()},{3 + (i * 7) % 3}")
        when, i = when + TRIP_EVERY, i + 1
    return "\n".join(lines) + "\n"


def scaffold_project(directory: Path, project: str | None = None) -> list[Path]:
    """Write featurestore.yaml, features.py, data/trips.csv (trips from 2024-01-01 to yesterday)
    and spine.csv; refuse to overwrite a project."""
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
        data.write_text(example_trips(datetime.now(UTC)))
        created.append(data)
    spine = directory / "spine.csv"
    if not spine.exists():
        spine.write_text(EXAMPLE_SPINE)
        created.append(spine)
    return created
