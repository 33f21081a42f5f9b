"""Feast's feature-server protocol on the datamart, proven with the real Feast SDK (0.67, its own venv).

Our driver project (``feast_project.py``, SQLite online) is served by the datamart under uvicorn
on a loopback port; a Feast repository whose ``feature_store.yaml`` says ``online_store: {type:
remote, path: http://127.0.0.1:PORT}`` calls ``get_online_features`` (a feature list, a feature
service, names that do not exist) through ``feast_scripts/feast_side.py`` in Feast's venv. What
Feast's client hands its caller (names, values, statuses, the exceptions it raises) must equal our
own lookup of the same entities. Raw requests in Feast's shape check what the SDK does not expose
(event timestamps) and the auth: Feast's client sends our API token as a bearer token when its
``auth`` section is ``{type: oidc, token_env_var: ...}``.

Feast's client runs once for the module (``feast_answers``: one interpreter, three jobs, against
two datamarts of the project: without auth and with it); the tests check its answers.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from feast_project import REFS, SERVICE, DriverData, build_ours, generate, run_feast

from datamart.app import create_app
from datamart.routes.feast import NO_TIME
from featurestore.config import AuthConfig
from featurestore.lookup import FeatureStatus, OnlineResponse
from featurestore.store import FeatureStore
from tests.api.conftest import serving

UNKNOWN_DRIVER = 999_999
FEAST_STATUS = {
    FeatureStatus.PRESENT: "PRESENT",
    FeatureStatus.NULL: "NULL_VALUE",
    FeatureStatus.MISSING: "NOT_FOUND",
    FeatureStatus.EXPIRED: "OUTSIDE_MAX_AGE",
    FeatureStatus.INVALID: "INVALID",
}
"""Written here from Feast's ServingService.proto, not read from the route."""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, DriverData]:
    base = tmp_path_factory.mktemp("feast-protocol")
    data = generate(base / "data", 40)
    return build_ours(base / "ours", data), data


@pytest.fixture(scope="module")
def store(project: tuple[Path, DriverData]) -> Iterator[FeatureStore]:
    with FeatureStore(project[0]) as s:
        yield s


@pytest.fixture(scope="module")
def base_url(store: FeatureStore) -> Iterator[str]:
    with serving(create_app(store)) as url:
        yield url


def _feast_names(response: OnlineResponse) -> list[str]:
    return [*response.keys, *response.columns]


def _expected(response: OnlineResponse) -> dict[str, Any]:
    """Our lookup as Feast's client must hand it over: values by name, statuses by Feast's names."""
    values: dict[str, list[Any]] = {**response.keys, **response.columns}
    statuses = {k: ["PRESENT"] * len(v) for k, v in response.keys.items()}
    statuses.update({name: [FEAST_STATUS[s] for s in ss] for name, ss in response.statuses.items()})
    return {"names": _feast_names(response), "values": values, "statuses": statuses}


@dataclass(frozen=True)
class FeastAnswers:
    """What Feast's client answered: the lookups without auth (by list, by service, an unknown view,
    an unknown feature), and the service with our token and without one under auth."""

    ids: list[int]
    lookups: list[dict[str, Any]]
    auth_ids: list[int]
    with_token: dict[str, Any]
    without: dict[str, Any]
    token: str
    expected_with_token: dict[str, Any]
    """Our own lookup of the service, as Feast's client must hand it over."""


@pytest.fixture(scope="module")
def feast_answers(
    feast_python: Path, project: tuple[Path, DriverData], base_url: str, tmp_path_factory: pytest.TempPathFactory
) -> FeastAnswers:
    """Feast's client, in one interpreter, on our datamart (``base_url``, no auth) and on one with
    auth on, where a service token of a model consuming ``driver_activity`` is the ``oidc`` token
    (``auth: {type: oidc, token_env_var: FEATURESTORE_TOKEN}``), then no token at all. Each job
    closes its store, so no HTTP session (nor its header) passes from one job to the next."""
    root, data = project
    folder = tmp_path_factory.mktemp("feast-client")
    ids = [*data.drivers, UNKNOWN_DRIVER]
    lookups: list[dict[str, Any]] = [
        {"features": REFS, "entities": {"driver_id": ids}},
        {"feature_service": SERVICE, "entities": {"driver_id": ids}, "full_feature_names": True},
        {"features": ["driver_hourly_stat:conv_rate"], "entities": {"driver_id": ids[:2]}},
        {"features": ["driver_hourly_stats:conv_rat"], "entities": {"driver_id": ids[:2]}},
    ]
    common = {"project": "drivers", "stats_path": str(data.stats_path), "profile_path": str(data.profile_path)}
    jobs: list[dict[str, Any]] = [
        {
            **common,
            "repo": str(folder / "feast_repo"),
            "online_store": {"type": "remote", "path": base_url},
            "online": lookups,
            "online_out": str(folder / "online.json"),
        }
    ]
    auth_ids = data.drivers[:5]
    with FeatureStore(root, definitions_ttl=0) as store:
        store.register_model("eta_model", SERVICE)
        _, token = store.registry.create_token(
            store.project, "eta-service", "service", actor="test", models=("eta_model",)
        )
        app = create_app(store, auth=AuthConfig(enabled=True, cache_seconds=0))
        with serving(app) as url:
            lookup = {"feature_service": SERVICE, "entities": {"driver_id": auth_ids}}
            for name, auth, env in (
                ("with_token", {"type": "oidc", "token_env_var": "FEATURESTORE_TOKEN"}, {"FEATURESTORE_TOKEN": token}),
                ("without", None, {}),
            ):
                jobs.append(
                    {
                        **common,
                        "repo": str(folder / name),
                        "online_store": {"type": "remote", "path": url},
                        "auth": auth,
                        "env": env,
                        "online": [lookup],
                        "online_out": str(folder / f"{name}.json"),
                    }
                )
            run_feast(feast_python, jobs, folder)
        expected = _expected(store.get_online_features(SERVICE, {"driver_id": auth_ids}))
    (with_token,) = json.loads((folder / "with_token.json").read_text())
    (without,) = json.loads((folder / "without.json").read_text())
    return FeastAnswers(
        ids=ids,
        lookups=json.loads((folder / "online.json").read_text()),
        auth_ids=auth_ids,
        with_token=with_token,
        without=without,
        token=token,
        expected_with_token=expected,
    )


