"""The ``featurestore`` command, through its real entry point :func:`featurestore.cli.main`.

The project ``shop`` (written by :func:`write_shop`) has one view, ``customer_stats``: each
customer's card spend per day, published at the next midnight (TTL 3650 days). From the
transactions in ``data/transactions.csv`` (2024, UTC):

* customer 1: 15.0 (2 transactions) as of 03-02, 7.0 (1) as of 03-03;
* customer 2: 100.0 (1) as of 03-02; customer 3: nothing.

Three rows, watermark 2024-03-03. Feature service ``churn``: both features of the view.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import click
import pyarrow.csv as pacsv
import pytest
from click.testing import CliRunner

from featurestore.cli import cli, main

FEATURES_PY = '''\
from datetime import timedelta

from featurestore import Entity, Feature, FeatureService, FeatureView, FileSource, Float64, Int64

customer = Entity(name="customer", join_keys=("customer_id",), key_types=(Int64,))
transactions = FileSource(name="transactions", path="data/transactions.csv", timestamp_field="ts")
customer_stats = FeatureView(
    name="customer_stats",
    entities=(customer,),
    source=transactions,
    timestamp_field="as_of",
    ttl=timedelta(days=3650),
    transformation="""
        SELECT customer_id, date_trunc('day', ts) + INTERVAL 1 DAY AS as_of,
               sum(amount) AS spend_1d, count(*) AS txn_count_1d
        FROM transactions GROUP BY ALL
    """,
    features=(
        Feature("spend_1d", Float64, description="Card spend of the previous day"),
        Feature("txn_count_1d", Int64, description="Card transactions of the previous day"),
    ),
    description="Daily card activity",
)
churn = FeatureService(name="churn", features=(customer_stats,))
'''

TRANSACTIONS_CSV = """\
customer_id,ts,amount
1,2024-03-01T10:00:00Z,10.0
1,2024-03-01T12:00:00Z,5.0
1,2024-03-02T09:00:00Z,7.0
2,2024-03-01T08:00:00Z,100.0
"""


@dataclass(frozen=True)
class Outcome:
    code: int
    out: str
    err: str


def featurestore(*args: str | Path) -> Outcome:
    """Run ``featurestore ARGS...`` in this process, through the console script's entry point."""
    out, err = io.StringIO(), io.StringIO()
    argv = sys.argv
    sys.argv = ["featurestore", *(str(a) for a in args)]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main()
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    finally:
        sys.argv = argv
    return Outcome(code, out.getvalue(), err.getvalue())


def write_shop(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "featurestore.yaml").write_text("project: shop\n")
    (root / "features.py").write_text(FEATURES_PY)
    (root / "data").mkdir()
    (root / "data" / "transactions.csv").write_text(TRANSACTIONS_CSV)
    return root


def applied_and_run(root: Path) -> Path:
    """The shop project, applied and run once with the CLI."""
    write_shop(root)
    applied = featurestore("-C", root, "apply")
    assert applied.code == 0, applied.err
    assert "created  feature view customer_stats (version 1)" in applied.out
    ran = featurestore("-C", root, "run", "--all", "--no-progress")
    assert ran.code == 0, ran.err
    assert (
        "customer_stats: 3 rows offline, 2 online (replacing 0 rows; 0 entities removed online), "
        "watermark 2024-03-03 00:00:00+00:00"
    ) in ran.out
    return root


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shop project, applied and run once, shared by the tests that only read it."""
    return applied_and_run(tmp_path_factory.mktemp("cli") / "shop")


@pytest.fixture
def own_shop(tmp_path: Path) -> Path:
    """The shop project, applied and run once, for a test that changes it."""
    return applied_and_run(tmp_path / "shop")


# ---------------------------------------------------------------------- help and imports


@pytest.mark.parametrize("command", [None, *sorted(cli.commands)])
def test_every_command_has_help(command: str | None) -> None:
    args = ["--help"] if command is None else [command, "--help"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Usage: ")
    if command is not None:
        assert command in result.output.splitlines()[0]


def test_help_does_not_import_spark_cassandra_or_great_expectations() -> None:
    # A finder first on sys.meta_path sees every attempt to import the heavy packages, installed
    # or not (pyspark and great_expectations are optional extras), even one inside try/except.
    code = textwrap.dedent(
        """
        import sys

        HEAVY = {"pyspark", "cassandra", "great_expectations"}
        attempted = set()

        class Spy:
            @staticmethod
            def find_spec(name, path=None, target=None):
                if name.split(".")[0] in HEAVY:
                    attempted.add(name.split(".")[0])
                return None

        sys.meta_path.insert(0, Spy)
        from featurestore.cli import main

        sys.argv = ["featurestore", "--help"]
        try:
            main()
        except SystemExit:
            pass
        print("HEAVY", sorted(attempted | {m.split(".")[0] for m in sys.modules} & HEAVY))
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "Commands:" in proc.stdout  # the help was printed
    assert proc.stdout.splitlines()[-1] == "HEAVY []"


