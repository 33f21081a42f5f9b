"""Duplicate features, the reviewer's cases (issue 18 part 4): queries the exact check must not
take for one another, pandas views it cannot tell apart, value checks on rare events and
filtered copies, the apply's warn mode when the check fails, and what the registry keeps."""

from __future__ import annotations

import dataclasses
import random
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from etl.duplicates import SampleComparer
from featurestore.cli import cli
from featurestore.definitions import Entity, Feature, FeatureView, FileSource
from featurestore.duplicates import exact_duplicates, feature_signatures
from featurestore.errors import DefinitionError
from featurestore.store import FeatureStore
from featurestore.types import ValueType
from tests.unit.test_duplicates import COPIES, FEATURES, invoke, write_project

CUSTOMER = Entity(name="customer", join_keys=("customer_id",), key_types=(ValueType.INT64,))
TX = FileSource(name="tx", path="/data/tx.parquet", timestamp_field="ts")


def sql_view(name: str, sql: str, features: tuple[str, ...] = ("x",)) -> FeatureView:
    return FeatureView(
        name=name,
        entities=(CUSTOMER,),
        source=TX,
        ttl=timedelta(days=1),
        transformation=sql,
        features=tuple(Feature(f, ValueType.FLOAT64) for f in features),
    )


DIFFERENT = {
    "self-join, current vs previous amount": (
        "SELECT a.customer_id, a.ts, a.amount AS x FROM tx a JOIN tx b ON a.customer_id = b.customer_id AND b.ts < a.ts",
        "SELECT a.customer_id, a.ts, b.amount AS x FROM tx a JOIN tx b ON a.customer_id = b.customer_id AND b.ts < a.ts",
    ),
    "another output column's alias": (
        "SELECT customer_id, ts, sum(amount) AS s, s / 2 AS x FROM tx GROUP BY customer_id, ts",
        "SELECT customer_id, ts, sum(fee) AS s, s / 2 AS x FROM tx GROUP BY customer_id, ts",
    ),
    "HAVING on another alias": (
        "SELECT customer_id, ts, count(*) AS x, sum(amount) AS s FROM tx GROUP BY customer_id, ts HAVING s > 0",
        "SELECT customer_id, ts, count(*) AS x, sum(fee) AS s FROM tx GROUP BY customer_id, ts HAVING s > 0",
    ),
    "a table alias's column names": (
        "SELECT customer_id, ts, a AS x FROM tx AS t(customer_id, ts, a, b)",
        "SELECT customer_id, ts, a AS x FROM tx AS t(customer_id, ts, b, a)",
    ),
    "GROUP BY a position of a dropped column": (
        "SELECT customer_id, max(ts) AS ts, status, sum(amount) AS x FROM tx GROUP BY 1, 3",
        "SELECT customer_id, max(ts) AS ts, region, sum(amount) AS x FROM tx GROUP BY 1, 3",
    ),
    "GROUP BY ALL over a dropped column": (
        "SELECT customer_id, max(ts) AS ts, status, sum(amount) AS x FROM tx GROUP BY ALL",
        "SELECT customer_id, max(ts) AS ts, region, sum(amount) AS x FROM tx GROUP BY ALL",
    ),
    "DISTINCT over a dropped column": (
        "SELECT DISTINCT customer_id, ts, status, amount AS x FROM tx",
        "SELECT DISTINCT customer_id, ts, region, amount AS x FROM tx",
    ),
    "a correlated subquery's outer column": (
        "SELECT p.customer_id, p.ts, (SELECT sum(q.amount) FROM tx q WHERE q.customer_id = p.customer_id) AS x "
        "FROM tx p",
        "SELECT p.customer_id, p.ts, (SELECT sum(q.amount) FROM tx q WHERE q.customer_id = q.customer_id) AS x "
        "FROM tx p",
    ),
}