def test_the_feast_sdk_reads_our_datamart_as_its_remote_online_store(
    feast_answers: FeastAnswers, store: FeatureStore
) -> None:
    ids = feast_answers.ids
    by_list, by_service, unknown_view, unknown_feature = feast_answers.lookups

    ours = store.get_online_features(REFS, {"driver_id": ids})
    assert by_list == _expected(ours)
    # Every status occurs, so the mapping is exercised: expired, missing, null and present.
    seen = {s for ss in by_list["statuses"].values() for s in ss}
    assert seen == {"PRESENT", "NOT_FOUND", "NULL_VALUE", "OUTSIDE_MAX_AGE"}, seen

    ours_service = store.get_online_features(SERVICE, {"driver_id": ids}, full_feature_names=True)
    assert by_service == _expected(ours_service)
    assert by_service["names"] == [
        "driver_id",
        "driver_hourly_stats__conv_rate",
        "driver_hourly_stats__avg_daily_trips",
        "driver_profile__home_city",
    ]

    # Feast's client raises the Feast exception our error detail names, with our message.
    assert unknown_view["error"]["module"] == "feast.errors"
    assert unknown_view["error"]["class"] == "FeatureViewNotFoundException"
    assert "Did you mean 'driver_hourly_stats'" in unknown_view["error"]["message"]
    assert unknown_feature["error"]["class"] == "FeastObjectNotFoundException"
    assert "Did you mean 'driver_hourly_stats:conv_rate'" in unknown_feature["error"]["message"]


def _feast_time(t: datetime | None) -> str:
    return NO_TIME if t is None else t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize("prefix", ["", "/v1", "/v1/projects/drivers"])
def test_raw_requests_in_feasts_shape_get_our_values_statuses_and_event_times(
    project: tuple[Path, DriverData], store: FeatureStore, base_url: str, prefix: str
) -> None:
    _, data = project
    ids = [*data.drivers[:10], UNKNOWN_DRIVER]
    body = {"features": REFS, "entities": {"driver_id": ids}, "include_feature_view_version_metadata": True}
    answer = httpx.post(f"{base_url}{prefix}/get-online-features", json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    got = answer.json()
    ours = store.get_online_features(REFS, {"driver_id": ids})
    assert got["metadata"]["feature_names"] == _feast_names(ours)
    assert got["metadata"]["feature_view_metadata"] == [{"name": "driver_hourly_stats"}, {"name": "driver_profile"}]
    results = dict(zip(got["metadata"]["feature_names"], got["results"], strict=True))
    assert results["driver_id"] == {
        "values": ids,
        "statuses": ["PRESENT"] * len(ids),
        "event_timestamps": [NO_TIME] * len(ids),
    }
    for ref in REFS:
        view, name = ref.split(":")
        assert results[name]["values"] == ours.columns[name]
        assert results[name]["statuses"] == [FEAST_STATUS[s] for s in ours.statuses[name]]
        # Whole seconds in this data: Feast's format has no fraction then.
        assert results[name]["event_timestamps"] == [_feast_time(t) for t in ours.event_timestamps[view]]
    assert results["conv_rate"]["event_timestamps"][-1] == NO_TIME  # the unknown driver


def test_errors_in_feasts_shape(base_url: str) -> None:
    url = f"{base_url}/get-online-features"
    unknown = httpx.post(url, json={"feature_service": "driver_activty", "entities": {"driver_id": [1]}})
    assert unknown.status_code == 404
    detail = json.loads(unknown.json())  # a JSON string holding the detail, as Feast's server answers
    assert detail["module"] == "feast.errors" and detail["class"] == "FeatureServiceNotFoundException"
    assert detail["suggestions"] == ["driver_activity"] and detail["error"] == "NotFoundError"
    no_ref = httpx.post(url, json={"features": ["driver_hourly_stats"], "entities": {"driver_id": [1]}})
    assert no_ref.status_code == 422
    assert "give 'feature_view:feature'" in json.loads(no_ref.json())["message"]
    # A body of the wrong shape: FastAPI's validation detail, as from Feast's server.
    shapeless = httpx.post(url, json={"features": ["driver_hourly_stats:conv_rate"]})
    assert shapeless.status_code == 422
    assert shapeless.json()["detail"][0]["loc"] == ["body", "entities"]
    not_json = httpx.post(url, content=b"{", headers={"content-type": "application/json"})
    assert not_json.status_code == 422 and not_json.json()["detail"][0]["type"] == "json_invalid"


def test_the_feast_sdk_passes_our_api_token_as_its_oidc_bearer_token(feast_answers: FeastAnswers) -> None:
    """Auth on: a service token of a model consuming ``driver_activity`` reads that service
    through Feast's client (``auth: {type: oidc, token_env_var: FEATURESTORE_TOKEN}``); without a
    token Feast's client raises FeastPermissionError with our message."""
    with_token, without = feast_answers.with_token, feast_answers.without
    assert with_token == feast_answers.expected_with_token
    assert without["error"]["class"] == "FeastPermissionError", without
    assert "token" in without["error"]["message"]
    assert feast_answers.token not in json.dumps(without)