# ---------------------------------------------------------------------- init and apply


# test_init_scaffolds_a_project_that_apply_and_run_accept: in test_empty_selections.py, whose
# module fixture is that project (scaffolding and running it once costs ~4 s).


def test_init_refuses_to_overwrite_a_project(tmp_path: Path) -> None:
    root = write_shop(tmp_path / "shop")
    result = featurestore("init", root)
    assert result.code == 1
    assert "a project already exists here" in result.err
    assert (root / "features.py").read_text() == FEATURES_PY


def test_reapplying_changes_nothing(shop: Path) -> None:
    result = featurestore("-C", shop, "apply")
    assert result.code == 0, result.err
    assert "created" not in result.out and "updated" not in result.out
    assert "4 unchanged" in result.out  # entity, source, service and view


def test_apply_of_broken_definitions_names_every_problem(tmp_path: Path) -> None:
    root = write_shop(tmp_path / "shop")
    broken = FEATURES_PY.replace("timedelta(days=3650)", "timedelta(0)").replace(
        '"spend_1d", Float64', '"spend", Float64'
    )
    (root / "features.py").write_text(broken)
    result = featurestore("-C", root, "apply")
    assert result.code == 1
    assert result.err.startswith("error: 2 problems in the definitions:")
    assert "Feature view 'customer_stats' has ttl 0:00:00, which must be positive" in result.err
    assert "Feature view 'customer_stats': feature 'spend' is not a column of the output. Did you mean" in result.err
    assert not (root / "data" / "offline").exists()


def test_apply_names_the_file_and_line_of_an_exception(tmp_path: Path) -> None:
    root = write_shop(tmp_path / "shop")
    (root / "features.py").write_text(FEATURES_PY + "oops = undefined_name\n")
    line = FEATURES_PY.count("\n") + 1
    result = featurestore("-C", root, "apply")
    assert result.code == 1
    assert f"features.py:{line}: NameError: name 'undefined_name' is not defined" in result.err


def test_apply_names_the_file_and_line_of_an_invalid_definition(tmp_path: Path) -> None:
    root = write_shop(tmp_path / "shop")
    (root / "features.py").write_text(FEATURES_PY.replace("ttl=timedelta(days=3650)", "ttl=3650"))
    line = FEATURES_PY.index("customer_stats = FeatureView(")
    line = FEATURES_PY[:line].count("\n") + 1  # the statement's first line
    result = featurestore("-C", root, "apply")
    assert result.code == 1
    assert result.err.strip() == (
        f"error: features.py:{line}: Feature view 'customer_stats' ttl must be a datetime.timedelta, got 3650"
    )


def test_a_folder_without_a_project_says_how_to_make_one(tmp_path: Path) -> None:
    result = featurestore("-C", tmp_path, "list")
    assert result.code == 1
    assert "featurestore.yaml" in result.err and "featurestore init" in result.err