SAME = {
    "aliases and qualifiers of one table": (
        "SELECT t.customer_id, t.ts, t.amount + t.fee AS x FROM tx AS t",
        "SELECT customer_id, ts, fee + amount AS total FROM tx",
    ),
    "a self-join under other aliases": (
        "SELECT a.customer_id, a.ts, b.amount AS x FROM tx a JOIN tx b ON a.customer_id = b.customer_id",
        "SELECT cur.customer_id, cur.ts, prev.amount AS x FROM tx cur JOIN tx prev ON cur.customer_id = prev.customer_id",
    ),
    "an alias inlined": (
        "SELECT customer_id, ts, sum(amount) AS s, s / 2 AS x FROM tx GROUP BY customer_id, ts",
        "SELECT customer_id, ts, sum(amount) / 2 AS x FROM tx GROUP BY 1, 2",
    ),
}


@pytest.mark.parametrize("label", sorted(DIFFERENT))
def test_queries_that_compute_other_values_are_not_exact_duplicates(label: str) -> None:
    first, second = DIFFERENT[label]
    assert exact_duplicates([sql_view("copy", second)], [sql_view("orig", first)]) == []


@pytest.mark.parametrize("label", sorted(SAME))
def test_queries_written_differently_that_compute_the_same_are_exact_duplicates(label: str) -> None:
    first, second = SAME[label]
    copy = sql_view("copy", second, ("total",) if "total" in second else ("x",))
    found = exact_duplicates([copy], [sql_view("orig", first)])
    assert [(f.feature.split(":")[0], f.duplicate_of, f.kind) for f in found] == [("copy", "orig:x", "exact")]


def test_a_query_sqlglot_cannot_tokenize_has_no_signature() -> None:
    assert feature_signatures(sql_view("broken", "SELECT customer_id, ts, 'abc AS x FROM tx")) == {}


# ------------------------------------------------------------------------------ pandas views


def region_view(name: str, region: str) -> FeatureView:
    def transform(df: Any) -> Any:
        return df[df.region == region]

    return FeatureView(
        name=name,
        entities=(CUSTOMER,),
        source=TX,
        ttl=timedelta(days=1),
        transformation=transform,
        features=(Feature("spend", ValueType.FLOAT64),),
    )


def test_pandas_views_from_one_factory_differ_by_the_values_they_close_over() -> None:
    eu, us, eu_again = region_view("spend_eu", "eu"), region_view("spend_us", "us"), region_view("eu2", "eu")
    assert exact_duplicates([us], [eu]) == []
    assert [f.duplicate_of for f in exact_duplicates([eu_again], [eu])] == ["spend_eu:spend"]


def test_lambdas_and_functions_reading_values_it_cannot_tell_have_no_signature() -> None:
    first = sql_view("first", "unused")
    threshold = object()  # its repr tells nothing of what it holds

    def reads_an_object(df: Any) -> Any:
        return df[df.amount > threshold]

    for transformation in (lambda df: df[df.amount > 1], lambda df: df[df.amount > 2], reads_an_object):
        view = dataclasses.replace(first, name="lam", transformation=transformation)
        assert feature_signatures(view) == {}


# --------------------------------------------------------------------------------- by value

HOURS = 2000


def compare_by_value(
    tmp_path: Path, old: dict[str, Any], new: dict[str, Any], ids: list[int] | None = None
) -> list[tuple[str, str, str]]:
    """What SampleComparer finds between the new columns and the old ones, each a row per hour
    of 100 customers in turn (``ids`` otherwise)."""
    ids = ids if ids is not None else [h % 100 for h in range(HOURS)]
    ts = [datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=h) for h in range(HOURS)]

    def view(name: str, columns: dict[str, list[Any]]) -> FeatureView:
        path = tmp_path / f"{name}.parquet"
        pq.write_table(pa.table({"customer_id": ids, "ts": ts, **columns}), path)
        types = {int: ValueType.INT64, float: ValueType.FLOAT64}
        features = tuple(
            Feature(c, types[type(next(v for v in values if v is not None))]) for c, values in columns.items()
        )
        return FeatureView(
            name=name,
            entities=(CUSTOMER,),
            source=dataclasses.replace(TX, path=str(path)),
            ttl=timedelta(days=1),
            timestamp_field="ts",
            features=features,
        )

    before, after = view("before", old), view("after", new)
    con = duckdb.connect()
    try:
        con.register("__entities", pa.table({"customer_id": sorted(set(ids))}))
        comparer = SampleComparer(cast(FeatureStore, None))
        published = pq.read_table(tmp_path / "before.parquet")
        found = comparer._pairs(con, after, [tmp_path / "after.parquet"], before, published)
    finally:
        con.close()
    return [(f.feature, f.duplicate_of, f.kind) for f in found]


