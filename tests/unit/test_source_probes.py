"""Source probes (``featurestore.source_probe``), partitioned folders selected by a date
expression (``featurestore.partitions``), ``featurestore source check`` and the probes of
``featurestore apply``: against a missing file, an unreadable one, a partitioned Parquet folder,
a CSV file and a SQL source, with a sensitive column never sampled."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import textwrap
from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest
from click.testing import CliRunner

from featurestore.cli import cli
from featurestore.definitions import FileSource, SqlSource
from featurestore.partitions import PartitionFilter, source_files
from featurestore.source_probe import probe_source
from featurestore.store import FeatureStore
from tests.unit.tiny_projects import UTC_US, new_project, utc, write_parquet

DAYS = (date(2026, 1, 1), date(2026, 1, 2), date(2026, 1, 5))


def write_events(folder: Path) -> None:
    """Three Hive-style partitions dt=YYYY-MM-DD of two customers' events (2, 2 and 3 rows)."""
    for i, day in enumerate(DAYS):
        n = 2 if i < 2 else 3
        write_parquet(
            folder / f"dt={day.isoformat()}" / "part-0.parquet",
            {
                "customer_id": pa.array([1 + j % 2 for j in range(n)], pa.int64()),
                "email": [f"c{j}@bank.example" for j in range(n)],
                "ts": pa.array([utc(day.year, day.month, day.day, 9 + j) for j in range(n)], UTC_US),
                "amount": [10.0 * (j + 1) for j in range(n)],
            },
        )
    (folder / "_SUCCESS").write_text("")  # a writer's marker: not data


def events(partitions: str | None = None) -> FileSource:
    return FileSource(
        name="events",
        path="data/events",
        file_format="parquet",
        timestamp_field="ts",
        partitions=partitions,
        tags=("sensitive:email",),
    )


def test_a_partitioned_parquet_folder_is_probed_from_its_footers_with_partitions_and_no_sensitive_values(
    tmp_path: Path,
) -> None:
    write_events(tmp_path / "data" / "events")
    probe = probe_source(events(), tmp_path, sample_rows=3)
    assert probe.status == "ok", probe.message
    assert (probe.row_count, probe.files) == (7, 3)
    assert (probe.time_min, probe.time_max) == (utc(2026, 1, 1, 9), utc(2026, 1, 5, 11))
    assert [p.path for p in probe.partitions] == ["dt=2026-01-01", "dt=2026-01-02", "dt=2026-01-05"]
    assert [(p.values, p.files, p.rows) for p in probe.partitions][2] == ({"dt": "2026-01-05"}, 1, 3)
    names = [n for n, _ in probe.columns]
    assert names == ["customer_id", "email", "ts", "amount", "dt"]  # the partition column is a column
    assert probe.sensitive == ("email",)
    assert len(probe.sample) == 3
    assert all("email" not in row for row in probe.sample)
    assert "bank.example" not in json.dumps(probe.to_dict()["sample"])


def test_a_date_expression_selects_partitions_when_the_source_is_read(tmp_path: Path) -> None:
    folder = tmp_path / "data" / "events"
    write_events(folder)
    today = date(2026, 1, 6)
    chosen = source_files(folder, "parquet", "dt >= today - 4", today=today)
    assert [f.parent.name for f in chosen.files] == ["dt=2026-01-02", "dt=2026-01-05"]
    assert chosen.selected_from == 3
    both = source_files(folder, "parquet", "dt > '2026-01-01' and dt < today - 1", today=today)
    assert [f.parent.name for f in both.files] == ["dt=2026-01-02"]
    with pytest.raises(ValueError, match="cannot read 'dt within 3 days'"):
        PartitionFilter.parse("dt within 3 days")
    # The probe evaluates it today: only the newest partitions, all of them listed.
    recent = (date.today() - DAYS[-1]).days
    probe = probe_source(events(f"dt >= today - {recent}"), tmp_path)
    assert (probe.status, probe.row_count, probe.selected_partitions, len(probe.partitions)) == ("ok", 3, 1, 3)
    assert [(p.files, p.rows) for p in probe.partitions] == [(1, None), (1, None), (1, 3)]  # footers read: selected
    none = probe_source(events(f"dt > today - {recent}"), tmp_path)
    assert none.status == "missing" and "widen the expression" in none.message


def test_a_bad_partition_expression_is_a_definition_problem() -> None:
    assert any("cannot read" in p for p in events("dt is recent").problems())
    assert events("dt >= today - 30").problems() == []


