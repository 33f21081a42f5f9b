"""The feature store's DuckDB connections compute in UTC wherever the machine is: the run's own
connection and the cursors of the shared database (coverage ranges, lookups' derivations, schema
inference), which do not inherit a connection's ``SET`` (``featurestore.sql.connect`` sets it
GLOBAL)."""

from __future__ import annotations

from datetime import date

import duckdb

from featurestore import sql
from tests.unit.tiny_projects import machine_time_zone

QUERY = "SELECT current_setting('TimeZone'), CAST(TIMESTAMPTZ '2024-01-01 02:00:00+00' AS DATE)"


def test_connections_and_their_cursors_cast_in_utc_on_a_machine_elsewhere() -> None:
    with machine_time_zone("America/New_York"):
        plain = duckdb.connect()
        assert plain.execute(QUERY).fetchall() == [("America/New_York", date(2023, 12, 31))]  # what we guard against
        plain.close()
        con = sql.connect()
        cursor = con.cursor()
        try:
            assert con.execute(QUERY).fetchall() == [("UTC", date(2024, 1, 1))]
            assert cursor.execute(QUERY).fetchall() == [("UTC", date(2024, 1, 1))]
            # A TIMESTAMPTZ reaches Arrow in UTC, not the machine's zone (schema inference, answers).
            arrow = cursor.sql("SELECT TIMESTAMPTZ '2024-01-01 02:00:00+00' AS t").to_arrow_table()
            assert str(arrow.schema.field("t").type) == "timestamp[us, tz=UTC]"
        finally:
            cursor.close()
            con.close()