# ---------------------------------------------------------------------- the catalog


def test_list(shop: Path) -> None:
    result = featurestore("-C", shop, "list")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0].startswith("customer_stats  [customer_id]  ttl=3650 days")
    assert lines[0].endswith("Daily card activity")
    assert lines[1].split() == ["spend_1d", "float64", "Card", "spend", "of", "the", "previous", "day"]
    assert lines[2].split()[:2] == ["txn_count_1d", "int64"]
    as_json = json.loads(featurestore("-C", shop, "list", "--json").out)
    assert [v["name"] for v in as_json] == ["customer_stats"]
    assert [f["name"] for f in as_json[0]["features"]] == ["spend_1d", "txn_count_1d"]


def test_describe(shop: Path) -> None:
    result = featurestore("-C", shop, "describe", "customer_stats")
    assert result.code == 0, result.err
    info = json.loads(result.out)
    assert info["version"] == 1
    assert [v["version"] for v in info["versions"]] == [1]
    assert info["watermark"] == "2024-03-03T00:00:00+00:00"
    assert [(r["status"], r["rows_offline"]) for r in info["runs"]] == [("succeeded", 3)]


def test_runs_lists_the_history(own_shop: Path) -> None:
    ran = featurestore("-C", own_shop, "run", "customer_stats", "--start", "2024-03-02", "--end", "2024-03-03")
    # The window holds both rows as of 03-02: both entities are derived online again (customer 1
    # keeps its newer 03-03 row, the latest offline).
    assert (
        "customer_stats: 2 rows offline, 2 online (replacing 2 rows; 0 entities removed online), "
        "watermark 2024-03-02 00:00:00+00:00"
    ) in ran.out
    result = featurestore("-C", own_shop, "runs")
    assert result.code == 0, result.err
    lines = [line for line in result.out.splitlines() if "customer_stats" in line]
    assert len(lines) == 2
    assert all("succeeded" in line for line in lines)
    assert "rows=2" in lines[0] and "rows=3" in lines[1]  # newest first


def test_a_failed_run_shows_its_error_in_runs(own_shop: Path) -> None:
    (own_shop / "data" / "transactions.csv").unlink()
    failed = featurestore("-C", own_shop, "run", "customer_stats", "--no-progress")
    assert failed.code == 1
    assert "Source 'transactions': no file matches" in failed.err
    history = featurestore("-C", own_shop, "runs", "customer_stats").out.splitlines()
    assert "failed" in history[0]
    assert "Source 'transactions': no file matches" in history[1]


# ---------------------------------------------------------------------- reads


def test_training_set_to_csv(shop: Path, tmp_path: Path) -> None:
    spine = tmp_path / "spine.csv"
    spine.write_text(
        "customer_id,ts,label\n"
        "1,2024-03-02T12:00:00Z,1\n"  # customer 1's row of 03-02: 15.0
        "1,2024-03-01T23:00:00Z,0\n"  # before any row: null
        "2,2024-03-05T00:00:00Z,1\n"  # customer 2's row of 03-02: 100.0
        "3,2024-03-05T00:00:00Z,0\n"  # no data: null
    )
    out = tmp_path / "train.csv"
    result = featurestore(
        "-C", shop, "training-set", "--spine", spine, "-f", "customer_stats:spend_1d",
        "--timestamp-column", "ts", "--out", out,
    )  # fmt: skip
    assert result.code == 0, result.err
    assert f"wrote 4 rows to {out}" in result.out
    table = pacsv.read_csv(out)
    assert table.column_names == ["customer_id", "ts", "label", "spend_1d"]
    assert table.column("spend_1d").to_pylist() == [15.0, None, 100.0, None]
    assert table.column("label").to_pylist() == [1, 0, 1, 0]


