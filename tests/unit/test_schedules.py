"""Schedules and freshness of feature views: validation, the registry's form, due times."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from featurestore import Entity, Feature, FeatureView, FileSource, Float64, Int64
from featurestore.definitions import Project
from featurestore.errors import DefinitionError
from featurestore.schedules import due_times, next_due, schedule_text
from featurestore.validation import validate_project
from tests.unit.test_cli import featurestore, write_shop
from tests.unit.tiny_projects import utc

customer = Entity(name="customer", join_keys=("customer_id",), key_types=(Int64,))
trips = FileSource(name="trips", path="data/trips.parquet", timestamp_field="ts")


def view(**kwargs: object) -> FeatureView:
    args: dict[str, object] = {
        "name": "spend",
        "entities": (customer,),
        "source": trips,
        "timestamp_field": "ts",
        "ttl": timedelta(days=1),
        "features": (Feature("amount", Float64),),
    }
    return FeatureView(**{**args, **kwargs})  # type: ignore[arg-type]


# ---------------------------------------------------------------------- definitions


def test_a_bad_cron_expression_names_the_view_and_the_expression() -> None:
    with pytest.raises(DefinitionError) as err:
        validate_project([view(schedule="61 * * * *", freshness=timedelta(0))])
    text = str(err.value)
    assert "Feature view 'spend' has schedule '61 * * * *', which is not a cron expression" in text
    assert "Feature view 'spend' has freshness 0:00:00, which must be positive" in text  # every problem at once


def test_a_schedule_of_the_wrong_type_is_refused_at_construction() -> None:
    with pytest.raises(DefinitionError, match=r"'spend' schedule must be a cron expression .* got 3600"):
        view(schedule=3600)
    with pytest.raises(DefinitionError, match=r"'spend' freshness must be a datetime\.timedelta"):
        view(freshness="2h")
    with pytest.raises(DefinitionError, match="an interval under one second"):
        validate_project([view(schedule=timedelta(0))])


def test_schedule_and_freshness_round_trip_through_the_spec_and_stay_out_of_the_version() -> None:
    plain = view()
    cron = view(schedule="0 * * * *", freshness=timedelta(hours=2))
    interval = view(schedule=timedelta(minutes=15))
    for v in (cron, interval):
        again = FeatureView.from_spec(v.to_spec(), {"customer": customer}, trips)
        assert (again.schedule, again.freshness) == (v.schedule, v.freshness)
        assert v.schema_fingerprint() == plain.schema_fingerprint()
    assert cron.to_spec()["schedule"] == {"cron": "0 * * * *"}
    assert interval.to_spec()["schedule"] == {"interval_seconds": 900.0}
    # A spec written before schedules existed has neither.
    old = {k: v for k, v in plain.to_spec().items() if k not in ("schedule", "freshness_seconds")}
    restored = FeatureView.from_spec(old, {"customer": customer}, trips)
    assert (restored.schedule, restored.freshness) == (None, None)
    assert validate_project([cron]) == Project.collect([cron])  # valid


def test_changing_a_schedule_makes_no_new_version(tmp_path: Path) -> None:
    root = write_shop(tmp_path / "shop")
    assert featurestore("-C", root, "apply").code == 0
    features = root / "features.py"
    features.write_text(
        features.read_text().replace(
            'description="Daily card activity",',
            'description="Daily card activity",\n    schedule="0 6 * * *",\n    freshness=timedelta(days=2),',
        )
    )
    applied = featurestore("-C", root, "apply")
    assert applied.code == 0, applied.err
    assert "updated  feature view customer_stats (schedule or freshness changed; same version)" in applied.out
    listed = featurestore("-C", root, "schedule")
    assert listed.code == 0, listed.err
    line = next(line for line in listed.out.splitlines() if line.startswith("customer_stats"))
    # Never run: no lag, so not stale (as in the metrics and the alerts: failing runs say so).
    assert "0 6 * * *" in line and "2d" in line and "STALE" not in line
    [row] = json.loads(featurestore("-C", root, "schedule", "--json").out)
    assert row["schedule"] == "0 6 * * *" and row["freshness_seconds"] == 172800
    assert (row["last_run"], row["watermark"], row["lag_seconds"], row["stale"]) == (None, None, None, False)
    assert row["next_due"].endswith("T06:00:00+00:00")
    described = featurestore("-C", root, "describe", "customer_stats")
    assert '"version": 1' in described.out


# ---------------------------------------------------------------------- due times


def test_due_times_of_a_cron_expression_are_in_utc() -> None:
    assert next_due("0 * * * *", utc(2024, 3, 1, 5, 30)) == utc(2024, 3, 1, 6)
    assert next_due("0 * * * *", utc(2024, 3, 1, 6)) == utc(2024, 3, 1, 7)  # strictly after
    # Cron's weekdays count from Sunday (0 or 7), APScheduler's from Monday: translated.
    assert next_due("30 6 * * 1", utc(2024, 3, 1)) == utc(2024, 3, 4, 6, 30)  # 2024-03-04 is a Monday
    assert next_due("0 0 * * 0", utc(2024, 3, 1)) == next_due("0 0 * * 7", utc(2024, 3, 1)) == utc(2024, 3, 3)
    assert next_due("0 0 * * 1-5", utc(2024, 3, 2)) == utc(2024, 3, 4)  # Saturday → Monday
    found, skipped = due_times("0 6 * * *", utc(2024, 3, 1, 6), utc(2024, 3, 4, 7), limit=10)
    assert found == [utc(2024, 3, 2, 6), utc(2024, 3, 3, 6), utc(2024, 3, 4, 6)]
    assert skipped == 0


def test_due_times_of_an_interval_count_from_the_epoch() -> None:
    every_15 = timedelta(minutes=15)
    assert next_due(every_15, utc(2024, 3, 1, 5, 31)) == utc(2024, 3, 1, 5, 45)
    assert next_due(every_15, utc(2024, 3, 1, 5, 45)) == utc(2024, 3, 1, 6)
    found, _ = due_times(every_15, None, utc(2024, 3, 1, 6, 10), limit=1)
    assert found == [utc(2024, 3, 1, 6)]  # never run: only the latest due time
    assert schedule_text(every_15) == "every 0:15:00"


def test_catch_up_keeps_the_latest_due_times_oldest_first_and_counts_the_rest() -> None:
    found, skipped = due_times("0 * * * *", utc(2024, 3, 1, 0), utc(2024, 3, 3, 0, 30), limit=3)
    assert found == [utc(2024, 3, 2, 22), utc(2024, 3, 2, 23), utc(2024, 3, 3, 0)]
    assert skipped == 45  # 01:00 on the 1st to 21:00 on the 2nd
    # Years behind on a per-minute schedule: as cheap as a few due times.
    found, _ = due_times("* * * * *", utc(2020, 1, 1), utc(2024, 3, 1), limit=2)
    assert found == [utc(2024, 2, 29, 23, 59), utc(2024, 3, 1)]
