"""What the SDK and the CLI say about a mistake (issue 12, items 3 and 4): each message says what
happened, names the object and the argument or flag to use, and suggests among the right kind of
object; no raw exception type reaches the user. And one time rule on every surface: a time needs
an offset, a bare date means 00:00 UTC, a naive datetime is refused with one message.

The project is ``shop`` of ``test_cli`` (view ``customer_stats``, service ``churn``): customer 1
has 15.0 (2 transactions) as of 2024-03-02 and 7.0 (1) as of 2024-03-03; customer 2 100.0 as of
2024-03-02.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
from test_cli import applied_and_run, featurestore

from featurestore.errors import ConfigError, InvalidRequestError, NotFoundError
from featurestore.store import FeatureStore
from featurestore.times import naive_time_message

AT_03_03 = "2024-03-03T00:00:00Z"


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return applied_and_run(tmp_path_factory.mktemp("messages") / "shop")


@pytest.fixture(scope="module")
def store(shop: Path) -> Iterator[FeatureStore]:
    with FeatureStore(shop) as s:
        yield s


def _spine(**columns: list[Any]) -> dict[str, list[Any]]:
    return {"customer_id": [1], "event_timestamp": [AT_03_03], **columns}


# ---------------------------------------------------------------------- one time rule


def test_a_naive_time_gets_the_same_message_from_the_sdk_and_the_cli(store: FeatureStore, shop: Path) -> None:
    rest = naive_time_message("X", "2024-03-02T12:00:00").removeprefix("X")
    with pytest.raises(InvalidRequestError) as sdk:
        store.get_reference_data("customer_stats", datetime(2024, 3, 2, 12))
    assert str(sdk.value) == "The as_of_time argument" + rest
    cli = featurestore("-C", shop, "reference-data", "customer_stats", "--as-of", "2024-03-02T12:00:00")
    assert cli.code == 2  # a usage error, as any bad flag value
    assert "Error: --as-of" + rest in cli.err
    with pytest.raises(InvalidRequestError) as spine:
        store.get_training_set(_spine(event_timestamp=["2024-03-02T12:00:00"]), "churn")
    assert str(spine.value) == "The spine's timestamp column 'event_timestamp' (row 0)" + rest
    frame = pd.DataFrame({"customer_id": [1], "event_timestamp": [pd.Timestamp("2024-03-02 12:00")]})
    with pytest.raises(InvalidRequestError) as pandas_spine:
        store.get_training_set(frame, "churn")
    assert str(pandas_spine.value) == "The spine's timestamp column 'event_timestamp'" + rest
    with pytest.raises(InvalidRequestError) as lookup:
        store.get_online_features("churn", {"customer_id": [1]}, now=datetime(2024, 3, 2, 12))
    assert str(lookup.value) == "The now argument" + rest


@pytest.mark.parametrize("flag", ["--start", "--end", "--backfill-from"])
def test_run_refuses_a_naive_window_naming_the_flag(shop: Path, flag: str) -> None:
    result = featurestore("-C", shop, "run", "customer_stats", flag, "2024-03-02T12:00", "--no-progress")
    assert result.code == 2
    assert f"Error: {flag} has no time zone ('2024-03-02T12:00')" in result.err
    assert "'2024-03-02T12:00Z'" in result.err  # how to write it


def test_a_bare_date_is_that_day_from_midnight_utc_on_every_surface(store: FeatureStore, shop: Path) -> None:
    sdk = store.get_reference_data("customer_stats", date(2024, 3, 2))
    assert sdk.column("spend_1d").to_pylist() == [15.0, 100.0]  # the rows published at 03-02 00:00 UTC
    cli = featurestore("-C", shop, "reference-data", "customer_stats", "--as-of", "2024-03-02")
    assert cli.code == 0, cli.err
    assert [line.split()[-2:] for line in cli.out.splitlines()[1:]] == [["15.0", "2"], ["100.0", "1"]]
    spine = store.get_training_set({"customer_id": [1], "event_timestamp": ["2024-03-03"]}, "churn")
    assert spine.column("spend_1d").to_pylist() == [7.0]
    assert spine.column("event_timestamp").to_pylist() == [datetime(2024, 3, 3, tzinfo=UTC)]


def test_a_training_set_keeps_the_spines_time_zone(store: FeatureStore) -> None:
    # 00:30 in Paris on 03-03 is 23:30 UTC on 03-02: before the 03-03 row, so 15.0; 01:30 is 00:30 UTC: 7.0.
    when = pd.to_datetime(["2024-03-03 00:30", "2024-03-03 01:30"]).tz_localize("Europe/Paris")
    result = store.get_training_set(pd.DataFrame({"customer_id": [1, 1], "event_timestamp": when}), "churn")
    assert result.schema.field("event_timestamp").type.tz == "Europe/Paris"
    assert result.column("spend_1d").to_pylist() == [15.0, 7.0]
    assert result.to_pandas()["event_timestamp"].tolist() == list(when)


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["run", "customer_stats", "--start", "0001-01-01"], "--start"),
        (["validate", "customer_stats", "--end", "9999-12-31"], "--end"),
    ],
)
def test_a_window_beyond_the_years_a_run_can_span_names_the_flag_and_the_range(
    shop: Path, args: list[str], flag: str
) -> None:
    result = featurestore("-C", shop, *args)
    assert result.code == 2
    assert (
        f"Error: {flag} {args[-1]} is outside the range a run window may span, 1000-01-01 to 9000-01-01 UTC"
        in result.err
    )
    assert "out of range" not in result.err


# ---------------------------------------------------------------------- names of the right kind


def test_a_mistyped_feature_service_is_suggested_as_a_service(store: FeatureStore, shop: Path) -> None:
    expected = (
        "Feature view or feature service 'chrn' not found in project 'shop'. Did you mean feature service 'churn'?"
    )
    with pytest.raises(NotFoundError) as sdk:
        store.get_training_set(_spine(), "chrn")
    assert str(sdk.value) == expected
    with pytest.raises(NotFoundError) as online:
        store.get_online_features("chrn", {"customer_id": [1]})
    assert str(online.value) == expected
    cli = featurestore("-C", shop, "lookup", "-f", "chrn", "-k", "customer_id=1")
    assert cli.code == 1
    assert cli.err.strip() == f"error: {expected}"
    # A view's feature by name: only views can be meant.
    with pytest.raises(
        NotFoundError, match=r"^Feature view 'customer_stat' not found .* Did you mean 'customer_stats'\?$"
    ):
        store.get_training_set(_spine(), ["customer_stat:spend_1d"])


def test_a_feature_service_in_a_list_is_its_features(store: FeatureStore) -> None:
    result = store.get_training_set(_spine(), ["churn"])
    assert result.column_names[-2:] == ["spend_1d", "txn_count_1d"]


def test_a_missing_config_names_the_flag_that_exists(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as sdk:
        FeatureStore(tmp_path)
    message = str(sdk.value)
    assert "featurestore -C DIR" in message and "--project-dir" in message and "FeatureStore('DIR')" in message
    assert "--project DIR" not in message
    cli = featurestore("-C", tmp_path, "list")
    assert cli.code == 1
    assert "--project-dir" in cli.err and "--project DIR" not in cli.err


# ---------------------------------------------------------------------- arguments and flags


def test_a_missing_timestamp_column_names_the_argument_or_the_flag(
    store: FeatureStore, shop: Path, tmp_path: Path
) -> None:
    with pytest.raises(InvalidRequestError) as sdk:
        store.get_training_set({"customer_id": [1], "ts": [AT_03_03]}, "churn")
    assert str(sdk.value).endswith(
        "It has columns ['customer_id', 'ts']; name its timestamp column with timestamp_column=..."
    )
    spine = tmp_path / "spine.csv"
    spine.write_text(f"customer_id,ts\n1,{AT_03_03}\n")
    cli = featurestore("-C", shop, "training-set", "--spine", spine, "-f", "churn")
    assert cli.code == 1
    assert cli.err.strip().endswith("name its timestamp column with --timestamp-column")
    assert "timestamp_column=" not in cli.err
    fixed = featurestore("-C", shop, "training-set", "--spine", spine, "-f", "churn", "--timestamp-column", "ts")
    assert fixed.code == 0, fixed.err


def test_a_feature_named_like_a_spine_column_names_full_feature_names(
    store: FeatureStore, shop: Path, tmp_path: Path
) -> None:
    with pytest.raises(InvalidRequestError, match=r"full feature names \(full_feature_names=True\)"):
        store.get_training_set(_spine(spend_1d=[1.0]), "churn")
    spine = tmp_path / "spine.csv"
    spine.write_text(f"customer_id,event_timestamp,spend_1d\n1,{AT_03_03},1.0\n")
    cli = featurestore("-C", shop, "training-set", "--spine", spine, "-f", "churn")
    assert cli.code == 1
    assert "full feature names (--full-feature-names)" in cli.err
    fixed = featurestore("-C", shop, "training-set", "--spine", spine, "-f", "churn", "--full-feature-names")
    assert fixed.code == 0, fixed.err
    assert "customer_stats__spend_1d" in fixed.out


# ---------------------------------------------------------------------- spines


def test_an_empty_spine_says_it_has_no_rows(store: FeatureStore) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        store.get_training_set(pd.DataFrame({"customer_id": [], "event_timestamp": []}), "churn")
    assert str(caught.value) == (
        "The spine has no rows; give at least one row of entity keys and a timestamp ('event_timestamp')"
    )


def test_an_unreadable_spine_time_names_its_column_row_and_value(store: FeatureStore) -> None:
    frame = pd.DataFrame({"customer_id": [1, 2], "event_timestamp": [AT_03_03, "yesterday"]})
    with pytest.raises(InvalidRequestError) as caught:
        store.get_training_set(frame, "churn")
    assert str(caught.value) == (
        "The spine's timestamp column 'event_timestamp' (row 1) has 'yesterday', which is not an ISO 8601 date or "
        "time of years 0001 to 9999; give e.g. '2024-03-01' or '2024-03-01T12:00:00Z'"
    )


@pytest.mark.parametrize(
    ("spine", "got"),
    [([1, 2, 3], "list of int"), ("spine.csv", "str"), (42, "int"), (None, "NoneType")],
    ids=["list", "str", "int", "none"],
)
def test_a_spine_of_another_type_names_the_accepted_ones(store: FeatureStore, spine: Any, got: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        store.get_training_set(spine, "churn")
    assert str(caught.value) == (
        "The spine must be a pandas DataFrame, a pyarrow Table, a dict of columns like {'customer_id': [1, 2], "
        f"'event_timestamp': [...]}} or a list of row dicts; got {got}"
    )


@pytest.mark.parametrize(
    "spine",
    [
        {"customer_id": [1], "event_timestamp": [AT_03_03]},
        [{"customer_id": 1, "event_timestamp": datetime(2024, 3, 3, tzinfo=UTC)}],
        pa.record_batch({"customer_id": [1], "event_timestamp": [AT_03_03]}),
    ],
    ids=["dict of columns", "list of rows", "record batch"],
)
def test_a_spine_as_python_columns_or_rows(store: FeatureStore, spine: Any) -> None:
    assert store.get_training_set(spine, "churn").column("spend_1d").to_pylist() == [7.0]


@pytest.mark.parametrize(
    ("spine", "words"),
    [
        (_spine(customer_id=[True]), "The spine's key column 'customer_id' holds booleans"),
        ({"customer_id": [1, "2"], "event_timestamp": [AT_03_03] * 2}, "The spine column 'customer_id' mixes"),
        (_spine(customer_id=[2**64]), f"The spine column 'customer_id' has the integer {2**64}, beyond the 64-bit"),
        (_spine(event_timestamp=[None]), "The spine's timestamp column 'event_timestamp' holds only nulls"),
        ({"customer_id": [1], "event_timestamp": [AT_03_03, AT_03_03]}, "The spine's columns have different lengths"),
    ],
)
def test_spine_values_of_the_wrong_kind_are_named(store: FeatureStore, spine: Any, words: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        store.get_training_set(spine, "churn")
    assert str(caught.value).startswith(words)


def test_spine_columns_named_like_the_joins_own_are_kept(store: FeatureStore) -> None:
    spine = _spine(__row_id=[7], __spine_ts=["not a time"], __row_id_=[8])
    result = store.get_training_set(spine, "churn")
    assert result.to_pylist() == [
        {
            "customer_id": 1,
            "event_timestamp": datetime(2024, 3, 3, tzinfo=UTC),
            "__row_id": 7,
            "__spine_ts": "not a time",
            "__row_id_": 8,
            "spend_1d": 7.0,
            "txn_count_1d": 1,
        }
    ]


# ---------------------------------------------------------------------- online keys


@pytest.mark.parametrize(
    ("keys", "words"),
    [
        ([1, "2"], "gives it '2', of type str where the column's first value, 1, is of type int"),
        ([True], "gives it True, a boolean, not a key"),
        ([2**63], f"gives it {2**63}, beyond the 64-bit range"),
        ([2**64], f"gives it {2**64}, beyond the 64-bit range"),
        ([-(2**63) - 1], f"gives it {-(2**63) - 1}, beyond the 64-bit range"),
    ],
)
def test_online_keys_that_are_no_int64_are_refused_naming_key_entity_and_value(
    store: FeatureStore, keys: list[Any], words: str
) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        store.get_online_features("churn", {"customer_id": keys})
    message = str(caught.value)
    assert message.startswith("Entity key 'customer_id' of entity 'customer' (feature view 'customer_stats') is int64")
    assert words in message
    assert "e.g. {'customer_id': [1, 2]}" in message


def test_online_keys_of_one_type_still_work(store: FeatureStore) -> None:
    rows = store.get_online_features("churn", {"customer_id": [1, 2**63 - 1]}).to_rows()
    assert [r["spend_1d"]["status"] for r in rows] == ["present", "missing"]
    assert store.get_online_features("churn", {"customer_id": ["1"]}).to_rows()[0]["spend_1d"]["value"] == 7.0


# ---------------------------------------------------------------------- run ids


def test_stats_takes_the_start_of_a_run_id(tmp_path: Path) -> None:
    shop = applied_and_run(tmp_path / "shop")
    with FeatureStore(shop) as store:
        (run,) = store.registry.list_runs("shop", "customer_stats")
        short = run.id[:8]  # as the registry UI shows it
        ok = featurestore("-C", shop, "stats", "customer_stats", "--run", short)
        assert ok.code == 0, ok.err
        assert f"customer_stats: run {run.id} of " in ok.out
        unknown = featurestore("-C", shop, "stats", "customer_stats", "--run", "zzzz")
        assert unknown.code == 1
        assert unknown.err.strip() == (
            "error: Run 'zzzz' not found in project 'shop'. No run of feature view 'customer_stats' has an id "
            "starting 'zzzz'."
        )
        # More runs until two ids share their first character: that character names no one run.
        ids = [run.id]
        for _ in itertools.count():
            ids.append(
                store.registry.start_run("shop", "customer_stats", engine="local", window_start=None, window_end=None)
            )
            shared = [i for i in ids if i[0] == ids[-1][0]]
            if len(shared) > 1:
                break
        prefix = shared[0][0]
        ambiguous = featurestore("-C", shop, "stats", "customer_stats", "--run", prefix)
        assert ambiguous.code == 1
        assert f"Several runs of feature view 'customer_stats' have ids starting '{prefix}' (" in ambiguous.err
        assert "give more of the id" in ambiguous.err
        assert "Traceback" not in ambiguous.err


@pytest.mark.parametrize(
    ("name", "content", "words"),
    [
        ("ragged.csv", f"customer_id,event_timestamp\n1,{AT_03_03},5\n", "cannot be read as CSV (CSV parse error"),
        ("empty.csv", "", "cannot be read as CSV (Empty CSV file)"),
        ("spine.parquet", "PAR1 not parquet", "cannot be read as Parquet"),
    ],
)
def test_an_unreadable_spine_file_is_a_usage_error_naming_it(
    shop: Path, tmp_path: Path, name: str, content: str, words: str
) -> None:
    spine = tmp_path / name
    spine.write_text(content)
    result = featurestore("-C", shop, "training-set", "--spine", spine, "-f", "churn")
    assert result.code == 2
    assert f"Invalid value for --spine: '{spine}' {words}" in result.err
    assert "Traceback" not in result.err


def test_an_unwritable_out_file_is_a_usage_error_naming_it(shop: Path, tmp_path: Path) -> None:
    spine = tmp_path / "spine.csv"
    spine.write_text(f"customer_id,event_timestamp\n1,{AT_03_03}\n")
    out = tmp_path / "missing" / "out.csv"
    result = featurestore("-C", shop, "training-set", "--spine", spine, "-f", "churn", "--out", out)
    assert result.code == 2
    assert f"Invalid value for --out: cannot write '{out}'" in result.err
