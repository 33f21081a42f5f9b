"""Access control of the datamart API: every route × every role, and the credentials that must fail.

The expected matrix below is written by hand from the roles of the README's Security section, not
read from the code; the test first checks that it names exactly the routes of the app's OpenAPI
document, so that a new route cannot ship without its line here.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from datamart.app import create_app
from featurestore.config import AuthConfig
from featurestore.model_serving import ModelServer
from featurestore.registry import ModelVersionRecord, api_tokens_t
from featurestore.store import FeatureStore
from tests.api.conftest import TestClient, build_project

ADMIN, ENGINEER, SCIENTIST, ANALYST, SERVICE = "admin", "engineer", "scientist", "analyst", "service"
EVERYONE = {ADMIN, ENGINEER, SCIENTIST, ANALYST, SERVICE}
CATALOG = {ADMIN, ENGINEER, SCIENTIST, ANALYST}
PUBLIC = "public"

EXPECTED: dict[tuple[str, str], set[str] | str] = {
    ("GET", "/v1/health"): PUBLIC,
    ("GET", "/v1/search"): CATALOG,
    ("GET", "/v1/feature-views"): CATALOG,
    ("GET", "/v1/feature-views/{name}"): CATALOG,
    ("GET", "/v1/feature-services"): CATALOG,
    ("GET", "/v1/feature-services/{name}"): CATALOG,
    ("GET", "/v1/lineage"): CATALOG,
    ("GET", "/v1/models"): CATALOG,
    ("GET", "/v1/usage"): CATALOG,
    ("POST", "/v1/models"): {ADMIN, ENGINEER},
    ("POST", "/v1/feature-views/{name}/consistency-checks"): {ADMIN, ENGINEER},
    ("POST", "/v1/feature-views/{name}/repairs"): {ADMIN, ENGINEER},
    ("GET", "/v1/feature-views/{name}/consistency-checks"): {ADMIN, ENGINEER, SCIENTIST},
    ("GET", "/v1/runs/{run_id}/quality"): {ADMIN, ENGINEER, SCIENTIST},
    ("GET", "/v1/feature-views/{name}/statistics"): {ADMIN, ENGINEER, SCIENTIST},
    ("GET", "/v1/skew-reports"): {ADMIN, ENGINEER, SCIENTIST},  # served vectors against offline, as statistics
    # Alert incidents: figures about runs and freshness, as the statistics (README, Alerts).
    ("GET", "/v1/alerts"): {ADMIN, ENGINEER, SCIENTIST},
    ("POST", "/v1/online-features"): {ADMIN, SERVICE},
    # Feast's feature-server protocol, the same lookup: at the root (where Feast's clients post) and under /v1.
    ("POST", "/get-online-features"): {ADMIN, SERVICE},
    ("POST", "/v1/get-online-features"): {ADMIN, SERVICE},
    ("POST", "/v1/push/{view}"): {ADMIN, ENGINEER, SERVICE},
    # The model server: services (their own models) and admins, as online features.
    ("POST", "/v1/models/{model}/predict"): {ADMIN, SERVICE},
    ("POST", "/v1/models/{model}/versions/{version}/predict"): {ADMIN, SERVICE},
    ("POST", "/v1/training-set"): {ADMIN, SCIENTIST},
    ("POST", "/v1/training-set/upload"): {ADMIN, SCIENTIST},
    ("GET", "/v1/reference-data/{view}"): {ADMIN, ENGINEER, SCIENTIST, ANALYST},
    # Whoever may pull training sets may save and read named datasets.
    ("POST", "/v1/training-datasets"): {ADMIN, SCIENTIST},
    ("GET", "/v1/training-datasets"): {ADMIN, SCIENTIST},
    ("GET", "/v1/training-datasets/{name}"): {ADMIN, SCIENTIST},
    ("GET", "/v1/training-datasets/{name}/rows"): {ADMIN, SCIENTIST},
    ("POST", "/v1/training-datasets/{name}/verify"): {ADMIN, SCIENTIST},
    ("GET", "/v1/tokens"): {ADMIN},
    ("POST", "/v1/tokens"): {ADMIN},
    ("DELETE", "/v1/tokens/{token}"): {ADMIN},
    ("GET", "/v1/audit"): {ADMIN},
    # Prometheus scrapes with a token of its own (README, Metrics): figures, not feature values.
    ("GET", "/v1/metrics"): {ADMIN, ENGINEER},
    # Feature requests: read with the catalog, filed and supported by its people, decided by engineers.
    ("GET", "/v1/requests"): CATALOG,
    ("POST", "/v1/requests"): CATALOG,
    ("GET", "/v1/requests/notifications"): CATALOG,
    ("GET", "/v1/requests/{request_id}"): CATALOG,
    ("POST", "/v1/requests/{request_id}/support"): CATALOG,
    ("POST", "/v1/requests/{request_id}/accept"): {ADMIN, ENGINEER},
    ("POST", "/v1/requests/{request_id}/decline"): {ADMIN, ENGINEER},
    ("POST", "/v1/requests/{request_id}/link"): {ADMIN, ENGINEER},
    # Source probes: a recorded one is read as the statistics are (its sample rows are data);
    # probing now and previewing a view compute, as runs do: the engineers'.
    ("GET", "/v1/sources/{name}/probe"): {ADMIN, ENGINEER, SCIENTIST},
    ("POST", "/v1/sources/{name}/probe"): {ADMIN, ENGINEER},
    ("POST", "/v1/feature-views/{name}/preview"): {ADMIN, ENGINEER},
    # Duplicate features: names, owners and a figure, read with the catalog.
    ("GET", "/v1/duplicates"): CATALOG,
}

# A server may hold several projects: every route answers under /v1/projects/{project} too.
EXPECTED.update({(m, p.replace("/v1", "/v1/projects/{project}", 1)): roles for (m, p), roles in list(EXPECTED.items())})

SPINE_CSV = b"customer_id,ts\n1,2024-03-02T12:00:00Z\n"


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, FeatureStore, dict[str, str]]]:
    """The shop project served with auth on, and one token per role and per failure kind."""
    root = build_project(tmp_path_factory.mktemp("secured"))
    with FeatureStore(root, definitions_ttl=0) as store:
        store.register_model("churn_model", "churn")
        store.create_training_dataset(
            "churn_set", {"customer_id": [1], "ts": ["2024-03-02T12:00:00Z"]}, "churn", timestamp_column="ts"
        )
        registry, project = store.registry, store.project
        tokens = {
            role: registry.create_token(
                project, f"{role}-1", role, actor="test", models=("churn_model",) if role == SERVICE else ()
            )[1]
            for role in sorted(EVERYONE)
        }
        expired_record, tokens["expired"] = registry.create_token(project, "expired-1", ADMIN, actor="test")
        with registry._engine.begin() as conn:
            conn.execute(
                api_tokens_t.update()
                .where(api_tokens_t.c.id == expired_record.id)
                .values(expires_at=datetime.now(UTC) - timedelta(minutes=1))
            )
        revoked_record, tokens["revoked"] = registry.create_token(project, "revoked-1", ADMIN, actor="test")
        registry.revoke_token(project, revoked_record.id, actor="test")
        tokens["other_project"] = registry.create_token("another", "admin-of-another", ADMIN, actor="test")[1]
        tokens["garbage"] = "fst_000000000000_" + "x" * 43
        app = create_app(store, auth=AuthConfig(enabled=True, cache_seconds=0))
        # A model version to predict with, whose "model" predicts 0 (no MLflow here).
        registry.record_model_version(
            ModelVersionRecord(
                project, "churn_model", 1, "0" * 32, "models:/churn_model/1", "churn", {}, (), datetime.now(UTC), "test"
            )
        )
        app.state.model_servers = {project: ModelServer(store, loader=lambda uri: _ZeroModel())}
        with TestClient(app) as client:
            yield client, store, tokens


def _route_set(client: TestClient) -> set[tuple[str, str]]:
    spec = client.get("/openapi.json").json()
    return {(method.upper(), path) for path, ops in spec["paths"].items() for method in ops}


def test_the_matrix_covers_every_route_of_the_openapi_document(secured: Any) -> None:
    client, _, _ = secured
    assert _route_set(client) == set(EXPECTED)


def _request(client: TestClient, store: FeatureStore, method: str, path: str, token: str | None) -> Any:
    run_id = store.registry.list_runs(store.project, limit=1)[0].id
    victim = ""
    if "{token}" in path:  # a token of its own to revoke
        victim = store.registry.create_token(store.project, f"victim-{next(_COUNTER)}", ANALYST, actor="test")[0].id
    if "{request_id}" in path:  # a request of its own, open, filed by someone else
        request = store.registry.file_request(
            store.project, title="r", entity="customer", description="d", reason="r", requester="filer"
        )
        path = path.replace("{request_id}", str(request.id))
    if "/sources/{name}/probe" in path:  # a recorded probe to read
        store.check_sources()
    url = (
        path.replace("{project}", store.project)
        .replace("/sources/{name}", "/sources/transactions")
        .replace("/feature-services/{name}", "/feature-services/churn")
        .replace("/training-datasets/{name}", "/training-datasets/churn_set")
        .replace("{name}", "customer_stats")
        .replace("{view}", "customer_stats")
        .replace("{run_id}", run_id)
        .replace("{token}", victim)
    )
    headers = {"X-Consumer": "forged-name"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    base = path.replace("/v1/projects/{project}", "/v1", 1)
    kwargs: dict[str, Any] = {}
    if base == "/v1/online-features":
        kwargs["json"] = {"features": ["churn"], "entities": {"customer_id": [1]}}
    elif base in ("/get-online-features", "/v1/get-online-features"):
        kwargs["json"] = {"feature_service": "churn", "entities": {"customer_id": [1]}}
    elif base.startswith("/v1/models/{model}/"):
        url = url.replace("{model}", "churn_model").replace("{version}", "1")
        kwargs["json"] = {"entities": {"customer_id": [1]}}
    elif base == "/v1/push/{view}":  # a customer no other test reads
        kwargs["json"] = {
            "rows": [{"customer_id": 99, "as_of": "2024-03-05T00:00:00Z", "spend_1d": 1.0, "txn_count_1d": 1}]
        }
    elif base == "/v1/training-set":
        kwargs["json"] = {
            "spine": {"customer_id": [1], "ts": ["2024-03-02T12:00:00Z"]},
            "features": ["churn"],
            "timestamp_column": "ts",
        }
    elif base == "/v1/training-set/upload":
        kwargs["files"] = {"spine": ("spine.csv", SPINE_CSV, "text/csv")}
        kwargs["data"] = {"features": "churn", "timestamp_column": "ts"}
    elif base == "/v1/training-datasets" and method == "POST":
        kwargs["files"] = {"spine": ("spine.csv", SPINE_CSV, "text/csv")}
        kwargs["data"] = {"name": f"set_{next(_COUNTER)}", "features": "churn", "timestamp_column": "ts"}
    elif base == "/v1/models" and method == "POST":
        kwargs["json"] = {"name": "churn_model", "feature_service": "churn"}
    elif base == "/v1/tokens" and method == "POST":
        kwargs["json"] = {"name": f"made-{next(_COUNTER)}", "role": "analyst"}
    elif base == "/v1/reference-data/{view}":
        kwargs["params"] = {"as_of": "2024-03-03T00:00:00Z"}
    elif base == "/v1/requests" and method == "POST":
        kwargs["json"] = {"title": "chargeback ratio", "entity": "customer", "description": "d", "reason": "r"}
    elif base.endswith("/link"):
        kwargs["json"] = {"view": "customer_stats", "features": ["spend_1d"]}
    elif base.endswith("/decline"):
        kwargs["json"] = {"reason": "not now"}
    elif base.startswith("/v1/requests/") and method == "POST":
        kwargs["json"] = {}
    elif base == "/v1/feature-views/{name}/preview":
        kwargs["json"] = {"sample": 2}
    return client.request(method, url, headers=headers, **kwargs)


_COUNTER = itertools.count()


class _ZeroModel:
    def predict(self, frame: Any) -> list[int]:
        return [0] * len(frame)


CREDENTIALS = [*sorted(EVERYONE), "none", "expired", "revoked", "garbage", "other_project"]


@pytest.mark.parametrize("credential", CREDENTIALS)
@pytest.mark.parametrize(("method", "path"), sorted(EXPECTED))
def test_role_route_matrix(secured: Any, method: str, path: str, credential: str) -> None:
    client, store, tokens = secured
    expected = EXPECTED[(method, path)]
    response = _request(client, store, method, path, None if credential == "none" else tokens[credential])
    if expected == PUBLIC:
        assert response.status_code == 200, response.text
        return
    if credential in expected:
        assert response.status_code < 300, f"{credential} must be allowed {method} {path}: {response.text}"
        return
    body = response.json()
    if isinstance(body, str):  # Feast's protocol: its error detail as a JSON string, naming our error too
        body = json.loads(body)
    if credential in ("none", "expired", "revoked", "garbage"):
        assert response.status_code == 401, response.text
        assert body["error"] == "AuthenticationError"
        assert response.headers.get("www-authenticate", "").startswith("Bearer")
        if credential in ("expired", "revoked"):
            assert credential in body["message"]
    else:
        assert response.status_code == 403, f"{credential} must be denied {method} {path}: {response.text}"
        assert body["error"] == "PermissionDeniedError"
        if credential == "other_project":
            assert "project 'another'" in body["message"]
        else:
            assert f"role {credential}" in body["message"]
    # A refusal never echoes the credential it refused.
    for secret in tokens.values():
        assert secret not in response.text


def test_a_service_predicts_only_with_its_own_models(secured: Any) -> None:
    client, store, tokens = secured
    store.registry.record_model_version(
        ModelVersionRecord(
            store.project, "other_model", 1, "0" * 32, "models:/other_model/1", "churn", {}, (), datetime.now(UTC), "t"
        )
    )
    headers = {"Authorization": f"Bearer {tokens[SERVICE]}"}
    body = {"entities": {"customer_id": [1]}}
    own = client.post("/v1/models/churn_model/predict", json=body, headers=headers)
    assert own.status_code == 200, own.text
    assert own.json()["predictions"] == [0]
    other = client.post("/v1/models/other_model/predict", json=body, headers=headers)
    assert other.status_code == 403
    assert "predicts only with its models (churn_model), not 'other_model'" in other.json()["message"]
    admin = client.post(
        "/v1/models/other_model/predict", json=body, headers={"Authorization": f"Bearer {tokens[ADMIN]}"}
    )
    assert admin.status_code == 200, admin.text


def test_usage_is_recorded_under_the_authenticated_identity_not_the_header(secured: Any) -> None:
    client, store, tokens = secured
    response = _request(client, store, "POST", "/v1/training-set", tokens[SCIENTIST])
    assert response.status_code == 200
    store.usage.flush()
    consumers = {r["consumer"] for r in store.registry.usage_summary(store.project)}
    assert "scientist-1" in consumers
    assert "forged-name" not in consumers


def test_a_service_reads_only_its_models_feature_services(secured: Any) -> None:
    client, _, tokens = secured
    headers = {"Authorization": f"Bearer {tokens[SERVICE]}"}
    ok = client.post(
        "/v1/online-features", json={"features": ["churn"], "entities": {"customer_id": [1]}}, headers=headers
    )
    assert ok.status_code == 200
    assert ok.json()["features"]["spend_1d"]["statuses"] == ["present"]
    for features in (["customer_stats:spend_1d"], ["customer_balance"], ["churn", "customer_profile:age"]):
        denied = client.post(
            "/v1/online-features", json={"features": features, "entities": {"customer_id": [1]}}, headers=headers
        )
        assert denied.status_code == 403, denied.text
        assert "churn" in denied.json()["message"]  # names what it may read


def test_tokens_over_the_api_secret_shown_once_revocation_at_once_and_audited(secured: Any) -> None:
    client, store, tokens = secured
    admin = {"Authorization": f"Bearer {tokens[ADMIN]}"}
    created = client.post("/v1/tokens", json={"name": "notebook-7", "role": "analyst"}, headers=admin)
    assert created.status_code == 201
    secret = created.json()["token"]
    assert re.fullmatch(r"fst_[0-9a-f]{12}_[A-Za-z0-9_-]{43}", secret)
    listed = client.get("/v1/tokens", headers=admin)
    assert secret not in listed.text and secret.split("_", 2)[2] not in listed.text
    mine = {"Authorization": f"Bearer {secret}"}
    assert client.get("/v1/feature-views", headers=mine).status_code == 200
    assert client.delete("/v1/tokens/notebook-7", headers=admin).json()["status"] == "revoked"
    assert client.get("/v1/feature-views", headers=mine).status_code == 401
    actions = [(e["action"], e["target"], e["actor"]) for e in client.get("/v1/audit", headers=admin).json()]
    assert ("token.create", "token:notebook-7", "admin-1") in actions
    assert ("token.revoke", "token:notebook-7", "admin-1") in actions
    # The registry keeps a hash, not the secret.
    with store.registry._engine.connect() as conn:
        stored = [tuple(r) for r in conn.execute(sa.select(api_tokens_t))]
    assert all(secret.split("_", 2)[2] not in str(row) for row in stored)


def test_models_registered_through_the_api_are_audited_under_the_token(secured: Any) -> None:
    client, store, tokens = secured
    engineer = {"Authorization": f"Bearer {tokens[ENGINEER]}"}
    response = client.post("/v1/models", json={"name": "churn_v2", "feature_service": "churn"}, headers=engineer)
    assert response.status_code == 201
    entries = store.registry.audit_log(store.project, action="model.register")
    assert (entries[0].actor, entries[0].target) == ("engineer-1", "model:churn_v2")


def test_without_auth_every_route_answers_as_before(project_dir: Path) -> None:
    with FeatureStore(project_dir) as store, TestClient(create_app(store)) as client:
        assert client.get("/v1/feature-views").status_code == 200
        assert client.get("/v1/tokens").status_code == 200  # the local admin


def test_an_unguarded_route_stops_the_app_from_starting(project_dir: Path) -> None:
    from datamart.routes import catalog

    @catalog.router.get("/unguarded")
    def unguarded() -> dict[str, str]:
        return {}

    try:
        with (
            FeatureStore(project_dir) as store,
            pytest.raises(RuntimeError, match="/v1/unguarded requires no permission"),
        ):
            create_app(store)
    finally:
        catalog.router.routes.pop()


def test_the_ui_session_cookie_is_no_credential_for_the_api(secured: Any) -> None:
    client, _, tokens = secured
    client.cookies.set("featurestore_session", tokens[ADMIN])
    try:
        response = client.post("/v1/models", json={"name": "forged_model", "feature_service": "churn"})
        assert response.status_code == 401
    finally:
        client.cookies.clear()


def test_serve_require_auth_turns_auth_on_for_a_project_that_leaves_it_off(
    project_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datamart.app import create_app_from_env

    monkeypatch.setenv("FEATURESTORE_PROJECT_DIR", str(project_dir))
    monkeypatch.setenv("FEATURESTORE_REQUIRE_AUTH", "1")  # what `featurestore serve --require-auth` sets
    with TestClient(create_app_from_env()) as client:
        assert client.get("/v1/feature-views").status_code == 401
        assert client.get("/v1/health").status_code == 200
    monkeypatch.delenv("FEATURESTORE_REQUIRE_AUTH")
    with TestClient(create_app_from_env()) as client:
        assert client.get("/v1/feature-views").status_code == 200


def test_a_service_pushes_only_into_the_views_its_models_read(secured: Any) -> None:
    client, _, tokens = secured
    headers = {"Authorization": f"Bearer {tokens[SERVICE]}"}
    row = {"customer_id": 99, "ts": "2024-03-05T00:00:00Z", "balance": 1.0, "overdrawn": False}
    denied = client.post("/v1/push/customer_balance", json={"rows": [row]}, headers=headers)
    assert denied.status_code == 403, denied.text
    assert "customer_stats" in denied.json()["message"] and "customer_balance" in denied.json()["message"]
    engineer = client.post(
        "/v1/push/customer_balance", json={"rows": [row]}, headers={"Authorization": f"Bearer {tokens[ENGINEER]}"}
    )
    assert engineer.status_code == 200, engineer.text
