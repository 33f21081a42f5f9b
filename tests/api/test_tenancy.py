"""Projects kept apart: one registry and one datamart server holding two projects, ``shop`` and
``bank``, with the same view names. A token of one reads nothing of the other: catalog, lookups,
training sets, reference data, usage, audit and UI pages."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from datamart.app import create_app
from etl.local import LocalEngine
from featurestore.config import AuthConfig
from featurestore.store import FeatureStore
from featurestore.validation import validate_project
from tests.api.conftest import TestClient, build_project, definitions


def _second_project(shop: Path, root: Path) -> Path:
    """Project ``bank``: the shop's definitions and data, its own offline and online stores, and
    the shop's registry database."""
    shutil.copytree(shop / "data" / "raw", root / "data" / "raw")
    registry = (shop / "data" / "registry.db").resolve()
    (root / "featurestore.yaml").write_text(
        f"project: bank\nregistry: sqlite:///{registry}\n"
        "offline_store: {type: parquet, path: data/offline}\nonline_store: {type: sqlite, path: data/online.db}\n"
    )
    objects = definitions()
    with FeatureStore(root) as store:
        engine = LocalEngine(store)
        store.apply(objects, schema_resolver=engine.infer_schema)
        views = {v.name: v for v in validate_project(objects).feature_views}
        for name in views:
            engine.run(name, definitions=views, progress=False)
        store.register_model("bank_model", "churn")
    return root


@pytest.fixture(scope="module")
def two_projects(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, dict[str, str]]]:
    shop_dir = build_project(tmp_path_factory.mktemp("shop"))
    bank_dir = _second_project(shop_dir, tmp_path_factory.mktemp("bank"))
    with FeatureStore(shop_dir) as shop, FeatureStore(bank_dir) as bank:
        assert shop.registry.url == bank.registry.url  # one registry
        shop.register_model("shop_model", "churn")
        tokens = {
            "shop_scientist": shop.registry.create_token("shop", "shop-sci", "scientist", actor="t")[1],
            "shop_service": shop.registry.create_token("shop", "shop-svc", "service", actor="t", models=["shop_model"])[
                1
            ],
            "shop_admin": shop.registry.create_token("shop", "shop-admin", "admin", actor="t")[1],
            "bank_scientist": bank.registry.create_token("bank", "bank-sci", "scientist", actor="t")[1],
            "bank_admin": bank.registry.create_token("bank", "bank-admin", "admin", actor="t")[1],
        }
        app = create_app([shop, bank], auth=AuthConfig(enabled=True, cache_seconds=0))
        with TestClient(app) as client:
            yield client, tokens