def spending() -> list[float]:
    draw = random.Random(3)
    return [draw.random() * 100 for _ in range(HOURS)]


def rare(seed: int, share: float) -> list[int]:
    draw = random.Random(seed)
    return [1 if draw.random() < share else 0 for _ in range(HOURS)]


def test_unrelated_rare_events_filtered_copies_and_few_entities_are_not_duplicates_by_value(tmp_path: Path) -> None:
    spend = spending()
    premium = [s if h % 10 == 0 else None for h, s in enumerate(spend)]  # 10 customers of 100
    old = {"fraud_flag": rare(1, 0.005), "overdraft_count": [2 * v for v in rare(4, 0.004)], "spend_30d": spend}
    assert compare_by_value(tmp_path, old, {"chargeback_flag": rare(2, 0.005), "premium_spend_30d": premium}) == []
    # The same values, but every row of one or two customers: equal, yet nothing to judge by.
    few = [h % 2 for h in range(HOURS)]
    assert compare_by_value(tmp_path, {"spend_30d": spend}, {"copy": spend}, ids=few) == []


def test_copies_by_value_are_still_found(tmp_path: Path) -> None:
    spend = spending()
    flags = rare(1, 0.05)
    found = compare_by_value(
        tmp_path,
        {"spend_30d": spend, "fraud_flag": flags},
        {"copy": list(spend), "cents": [100 * s for s in spend], "flag_copy": list(flags)},
    )
    assert found == [
        ("after:copy", "before:spend_30d", "equal"),
        ("after:cents", "before:spend_30d", "correlated"),
        ("after:flag_copy", "before:fraud_flag", "equal"),
    ]


# ------------------------------------------------------------------------ apply's warn mode


def test_a_failing_check_in_warn_mode_keeps_the_apply_and_a_broken_query_is_apply_s_own_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write_project(tmp_path)
    assert invoke(root, "apply")[0] == 0

    def fails(self: SampleComparer, views: object, registered: object) -> None:
        raise OSError("manifest unreadable at s3://user:hunter2secret@bucket/x")

    monkeypatch.setattr(SampleComparer, "__call__", fails)
    (root / "features.py").write_text(FEATURES + COPIES)
    result = CliRunner().invoke(cli, ["-C", str(root), "apply"])
    assert result.exit_code == 0, (result.stderr, result.exception)
    assert "created  feature view rewritten" in result.stdout
    assert "note: the duplicate check failed, nothing recorded: manifest unreadable" in result.stderr
    assert "hunter2secret" not in result.stderr
    with FeatureStore(root) as store:
        assert {v.name for v in store.registry.list_feature_views(store.project)} == {"running", "rewritten"}
        assert {p.source for p in store.registry.list_source_probes(store.project)} == {"payments"}

    monkeypatch.undo()
    broken = COPIES.replace("CAST(p.customer_id % 7 AS DOUBLE) AS bucket", "'abc AS bucket")
    (root / "features.py").write_text(FEATURES + broken.replace("rewritten", "broken"))
    for mode in ("error", "warn"):
        result = CliRunner().invoke(cli, ["-C", str(root), "apply", "--duplicates", mode])
        # Apply's own error (the CLI prints it), not sqlglot's TokenError.
        assert isinstance(result.exception, DefinitionError), (mode, result.exception)
        assert "Feature view 'broken'" in str(result.exception)


def test_the_check_stops_before_its_next_view_once_cancelled() -> None:
    cancel = threading.Event()
    cancel.set()
    comparer = SampleComparer(cast(FeatureStore, None), cancel=cancel)
    assert comparer([sql_view("a", "SELECT 1"), sql_view("b", "SELECT 1")], [sql_view("c", "SELECT 1")]) == []