def test_training_set_of_a_service_printed(shop: Path, tmp_path: Path) -> None:
    spine = tmp_path / "spine.csv"
    spine.write_text("customer_id,event_timestamp\n1,2024-03-04T00:00:00Z\n")
    result = featurestore("-C", shop, "training-set", "--spine", spine, "-f", "churn")
    assert result.code == 0, result.err
    header, row = result.out.splitlines()
    assert header.split() == ["customer_id", "event_timestamp", "spend_1d", "txn_count_1d"]
    assert row.split()[-2:] == ["7.0", "1"]


def test_training_set_with_naive_times_names_the_column(shop: Path, tmp_path: Path) -> None:
    spine = tmp_path / "spine.csv"
    spine.write_text("customer_id,ts\n1,2024-03-02T12:00:00\n")
    result = featurestore("-C", shop, "training-set", "--spine", spine, "-f", "churn", "--timestamp-column", "ts")
    assert result.code == 1
    assert "timestamp column 'ts' has no time zone" in result.err


def test_lookup(shop: Path) -> None:
    result = featurestore("-C", shop, "lookup", "-f", "churn", "-k", "customer_id=1")
    assert result.code == 0, result.err
    assert json.loads(result.out) == [
        {
            "customer_id": 1,
            "spend_1d": {"value": 7.0, "status": "present"},
            "txn_count_1d": {"value": 1, "status": "present"},
        }
    ]
    missing = featurestore("-C", shop, "lookup", "-f", "customer_stats:spend_1d", "-k", "customer_id=3")
    assert json.loads(missing.out) == [{"customer_id": 3, "spend_1d": {"value": None, "status": "missing"}}]


def test_lookup_key_must_be_key_equals_value(shop: Path) -> None:
    result = featurestore("-C", shop, "lookup", "-f", "churn", "-k", "customer_id")
    assert result.code == click.BadParameter.exit_code
    assert "'customer_id' is not key=value" in result.err


def test_reference_data_to_csv(shop: Path, tmp_path: Path) -> None:
    out = tmp_path / "ref.csv"
    result = featurestore("-C", shop, "reference-data", "customer_stats", "--as-of", "2024-03-02T12:00Z", "--out", out)
    assert result.code == 0, result.err
    table = pacsv.read_csv(out)
    assert table.column("customer_id").to_pylist() == [1, 2]
    assert table.column("spend_1d").to_pylist() == [15.0, 100.0]
    assert table.column("txn_count_1d").to_pylist() == [2, 1]


# ---------------------------------------------------------------------- mistakes


@pytest.mark.parametrize(
    "args",
    [
        ["describe", "customr_stats"],
        ["run", "customr_stats", "--no-progress"],
        ["reference-data", "customr_stats", "--as-of", "2024-03-02"],
        ["lookup", "-f", "customr_stats", "-k", "customer_id=1"],
    ],
    ids=lambda args: args[0],
)
def test_unknown_view_suggests_the_near_name(shop: Path, args: list[str]) -> None:
    result = featurestore("-C", shop, *args)
    assert result.code == 1
    if args[0] == "lookup":  # -f takes a feature view or a feature service: suggested among both
        assert result.err.strip() == (
            "error: Feature view or feature service 'customr_stats' not found in project 'shop'. "
            "Did you mean feature view 'customer_stats'?"
        )
        return
    assert result.err.strip() == (
        "error: Feature view 'customr_stats' not found in project 'shop'. Did you mean 'customer_stats'?"
    )


def test_a_view_defined_but_not_applied_asks_for_apply(tmp_path: Path) -> None:
    root = write_shop(tmp_path / "shop")
    result = featurestore("-C", root, "run", "customer_stats", "--no-progress")
    assert result.code == 1
    assert "Feature view 'customer_stats' is defined but not applied; run 'featurestore apply' first" in result.err


def test_bad_time_is_a_usage_error(shop: Path) -> None:
    result = featurestore("-C", shop, "run", "customer_stats", "--start", "last tuesday")
    assert result.code == 2
    assert "--start has 'last tuesday', which is not an ISO 8601 date or time" in result.err