def _h(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


SPINE = {"spine": {"customer_id": [1], "ts": ["2024-03-02T12:00:00Z"]}, "features": ["churn"], "timestamp_column": "ts"}


def test_each_token_reads_its_own_project_and_nothing_of_the_other(two_projects: Any) -> None:
    client, tokens = two_projects
    for mine, theirs in (("shop", "bank"), ("bank", "shop")):
        token = _h(tokens[f"{mine}_scientist"])
        assert client.get(f"/v1/projects/{mine}/feature-views", headers=token).status_code == 200
        assert client.post(f"/v1/projects/{mine}/training-set", json=SPINE, headers=token).status_code == 200
        for method, path, body in (
            ("GET", "/feature-views", None),
            ("GET", "/feature-views/customer_stats", None),
            ("GET", "/search?q=spend", None),
            ("GET", "/lineage", None),
            ("GET", "/models", None),
            ("GET", "/usage", None),
            ("GET", "/reference-data/customer_stats?as_of=2024-03-03T00:00:00Z", None),
            ("POST", "/training-set", SPINE),
        ):
            response = client.request(method, f"/v1/projects/{theirs}{path}", json=body, headers=token)
            assert response.status_code == 403, f"{mine} read {theirs}{path}: {response.text}"
            assert f"belongs to project '{mine}'" in response.json()["message"]


def test_the_default_routes_serve_the_first_project(two_projects: Any) -> None:
    client, tokens = two_projects
    assert client.get("/v1/feature-views", headers=_h(tokens["shop_scientist"])).status_code == 200
    assert client.get("/v1/feature-views", headers=_h(tokens["bank_scientist"])).status_code == 403


def test_lookups_and_models_stay_in_their_project(two_projects: Any) -> None:
    client, tokens = two_projects
    lookup = {"features": ["churn"], "entities": {"customer_id": [1]}}
    own = client.post("/v1/projects/shop/online-features", json=lookup, headers=_h(tokens["shop_service"]))
    assert own.status_code == 200
    other = client.post("/v1/projects/bank/online-features", json=lookup, headers=_h(tokens["shop_service"]))
    assert other.status_code == 403
    models = client.get("/v1/projects/bank/models", headers=_h(tokens["bank_scientist"])).json()
    assert [m["name"] for m in models] == ["bank_model"]  # not the shop's model, same registry


def test_admins_see_only_their_projects_tokens_and_audit(two_projects: Any) -> None:
    client, tokens = two_projects
    names = {t["name"] for t in client.get("/v1/projects/bank/tokens", headers=_h(tokens["bank_admin"])).json()}
    assert names == {"bank-sci", "bank-admin"}
    targets = {e["target"] for e in client.get("/v1/projects/bank/audit", headers=_h(tokens["bank_admin"])).json()}
    assert "model:bank_model" in targets and "model:shop_model" not in targets
    assert client.get("/v1/projects/bank/tokens", headers=_h(tokens["shop_admin"])).status_code == 403


def test_ui_pages_of_the_other_project_are_refused(two_projects: Any) -> None:
    client, tokens = two_projects
    client.cookies.clear()
    mine = client.get("/ui/projects/bank/views/customer_stats", headers=_h(tokens["bank_scientist"]))
    assert mine.status_code == 200 and "bank" in mine.text
    for path in ("/ui/projects/shop/", "/ui/projects/shop/views/customer_stats", "/ui/", "/ui/usage"):
        response = client.get(path, headers=_h(tokens["bank_scientist"]), follow_redirects=False)
        assert response.status_code == 403, path


def test_an_unknown_project_is_404_without_naming_the_others(two_projects: Any) -> None:
    client, tokens = two_projects
    response = client.get("/v1/projects/bnak/feature-views", headers=_h(tokens["bank_scientist"]))
    assert response.status_code == 404
    assert "bank" not in response.json()["message"].replace("bnak", "")


def test_each_project_has_its_own_metrics(two_projects: Any) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    client, tokens = two_projects

    def samples(project: str, path: str) -> list[Any]:
        response = client.get(path, headers=_h(tokens[f"{project}_admin"]))
        assert response.status_code == 200, response.text
        return [s for f in text_string_to_metric_families(response.text) for s in f.samples]

    def shop_lookups(path: str) -> float:
        return sum(
            s.value
            for s in samples("shop", path)
            if s.name == "featurestore_requests_total" and (s.labels["kind"], s.labels["status"]) == ("online", "2xx")
        )

    before = shop_lookups("/v1/metrics")
    lookup = {"features": ["churn"], "entities": {"customer_id": [1]}}
    for _ in range(3):
        assert client.post("/v1/online-features", json=lookup, headers=_h(tokens["shop_service"])).status_code == 200
    # The default path serves the first project, the shop; each project's path its own series.
    assert shop_lookups("/v1/metrics") == shop_lookups("/v1/projects/shop/metrics") == before + 3
    assert {s.labels["project"] for s in samples("shop", "/v1/projects/shop/metrics")} == {"shop"}
    bank = samples("bank", "/v1/projects/bank/metrics")
    assert {s.labels["project"] for s in bank} == {"bank"}  # one registry: only the bank's runs
    bank_lookups = [s for s in bank if s.name == "featurestore_requests_total" and s.labels["kind"] == "online"]
    assert all(s.labels["status"] == "4xx" for s in bank_lookups)  # the shop's service, refused
    assert {s.labels["view"] for s in bank if s.name == "featurestore_runs_total"} == {
        "customer_stats",
        "customer_profile",
        "customer_balance",
    }
    assert client.get("/v1/projects/shop/metrics", headers=_h(tokens["bank_admin"])).status_code == 403