def test_a_missing_file_is_reported_with_what_to_do(tmp_path: Path) -> None:
    probe = probe_source(FileSource(name="gone", path="data/gone.parquet"), tmp_path)
    assert probe.status == "missing"
    assert str(tmp_path / "data" / "gone.parquet") in probe.message
    assert "check the path" in probe.message
    folder = FileSource(name="empty", path="data", file_format="parquet")
    (tmp_path / "data").mkdir()
    assert probe_source(folder, tmp_path).status == "missing"


def test_an_unreadable_file_is_reported_as_unreadable(tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "data" / "secret.parquet", {"a": [1]})
    if os.geteuid() != 0:
        path.chmod(0)
        try:
            probe = probe_source(FileSource(name="secret", path="data/secret.parquet"), tmp_path)
        finally:
            path.chmod(0o644)
        assert probe.status == "unreadable"
        assert "cannot be read by user" in probe.message and "grant that user read access" in probe.message
    # As root (or anyone), a file that is not Parquet cannot be read either.
    path.write_bytes(b"not a parquet file at all")
    probe = probe_source(FileSource(name="secret", path="data/secret.parquet"), tmp_path)
    assert probe.status == "unreadable"
    assert "not readable as Parquet" in probe.message


def test_csv_and_sql_sources_are_probed_by_duckdb_and_inherit_sensitive_columns(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("customer_id,email,ts,amount\n1,a@x,2026-01-01 10:00:00,5\n2,b@x,2026-01-03,7\n")
    csv = FileSource(name="t", path="t.csv", timestamp_field="ts", tags=("sensitive:email",))
    probe = probe_source(csv, tmp_path)
    assert (probe.status, probe.row_count) == ("ok", 2)
    assert probe.time_min == utc(2026, 1, 1, 10) and probe.time_max == utc(2026, 1, 3)
    query = SqlSource(name="q", query="SELECT customer_id, email, amount * 2 AS a2 FROM t", sources=(csv,))
    probe = probe_source(query, tmp_path)
    assert (probe.status, probe.row_count, probe.sensitive) == ("ok", 2, ("email",))
    assert probe.sample == ({"customer_id": 1, "a2": 10}, {"customer_id": 2, "a2": 14})
    broken = SqlSource(name="b", query="SELECT nope FROM t", sources=(csv,))
    assert probe_source(broken, tmp_path).status == "failed"
    upstream_gone = SqlSource(name="u", query="SELECT * FROM gone", sources=(FileSource(name="gone", path="x.csv"),))
    probe = probe_source(upstream_gone, tmp_path)
    assert probe.status == "missing" and "its input 'gone'" in probe.message


def test_a_sensitive_tag_hides_its_column_whatever_the_case_of_either(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("customer_id,Email,ts\n1,a@x,2026-01-01 10:00:00\n")
    csv = FileSource(name="t", path="t.csv", timestamp_field="ts", tags=("sensitive:email",))
    probe = probe_source(csv, tmp_path)
    assert (probe.status, probe.sensitive) == ("ok", ("Email",))
    assert probe.sample == ({"customer_id": 1, "ts": "2026-01-01T10:00:00"},)
    assert "a@x" not in json.dumps(probe.to_dict())


def test_a_folder_of_many_partitions_is_probed_within_the_time_bound(tmp_path: Path) -> None:
    one = tmp_path / "one.parquet"
    write_parquet(one, {"customer_id": pa.array([1, 2], pa.int64()), "amount": [1.0, 2.0]})
    folder = tmp_path / "data" / "events"
    for p in range(500):
        day = date(2024, 1, 1).toordinal() + p
        part = folder / f"dt={date.fromordinal(day).isoformat()}"
        part.mkdir(parents=True)
        for i in range(4):
            shutil.copyfile(one, part / f"part-{i}.parquet")
    source = FileSource(name="events", path="data/events", file_format="parquet")
    probe = probe_source(source, tmp_path, timeout=3.0)
    # Before: every partition looked through every file (500 x 2,000) outside the bound, 18 s.
    assert probe.seconds < 8, probe.notes
    assert probe.status == "ok" and len(probe.partitions) == 500
    assert {p.files for p in probe.partitions} == {4}


def test_a_folder_reads_every_file_but_hidden_ones_whatever_its_name(tmp_path: Path) -> None:
    hive = tmp_path / "hive"  # as Hive writes a table: files named 000000_0, markers and checksums hidden
    write_parquet(hive / "dt=2026-01-01" / "000000_0", {"customer_id": pa.array([1, 2], pa.int64())})
    write_parquet(hive / "dt=2026-01-02" / "000000_0", {"customer_id": pa.array([3], pa.int64())})
    (hive / "dt=2026-01-02" / ".000000_0.crc").write_bytes(b"crc")
    (hive / "_SUCCESS").write_text("")
    (hive / "_temporary" / "0").mkdir(parents=True)
    (hive / "_temporary" / "0" / "part").write_text("half written")
    listed = source_files(hive, "parquet", None).files
    assert [f.relative_to(hive).as_posix() for f in listed] == ["dt=2026-01-01/000000_0", "dt=2026-01-02/000000_0"]
    probe = probe_source(FileSource(name="h", path="hive", file_format="parquet"), tmp_path)
    assert (probe.status, probe.row_count, probe.files) == ("ok", 3, 2), probe.message
    gz = tmp_path / "gz" / "part-0.csv.gz"
    gz.parent.mkdir()
    gz.write_bytes(gzip.compress(b"customer_id,amount\n1,2.5\n2,3.5\n"))
    probe = probe_source(FileSource(name="g", path="gz", file_format="csv"), tmp_path)
    assert (probe.status, probe.row_count) == ("ok", 2), probe.message


def test_a_slow_count_is_left_out_within_the_time_bound(tmp_path: Path) -> None:
    slow = SqlSource(
        name="slow",
        query="SELECT a.range AS x FROM range(100000000) a, range(100) b",
        sources=(),
    )
    probe = probe_source(slow, tmp_path, timeout=0.5, sample_rows=0)
    assert probe.status == "ok"
    assert probe.row_count is None
    assert any("not counted within" in n for n in probe.notes)
    assert probe.seconds < 5


FEATURES = textwrap.dedent(
    """
    from datetime import timedelta
    from featurestore import Entity, Feature, FeatureView, FileSource, Float64, Int64

    customer = Entity(name="customer", join_keys=("customer_id",), key_types=(Int64,))
    events = FileSource(name="events", path="data/events", file_format="parquet", timestamp_field="ts",
                        tags=("sensitive:email",))
    missing = FileSource(name="missing", path="data/missing.parquet", timestamp_field="ts")
    spend = FeatureView(
        name="spend", entities=(customer,), source=events, ttl=timedelta(days=30),
        transformation="SELECT customer_id, ts AS event_timestamp, amount FROM events",
        features=(Feature("amount", Float64),),
    )
    """
)


def test_apply_probes_every_source_warns_about_a_bad_one_and_strict_applies_nothing(tmp_path: Path) -> None:
    root = new_project(tmp_path / "shop", "shop")
    write_events(root / "data" / "events")
    (root / "features.py").write_text(FEATURES)
    runner = CliRunner()
    strict = runner.invoke(cli, ["-C", str(root), "apply", "--strict"])
    assert strict.exit_code == 1, strict.output
    assert "warning: source 'missing' is missing" in strict.output
    assert "nothing applied" in strict.output
    with FeatureStore(root) as store:
        assert store.registry.list_sources("shop") == []
        assert store.registry.list_source_probes("shop") == []
    result = runner.invoke(cli, ["-C", str(root), "apply"])
    assert result.exit_code == 0, result.output
    assert "warning: source 'missing' is missing" in result.output
    with FeatureStore(root) as store:
        probes = {p.source: p for p in store.registry.list_source_probes("shop")}
        assert set(probes) == {"events", "missing"}
        assert (probes["events"].status, probes["events"].row_count) == ("ok", 7)
        assert probes["events"].sensitive == ("email",)
    check = runner.invoke(cli, ["-C", str(root), "source", "check", "events", "--json"])
    assert check.exit_code == 0, check.output
    (found,) = json.loads(check.output)
    assert (found["source"], found["status"], found["row_count"]) == ("events", "ok", 7)
    assert [p["path"] for p in found["partitions"]] == ["dt=2026-01-01", "dt=2026-01-02", "dt=2026-01-05"]
    bad = runner.invoke(cli, ["-C", str(root), "source", "check", "missing"])
    assert bad.exit_code == 1 and "missing: no file matches" in bad.output
    unknown = runner.invoke(cli, ["-C", str(root), "source", "check", "event"])
    assert unknown.exit_code == 1 and "Did you mean 'events'" in str(unknown.exception)
    # A source the project no longer has loses its probe at the next apply.
    (root / "features.py").write_text(FEATURES.replace('missing = FileSource(name="missing"', "# gone = ("))
    again = runner.invoke(cli, ["-C", str(root), "apply"])
    assert again.exit_code == 0 and "warning" not in again.output, again.output
    with FeatureStore(root) as store:
        assert [p.source for p in store.registry.list_source_probes("shop")] == ["events"]


def test_the_engine_reads_only_the_selected_partitions(tmp_path: Path) -> None:
    from etl.local import LocalEngine

    root = new_project(tmp_path / "shop", "shop")
    write_events(root / "data" / "events")
    days = (date.today() - DAYS[1]).days
    (root / "features.py").write_text(
        FEATURES.replace('timestamp_field="ts",\n', f'timestamp_field="ts", partitions="dt >= today - {days}",\n')
    )
    from featurestore.project_files import load_definitions
    from featurestore.validation import validate_project

    with FeatureStore(root) as store:
        view = next(v for v in validate_project(load_definitions(store.config)).feature_views if v.name == "spend")
        assert isinstance(view.source, FileSource) and view.source.partitions == f"dt >= today - {days}"
        frame = LocalEngine(store).compute(view, None, None, tmp_path / "scratch")
        assert frame.num_rows == 5  # 2 + 3 rows of the two newest partitions
        assert sorted(frame.files) == ["2026-01-02", "2026-01-05"]


def test_a_run_never_replaces_published_dates_its_partition_expression_did_not_read(tmp_path: Path) -> None:
    root = new_project(tmp_path / "shop", "shop")
    write_events(root / "data" / "events")
    (root / "features.py").write_text(FEATURES)
    runner = CliRunner()
    for args in (["apply"], ["run", "spend", "--no-progress"]):
        done = runner.invoke(cli, ["-C", str(root), *args])
        assert done.exit_code == 0, done.output
    days = (date.today() - DAYS[1]).days  # selects 2026-01-02 and 2026-01-05, not 2026-01-01
    (root / "features.py").write_text(
        FEATURES.replace('timestamp_field="ts",\n', f'timestamp_field="ts", partitions="dt >= today - {days}",\n')
    )
    for args in (["apply"], ["run", "spend", "--no-progress"]):
        done = runner.invoke(cli, ["-C", str(root), *args])
        assert done.exit_code == 0, done.output
    with FeatureStore(root) as store:
        view = store.registry.get_feature_view("shop", "spend")
        rows = store.offline_store.read(view).to_pylist()
    assert len(rows) == 7
    assert sorted({r["event_timestamp"].date() for r in rows}) == list(DAYS)
    # A window wholly outside the selection is refused, and nothing changes.
    refused = runner.invoke(
        cli, ["-C", str(root), "run", "spend", "--no-progress", "--start", "2025-12-01", "--end", "2026-01-02"]
    )
    assert refused.exit_code != 0
    assert "spend" in str(refused.exception or refused.output) and "dt >= today" in str(
        refused.exception or refused.output
    )
    with FeatureStore(root) as store:
        assert store.offline_store.read(store.registry.get_feature_view("shop", "spend")).num_rows == 7


def test_source_check_records_a_probe_only_of_a_source_defined_as_applied(tmp_path: Path) -> None:
    root = new_project(tmp_path / "shop", "shop")
    write_events(root / "data" / "events")
    write_events(root / "data" / "other")
    (root / "features.py").write_text(FEATURES)
    runner = CliRunner()
    assert runner.invoke(cli, ["-C", str(root), "apply"]).exit_code == 0
    with FeatureStore(root) as store:
        applied = store.registry.get_source_probe("shop", "events")
    assert applied is not None and applied.files == 3
    # Edited, not applied: another folder, and the email column no longer tagged.
    (root / "features.py").write_text(
        FEATURES.replace('path="data/events"', 'path="data/other"').replace('tags=("sensitive:email",)', "tags=()")
    )
    check = runner.invoke(cli, ["-C", str(root), "source", "check", "events", "--json"])
    assert check.exit_code == 0, check.output
    assert "probe of source 'events' is not recorded: its definition in the project's files differs" in check.stderr
    assert json.loads(check.stdout)[0]["source"] == "events"  # stdout stays JSON
    with FeatureStore(root) as store:
        assert store.registry.get_source_probe("shop", "events") == applied
    (root / "features.py").write_text(FEATURES)  # as applied again: recorded
    again = runner.invoke(cli, ["-C", str(root), "source", "check", "events"])
    assert again.exit_code == 0 and "not recorded" not in again.stderr
    with FeatureStore(root) as store:
        latest = store.registry.get_source_probe("shop", "events")
    assert latest is not None and latest.probed_at > applied.probed_at