def test_run_without_views_is_a_usage_error(shop: Path) -> None:
    result = featurestore("-C", shop, "run")
    assert result.code == 2
    assert "name the feature views to run, or pass --all" in result.err


# ---------------------------------------------------------------------- online follows offline


def test_a_voided_transaction_re_run_takes_online_back_and_the_check_agrees(own_shop: Path) -> None:
    # Customer 1's only transaction of 03-02 is voided: its 03-03 row leaves offline; online must
    # go back to its 03-02 row (15.0), not keep 7.0.
    (own_shop / "data" / "transactions.csv").write_text(TRANSACTIONS_CSV.replace("1,2024-03-02T09:00:00Z,7.0\n", ""))
    window = ("--start", "2024-03-03", "--end", "2024-03-04")
    blocked = featurestore("-C", own_shop, "run", "customer_stats", *window)
    assert blocked.code == 1  # the window's only row would go: confirmed with the flag
    assert "computed 0 row(s) where 1 are published" in blocked.err
    ran = featurestore("-C", own_shop, "run", "customer_stats", *window, "--allow-row-drop")
    assert ran.code == 0, ran.err
    assert "0 rows offline, 1 online (replacing 1 rows" in ran.out
    looked = featurestore("-C", own_shop, "lookup", "-f", "customer_stats:spend_1d", "-k", "customer_id=1")
    assert looked.code == 0, looked.err
    assert "15.0" in looked.out and "7.0" not in looked.out
    checked = featurestore("-C", own_shop, "check-consistency", "customer_stats", "--all")
    assert checked.code == 0, checked.out
    assert "2 match, 0 differ, 0 missing online, 0 extra online" in checked.out


def test_an_emptied_source_is_blocked_until_allowed(own_shop: Path) -> None:
    # A truncated export: only customer 2's transaction is left.
    (own_shop / "data" / "transactions.csv").write_text("customer_id,ts,amount\n2,2024-03-01T08:00:00Z,100.0\n")
    offline = own_shop / "data" / "offline" / "customer_stats" / "_manifest.json"
    before = offline.read_text()
    blocked = featurestore("-C", own_shop, "run", "customer_stats")
    assert blocked.code == 1
    assert "computed 1 row(s) where 3 are published" in blocked.err
    assert "--allow-row-drop" in blocked.err
    assert offline.read_text() == before
    allowed = featurestore("-C", own_shop, "run", "customer_stats", "--allow-row-drop", "--no-progress")
    assert allowed.code == 0, allowed.err
    assert "1 rows offline, 1 online (replacing 3 rows; 1 entities removed online)" in allowed.out
    checked = featurestore("-C", own_shop, "check-consistency", "customer_stats", "--all")
    assert checked.code == 0, checked.out


def test_repair_completes_a_pending_update_and_check_consistency_repair_fixes_a_tampered_store(
    own_shop: Path,
) -> None:
    import sqlite3

    nothing = featurestore("-C", own_shop, "repair", "customer_stats")
    assert nothing.code == 0, nothing.err
    assert "nothing pending" in nothing.out
    with sqlite3.connect(own_shop / "data" / "online.db") as conn:
        conn.execute("DELETE FROM \"fv_customer_stats\" WHERE entity_key = '2'")
    failed = featurestore("-C", own_shop, "check-consistency", "customer_stats", "--all")
    assert failed.code == 2
    assert "1 missing online" in failed.out
    repaired = featurestore("-C", own_shop, "check-consistency", "customer_stats", "--all", "--repair")
    assert repaired.code == 0, repaired.out
    assert "repaired: 2 entities derived online from offline" in repaired.out
    assert repaired.out.rstrip().splitlines()[-1].endswith("2 match, 0 differ, 0 missing online, 0 extra online")


def test_backfill_from_and_start_together_is_a_usage_error(shop: Path) -> None:
    both = featurestore("-C", shop, "run", "customer_stats", "--start", "2024-03-01", "--backfill-from", "2024-03-01")
    assert both.code == 2
    assert "--backfill-from or --start" in both.err