# ---------------------------------------------------------------------------- what is recorded


def test_the_original_is_the_view_registered_first_and_stale_findings_go(tmp_path: Path) -> None:
    root = write_project(tmp_path)
    copy = FEATURES.split("running = FeatureView(")[1].replace('name="running"', 'name="running2"')
    copy = "running2 = FeatureView(" + copy.replace("payments-team", "other")

    def recorded() -> list[tuple[str, str]]:
        with FeatureStore(root) as store:
            return [(f.feature, f.duplicate_of) for f in store.find_recorded_duplicates()]

    assert invoke(root, "apply")[0] == 0
    (root / "features.py").write_text(FEATURES + copy)
    assert invoke(root, "apply")[0] == 0
    assert recorded() == [("running2:n", "running:n"), ("running2:total", "running:total")]
    # The original changes (its total another expression): running2 stays the copy of its n,
    # and the pair of totals, no longer exact, goes although running2 was not checked.
    changed = FEATURES.replace("timedelta(days=30)", "timedelta(days=31)").replace(
        "sum(amount) OVER", "max(amount) OVER"
    )
    (root / "features.py").write_text(changed + copy)
    code, _, err = invoke(root, "apply")
    assert code == 0 and "running2:n duplicates running:n (owner payments-team@example.com)" in err, err
    assert recorded() == [("running2:n", "running:n")]
    # The copy removed by an apply that does not check: its findings go too.
    (root / "features.py").write_text(changed)
    assert invoke(root, "apply", "--duplicates", "off")[0] == 0
    assert recorded() == []


# ------------------------------------------------------------------------------- bounded check


def test_the_check_by_value_reads_a_recent_window_and_stops_at_its_time_budget(tmp_path: Path) -> None:
    root = write_project(tmp_path)
    assert invoke(root, "apply")[0] == 0
    assert invoke(root, "run", "running", "--no-progress")[0] == 0
    copy = dataclasses.replace(
        next(v for v in load_views(root) if v.name == "running"), name="again", owner="someone@else"
    )
    with FeatureStore(root) as store:
        registered = store.registry.list_feature_views(store.project)
        # The last 3 days of the published rows (days 8 to 10), not the 10 days.
        found = SampleComparer(store, window=timedelta(days=3))([copy], registered)
        last_days = sum(1 for day in (8, 9, 10) for c in range(1, 41) if (c * day) % 3 != 0)
        assert {(f.feature, f.duplicate_of, f.kind) for f in found} == {
            ("again:total", "running:total", "equal"),
            ("again:n", "running:n", "equal"),
        }
        assert all(20 <= (f.rows or 0) <= last_days for f in found), found
        whole = SampleComparer(store)([copy], registered)  # 30 days: all 10
        assert next(f.rows or 0 for f in whole if f.feature == "again:total") > last_days
        # No time left: the view is said skipped, nothing computed.
        late = SampleComparer(store, budget_s=-1)
        assert late([copy], registered) == []
        assert late.failed == ["again: not compared, the check's time budget (-1 s) was spent"]
    # The budget from the command line.
    again = FEATURES.split("running = FeatureView(")[1].replace('name="running"', 'name="again"')
    (root / "features.py").write_text(FEATURES + "again = FeatureView(" + again)
    code, out, err = invoke(root, "duplicates", "again", "--check", "--budget", "0")
    assert code == 0 and "again: not compared, the check's time budget (0 s) was spent" in err, err
    assert out.splitlines() == [  # the exact check is not bounded
        "again:n duplicates running:n (owner payments-team@example.com): exact: same source and expression",
        "again:total duplicates running:total (owner payments-team@example.com): exact: same source and expression",
    ]


def load_views(root: Path) -> list[FeatureView]:
    from featurestore.config import ProjectConfig
    from featurestore.project_files import load_definitions
    from featurestore.validation import validate_project

    return list(validate_project(load_definitions(ProjectConfig.load(root))).feature_views)
