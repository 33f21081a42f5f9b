"""Duplicate features (``featurestore/duplicates.py``, ``etl/duplicates.py``, ``featurestore
apply --duplicates``, ``featurestore duplicates``): a renamed copy of a demo feature is found, by
its definition and by its values, and an unrelated feature is not; the error mode applies
nothing; the findings reach the registry, the catalog search, the API and the UI."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import re
import textwrap
from pathlib import Path
from types import ModuleType

import pyarrow as pa
import pytest
from click.testing import CliRunner

from datamart.app import create_app as create_datamart_app
from featurestore.catalog import catalog_entries, search_catalog
from featurestore.cli import cli
from featurestore.definitions import Feature, FeatureView, FileSource
from featurestore.duplicates import exact_duplicates
from featurestore.store import FeatureStore
from featurestore.types import ValueType
from registry_ui import create_app as create_ui_app
from tests.api.conftest import TestClient  # type: ignore[attr-defined]  # imported there with Starlette's httpx warning silenced
from tests.unit.tiny_projects import UTC_US, new_project, utc, write_parquet

pytestmark = pytest.mark.slow  # whole projects applied and run: outside `make test-fast`

BANK = Path(__file__).resolve().parents[2] / "examples" / "bank"


def bank_features() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bank_features_for_duplicates", BANK / "features.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def demo_views(bank: ModuleType) -> list[FeatureView]:
    return [bank.customer_spend, bank.last_card_payment, bank.customer_balance, bank.customer_profile]


def test_a_renamed_copy_of_a_demo_feature_is_an_exact_duplicate_and_an_unrelated_feature_is_not() -> None:
    bank = bank_features()
    spend: FeatureView = bank.customer_spend
    # The same computation, written by someone else: another source name for the same file (its
    # path spelled differently), other table aliases, other case and spacing, operands swapped,
    # and the feature under another name.
    again = FileSource(name="Card_Txns", path="data/raw/../raw/transactions.parquet", timestamp_field="ts")
    sql = (
        textwrap.dedent(str(spend.transformation))
        .replace("card_transactions", "Card_Txns")
        .replace("grid g LEFT JOIN daily d", "grid AS gr LEFT JOIN daily AS dy")
        .replace("g.", "gr.")
        .replace("d.spend", "dy.spend")
        .replace("d.n", "dy.n")
        .replace(
            "round(sum(spend) OVER w30, 2) AS spend_30d", "ROUND( SUM(spend)   OVER w30 ,2)   AS monthly_card_spend"
        )
        .replace("CAST(day + INTERVAL 1 DAY AS TIMESTAMP) AS as_of", "CAST(INTERVAL 1 DAY + day AS TIMESTAMP) AS as_of")
        .replace("w30", "month_window")
    )
    assert "dy.n" in sql and "gr.day" in sql and "OVER month_window" in sql  # the copy really differs in text
    copy = dataclasses.replace(
        spend,
        name="card_spend_monthly",
        source=again,
        transformation=sql,
        features=(
            Feature("monthly_card_spend", ValueType.FLOAT64),
            # Unrelated: the same source and query, another window.
            Feature("spend_90d", ValueType.FLOAT64),
        ),
        owner="someone-else@bank.example",
    )
    found = exact_duplicates([copy], demo_views(bank), root=BANK)
    assert [(f.feature, f.duplicate_of, f.owner, f.kind) for f in found] == [
        ("card_spend_monthly:monthly_card_spend", "customer_spend:spend_30d", "risk-data@bank.example", "exact"),
        ("card_spend_monthly:spend_90d", "customer_spend:spend_90d", "risk-data@bank.example", "exact"),
    ]
    # Unrelated: another window over the same rows, or the same query over another file.
    other_window = dataclasses.replace(
        copy, transformation=sql.replace("ROWS 29 PRECEDING", "ROWS 27 PRECEDING"), features=copy.features[:1]
    )
    assert exact_duplicates([other_window], demo_views(bank), root=BANK) == []
    other_file = dataclasses.replace(copy, source=dataclasses.replace(again, path="data/raw/transactions_eu.parquet"))
    assert exact_duplicates([other_file], demo_views(bank), root=BANK) == []


def test_a_pandas_view_is_a_duplicate_only_of_the_same_function_over_the_same_source() -> None:
    bank = bank_features()

    def top_up(frame: object) -> object:
        return frame

    def top_up_copy(frame: object) -> object:
        return frame

    def other(frame: object) -> object:
        return None

    base = dataclasses.replace(bank.customer_balance, name="pandas_a", transformation=top_up)
    copy = dataclasses.replace(base, name="pandas_b", transformation=top_up_copy)
    assert [f.duplicate_of for f in exact_duplicates([copy], [base])] == ["pandas_a:balance", "pandas_a:overdrawn"]
    assert exact_duplicates([dataclasses.replace(copy, transformation=other)], [base]) == []


# ----------------------------------------------------------------------------- through apply

CUSTOMERS = 40

FEATURES = textwrap.dedent(
    '''
    from datetime import timedelta
    from featurestore import Entity, Feature, FeatureView, FileSource, Float64, Int64

    customer = Entity(name="customer", join_keys=("customer_id",), key_types=(Int64,))
    payments = FileSource(name="payments", path="data/payments", file_format="parquet", timestamp_field="ts")
    running = FeatureView(
        name="running", entities=(customer,), source=payments, ttl=timedelta(days=30),
        transformation="""
            SELECT customer_id, ts AS event_timestamp,
                   sum(amount) OVER (PARTITION BY customer_id ORDER BY ts) AS total,
                   count(*) OVER (PARTITION BY customer_id ORDER BY ts) AS n
            FROM payments
        """,
        features=(Feature("total", Float64), Feature("n", Int64)),
        owner="payments-team@example.com",
    )
    '''
)

# Other expressions with the same values (a running total as a correlated subquery's sum, and in
# cents), and one unrelated feature.
COPIES = textwrap.dedent(
    '''
    rewritten = FeatureView(
        name="rewritten", entities=(customer,), source=payments, ttl=timedelta(days=30),
        transformation="""
            SELECT p.customer_id, p.ts AS event_timestamp,
                   (SELECT sum(q.amount) FROM payments q WHERE q.customer_id = p.customer_id AND q.ts <= p.ts)
                       AS paid_so_far,
                   100 * sum(p.amount) OVER (PARTITION BY p.customer_id ORDER BY p.ts) AS paid_cents,
                   CAST(p.customer_id % 7 AS DOUBLE) AS bucket
            FROM payments p
        """,
        features=(Feature("paid_so_far", Float64), Feature("paid_cents", Float64), Feature("bucket", Float64)),
        owner="newcomer@example.com",
    )
    '''
)


ROWS = sum(1 for day in range(1, 11) for c in range(1, CUSTOMERS + 1) if (c * day) % 3 != 0)


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


def invoke(root: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["-C", str(root), *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = write_project(tmp_path_factory.mktemp("duplicates"))
    code, out, err = invoke(root, "apply")
    assert code == 0, out + err
    code, out, err = invoke(root, "run", "running", "--no-progress")
    assert code == 0, out + err
    return root


def test_apply_finds_features_equal_or_correlated_by_value_and_the_error_mode_applies_nothing(
    published: Path,
) -> None:
    root = published
    with FeatureStore(root) as store:
        before = (store.registry.list_feature_views(store.project), store.registry.audit_log(store.project))
    (root / "features.py").write_text(FEATURES + COPIES)
    code, out, err = invoke(root, "apply", "--duplicates", "error")
    assert code == 1
    assert "nothing applied: 2 new feature(s) duplicate existing ones" in err
    with FeatureStore(root) as store:
        after = (store.registry.list_feature_views(store.project), store.registry.audit_log(store.project))
        assert after == before
        assert store.find_recorded_duplicates() == []

    code, out, err = invoke(root, "apply")
    assert code == 0, out + err
    assert "created  feature view rewritten" in out
    warnings = [line for line in err.splitlines() if line.startswith("warning: duplicate feature")]
    assert [re.sub(r"[0-9,]+ rows", "N rows", w) for w in warnings] == [
        "warning: duplicate feature: rewritten:paid_cents duplicates running:total (owner payments-team@example.com): "
        "correlated (r=1.000, N rows, coverage 100%)",
        "warning: duplicate feature: rewritten:paid_so_far duplicates running:total (owner payments-team@example.com): "
        "equal on 100.0% of N rows, coverage 100%",
    ], err
    with FeatureStore(root) as store:
        found = {(f.feature, f.duplicate_of, f.kind) for f in store.find_recorded_duplicates()}
        assert found == {
            ("rewritten:paid_so_far", "running:total", "equal"),
            ("rewritten:paid_cents", "running:total", "correlated"),
        }
        # Correlated over every row (40 entities < 100); equal over those where either value is
        # not its feature's most common one.
        rows = {f.kind: f.rows or 0 for f in store.find_recorded_duplicates()}
        assert rows["correlated"] == ROWS and 20 <= rows["equal"] < ROWS
        # Nothing new: nothing checked again, the findings stay.
        code, out, err = invoke(root, "apply")
        assert code == 0 and "duplicate" not in err, err
        assert {(f.feature, f.duplicate_of, f.kind) for f in store.find_recorded_duplicates()} == found

        code, out, _ = invoke(root, "duplicates", "running", "--json")
        assert code == 0 and {(f["feature"], f["kind"]) for f in json.loads(out)} == {
            ("rewritten:paid_so_far", "equal"),
            ("rewritten:paid_cents", "correlated"),
        }

        # Checking the files now: not an exact duplicate (other expressions), equal and correlated by value.
        code, out, _ = invoke(root, "duplicates", "rewritten", "--check", "--no-values")
        assert (code, out) == (0, "no duplicate features of rewritten\n")
        # A lower threshold: the running count (r=0.76) too, never the unrelated bucket.
        code, out, _ = invoke(root, "duplicates", "rewritten", "--check", "--correlation", "0.7")
        assert code == 0 and [line.split(" (owner")[0] for line in out.splitlines()] == [
            "rewritten:paid_cents duplicates running:n",
            "rewritten:paid_cents duplicates running:total",
            "rewritten:paid_so_far duplicates running:n",
            "rewritten:paid_so_far duplicates running:total",
        ]

        # The catalog: a search for the original lists its duplicates right after it, marked.
        hits = search_catalog(catalog_entries(store.registry, store.project), "total")
        names = [h.entry.name for h in hits]
        at = names.index("running:total")
        assert names[at + 1 : at + 3] == ["rewritten:paid_so_far", "rewritten:paid_cents"]
        assert hits[at + 1].matched == ("duplicate",)
        assert "rewritten:bucket" not in names

        with TestClient(create_datamart_app(store)) as api:
            body = api.get("/v1/search", params={"q": "total"}).json()
            results = [r["name"] for r in body["results"]]
            assert results[results.index("running:total") + 1] == "rewritten:paid_so_far"
            first = body["results"][results.index("running:total")]
            assert set(first["duplicated_by"]) == {"rewritten:paid_so_far", "rewritten:paid_cents"}
            listed = api.get("/v1/duplicates", params={"view": "rewritten"})
            assert listed.status_code == 200, listed.text
            assert {(d["feature"], d["owner"]) for d in listed.json()} == {
                ("rewritten:paid_so_far", "payments-team@example.com"),
                ("rewritten:paid_cents", "payments-team@example.com"),
            }
            assert api.get("/v1/duplicates", params={"view": "rewriten"}).status_code == 404

        with TestClient(create_ui_app(store)) as ui:
            page = ui.get("/", params={"q": "paid_cents"}).text
            assert "duplicate of</span> <a" in page and "running:total" in page
            view_page = ui.get("/views/running").text
            assert view_page.count("duplicated by") == 2 and "rewritten:paid_so_far" in view_page

        # The copy removed: its findings go with it.
        (root / "features.py").write_text(FEATURES)
        code, out, err = invoke(root, "apply")
        assert code == 0, out + err
        assert store.find_recorded_duplicates() == []
