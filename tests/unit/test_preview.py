"""Dry runs on a sample (``etl/preview.py``, ``featurestore preview``): the rows a preview
computes for its sampled entities are exactly the full run's rows of those entities (the
transformation aggregates over each entity's history, so a row-sampled source would differ), and a
preview publishes nothing: offline files, online rows and the run history are unchanged."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from click.testing import CliRunner

from etl.local import LocalEngine
from etl.preview import preview_view
from featurestore.cli import cli
from featurestore.definitions import FeatureView
from featurestore.errors import InvalidRequestError
from featurestore.project_files import load_definitions
from featurestore.store import FeatureStore
from featurestore.validation import validate_project
from tests.unit.tiny_projects import UTC_US, new_project, tree_snapshot, utc, write_parquet

CUSTOMERS = 40

FEATURES = textwrap.dedent(
    '''
    from datetime import timedelta
    from featurestore import Entity, Feature, FeatureView, FileSource, Float64, InRange, Int64, NotNull

    customer = Entity(name="customer", join_keys=("customer_id",), key_types=(Int64,))
    payments = FileSource(name="payments", path="data/payments", file_format="parquet", timestamp_field="ts")
    # Each customer's running total and count over all their history, and a 3-day window: an
    # aggregate that is wrong unless all of the entity's rows are read.
    running = FeatureView(
        name="running", entities=(customer,), source=payments, ttl=timedelta(days=30),
        transformation="""
            SELECT customer_id, ts AS event_timestamp,
                   sum(amount) OVER (PARTITION BY customer_id ORDER BY ts) AS total,
                   count(*) OVER (PARTITION BY customer_id ORDER BY ts) AS n,
                   sum(amount) OVER (PARTITION BY customer_id ORDER BY ts
                                     RANGE BETWEEN INTERVAL 3 DAYS PRECEDING AND CURRENT ROW) AS total_3d
            FROM payments
        """,
        features=(Feature("total", Float64), Feature("n", Int64), Feature("total_3d", Float64, tags=("sensitive",))),
        expectations=(NotNull("total"), InRange("n", min=1, max=1000)),
    )
    '''
)


def write_project(tmp_path: Path) -> Path:
    root = new_project(tmp_path / "pay", "pay")
    (root / "features.py").write_text(FEATURES)
    for day in range(1, 11):
        ids = [c for c in range(1, CUSTOMERS + 1) if (c * day) % 3 != 0]
        write_parquet(
            root / "data" / "payments" / f"dt=2026-01-{day:02d}" / "part-0.parquet",
            {
                "customer_id": pa.array(ids, pa.int64()),
                "ts": pa.array([utc(2026, 1, day, c % 24) for c in ids], UTC_US),
                "amount": [float(c * day % 17) for c in ids],
            },
        )
    return root


def the_view(store: FeatureStore) -> FeatureView:
    return {v.name: v for v in validate_project(load_definitions(store.config)).feature_views}["running"]


def offline_rows(store: FeatureStore, view: FeatureView, ids: list[int]) -> list[tuple[object, ...]]:
    files = ", ".join(f"'{f}'" for f in store.offline_store.files(view))
    listed = ", ".join(str(i) for i in ids)
    return duckdb.execute(
        f"SELECT customer_id, strftime(event_timestamp AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%S+00:00'), total, n, "
        f"total_3d FROM read_parquet([{files}]) WHERE customer_id IN ({listed}) ORDER BY customer_id, event_timestamp"
    ).fetchall()


def test_the_preview_rows_are_the_full_runs_rows_of_the_sampled_entities_and_nothing_is_published(
    tmp_path: Path,
) -> None:
    root = write_project(tmp_path)
    with FeatureStore(root) as store:
        view = the_view(store)
        store.apply(load_definitions(store.config), schema_resolver=LocalEngine(store).infer_schema)
        before = (tree_snapshot(root / "data" / "offline"), store.registry.list_runs("pay"))
        report = preview_view(store, view, sample=7, rows_shown=10_000)
        assert (tree_snapshot(root / "data" / "offline"), store.registry.list_runs("pay")) == before
        assert before == ({}, [])
        assert (
            store.online_store.read(view, pa.table({"customer_id": pa.array(range(1, 41), pa.int64())}), ["n"])[
                "n"
            ].null_count
            == CUSTOMERS
        )  # nothing online either

        ids = sorted(e["customer_id"] for e in report.entities)
        assert len(ids) == 7 and report.sample.startswith("7 of 27 entities")  # 40 less the multiples of 3
        # The same entities every time (a hash of the key, not a random draw).
        assert preview_view(store, view, sample=7, rows_shown=0).entities == report.entities

        LocalEngine(store).run("running", definitions={view.name: view}, progress=False)
        full = offline_rows(store, view, ids)
        assert len(full) == report.rows > 7
        shown = [(r["customer_id"], r["event_timestamp"], r["total"], r["n"], r["total_3d"]) for r in report.first_rows]
        assert [(c, t, a, n) for c, t, a, n, _ in full] == [s[:4] for s in shown]
        assert {s[4] for s in shown} == {"***"}  # the sensitive feature's values are not shown
        # A named entity: its rows only, the same as the full run's.
        one = preview_view(store, view, entities=[str(ids[0])], rows_shown=10_000)
        assert [r["total"] for r in one.first_rows] == [a for c, _, a, _, _ in full if c == ids[0]]

    names = [s.name for s in report.steps]
    assert names == ["sample entities", "read file source payments", "transformation", "quality gate", "statistics"]
    read = report.steps[1]
    assert read.rows == report.rows  # one output row per payment of the sampled customers
    assert report.quality["status"] == "passed" and not report.blocked
    assert set(report.statistics) == {"total", "n"}  # none of the sensitive feature's figures


def test_a_sensitive_features_values_are_kept_out_of_the_gates_examples_and_statistics(tmp_path: Path) -> None:
    root = write_project(tmp_path)
    (root / "features.py").write_text(
        FEATURES.replace(
            'InRange("n", min=1, max=1000)',
            'InRange("n", min=1, max=1000), InRange("total_3d", max=0.5, severity="warn")',
        )
    )
    with FeatureStore(root) as store:
        view = the_view(store)
        store.apply(load_definitions(store.config), schema_resolver=LocalEngine(store).infer_schema)
        report = preview_view(store, view, sample=7, rows_shown=3)
    (failed,) = [r for r in report.quality["results"] if r["spec"].get("column") == "total_3d"]
    assert not failed["success"] and failed["examples"]
    assert {e["total_3d"] for e in failed["examples"]} == {"***"}
    assert all(isinstance(e["customer_id"], int) for e in failed["examples"])  # the keys are still shown
    assert "total_3d" not in report.statistics and set(report.statistics) == {"total", "n"}


def test_preview_from_the_command_line_and_its_errors(tmp_path: Path) -> None:
    root = write_project(tmp_path)
    runner = CliRunner()
    result = runner.invoke(cli, ["-C", str(root), "preview", "running", "--sample", "3", "--rows", "2"])
    assert result.exit_code == 0, result.output
    assert "preview of running: 3 of 27 entities" in result.output
    assert "read file source payments" in result.output and "quality gate" in result.output
    assert "PASSED" in result.output and "histogram" in result.output
    as_json = runner.invoke(
        cli, ["-C", str(root), "preview", "running", "--entities", "5,6", "--start", "2026-01-05", "--json"]
    )
    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.output)
    assert data["published"] is False
    assert data["entities"] == [{"customer_id": 5}, {"customer_id": 6}]
    assert {r["customer_id"] for r in data["first_rows"]} <= {5, 6}
    assert all(r["event_timestamp"] >= "2026-01-05" for r in data["first_rows"])
    both = runner.invoke(cli, ["-C", str(root), "preview", "running", "--sample", "3", "--entities", "5"])
    assert both.exit_code == 2 and "not both" in both.output
    bad = runner.invoke(cli, ["-C", str(root), "preview", "running", "--entities", "five"])
    assert bad.exit_code == 1 and isinstance(bad.exception, InvalidRequestError)
    assert "'customer_id' is an integer key, not 'five'" in str(bad.exception)
    with FeatureStore(root) as store, pytest.raises(InvalidRequestError, match="at least 1"):
        preview_view(store, the_view(store), sample=0)


PANDAS = textwrap.dedent(
    """
    from datetime import timedelta
    from featurestore import Entity, Feature, FeatureView, FileSource, Float64, Int64

    def doubled(df):
        return df.assign(event_timestamp=df["ts"], amount2=df["amount"] * FACTOR)[
            ["customer_id", "event_timestamp", "amount2"]
        ]

    customer = Entity(name="customer", join_keys=("customer_id",), key_types=(Int64,))
    payments = FileSource(name="payments", path="data/payments", file_format="parquet", timestamp_field="ts")
    pandas_view = FeatureView(
        name="pandas_view", entities=(customer,), source=payments, ttl=timedelta(days=30),
        transformation=doubled, features=(Feature("amount2", Float64),),
    )
    """
)


def test_a_pandas_view_is_previewed_only_when_the_files_define_the_applied_version(tmp_path: Path) -> None:
    from etl.preview import runnable_view
    from featurestore.errors import RunError

    root = write_project(tmp_path)
    (root / "features.py").write_text(PANDAS.replace("FACTOR", "2"))
    with FeatureStore(root) as store:
        store.apply(load_definitions(store.config), schema_resolver=LocalEngine(store).infer_schema)
        report = preview_view(store, runnable_view(store, "pandas_view"), sample=2, rows_shown=1)
        assert report.rows > 0 and report.first_rows[0]["amount2"] % 2 == 0
        (root / "features.py").write_text(PANDAS.replace("FACTOR", "3"))  # edited, not applied
        with pytest.raises(RunError, match=r"the applied view, version 1, .* define a version never applied"):
            runnable_view(store, "pandas_view")
