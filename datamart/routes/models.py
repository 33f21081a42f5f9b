"""The model server: predictions of the models recorded in the registry, on features read online.

Routes of the datamart rather than a server of their own: a prediction reads the same online
store in the same process, and needs what the datamart already has (tokens and permissions,
the request metrics, OpenAPI, usage statistics). :class:`featurestore.model_serving.ModelServer`
does the work; one per project, made on the first prediction and kept for the app's life, so
each model version is loaded once per process.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Annotated, Any

import anyio.to_thread
import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client.core import CounterMetricFamily, Metric
from pydantic import BaseModel, ConfigDict, Field

from datamart.limits import check_lookup_entities
from datamart.metrics import TARGET_STATE, MeasuredRoute, measured
from datamart.payloads import EntityKey, FeatureValues
from datamart.routes import ERROR_RESPONSES, StoreDep, allow
from featurestore.auth import Identity, Permission, Role
from featurestore.errors import PermissionDeniedError
from featurestore.model_serving import ModelServer, Prediction
from featurestore.serving_log import REQUEST_ID, request_id_from
from featurestore.store import FeatureStore

router = APIRouter(responses=ERROR_RESPONSES, route_class=MeasuredRoute)
Predictor = Annotated[Identity, allow(Permission.PREDICT)]
_SERVERS_LOCK = threading.Lock()


class PredictRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"entities": {"customer_id": [1, 2, 3]}}]}
    )

    entities: dict[str, list[EntityKey]] = Field(
        description="Entity key columns, as for POST /v1/online-features: each join key's values, one per entity."
    )


class PredictResponse(BaseModel):
    model: str
    entities: dict[str, list[EntityKey]] = Field(description="The entity keys, as the feature service keys them.")
    predictions: list[Any] = Field(description="One prediction per entity (an object per entity for several outputs).")
    versions: list[int] = Field(
        description="The model version that predicted each entity: the one called, else the model's traffic split "
        "(sticky per entity), else its newest recorded version."
    )
    features: dict[str, FeatureValues] = Field(description="The feature values the model was given, with statuses.")


def server_of(request: Request, store: FeatureStore) -> ModelServer:
    """The project's model server, made on first use and kept on the app (its shadow counts
    then served on ``/v1/metrics``)."""
    servers: dict[str, ModelServer] | None = getattr(request.app.state, "model_servers", None)
    if servers is None or store.project not in servers:
        with _SERVERS_LOCK:
            servers = getattr(request.app.state, "model_servers", None)
            if servers is None:
                servers = request.app.state.model_servers = {}
            if store.project not in servers:
                server = servers[store.project] = ModelServer(store)
                metrics = request.app.state.metrics.get(store.project)
                if metrics is not None:
                    metrics.registry.register(ShadowCollector(server))
    return servers[store.project]


class ShadowCollector:
    """Prometheus counters of a model server's shadow versions in this process: predictions
    (entities), of which equal to the served prediction, failed requests, and seconds spent;
    labelled by project, model and shadow version."""

    def __init__(self, server: ModelServer) -> None:
        self._server = server

    def describe(self) -> Iterator[Metric]:
        yield from self._families()

    def collect(self) -> Iterator[Metric]:
        families = self._families()
        project = self._server.store.project
        for (model, version), stats in sorted(self._server.shadow_stats().items()):
            labels = [project, model, str(version)]
            for family, value in zip(
                families, (stats.predictions, stats.agreed, stats.failures, stats.seconds), strict=True
            ):
                family.add_metric(labels, value)
        yield from families

    @staticmethod
    def _families() -> list[CounterMetricFamily]:
        labels = ["project", "model", "version"]
        return [
            CounterMetricFamily(
                "featurestore_shadow_predictions", "Predictions a shadow model version made.", labels=labels
            ),
            CounterMetricFamily(
                "featurestore_shadow_agreed", "Shadow predictions equal to the served one.", labels=labels
            ),
            CounterMetricFamily("featurestore_shadow_failures", "Requests whose shadow version failed.", labels=labels),
            CounterMetricFamily(
                "featurestore_shadow_seconds", "Time the shadow versions spent (lookup and predict).", labels=labels
            ),
        ]


async def _predict(
    request: Request, store: FeatureStore, who: Identity, model: str, body: PredictRequest, version: int | None
) -> Response:
    check_lookup_entities({"entities": body.entities}, store.config.datamart.max_lookup_entities)
    server = server_of(request, store)
    request_id = request_id_from(request.headers.get("x-request-id"))
    if request_id is not None:  # the prediction's thread copies this context: the log takes the client's id
        REQUEST_ID.set(request_id)

    def run() -> Prediction:
        if who.role is Role.SERVICE and model not in who.models:
            raise PermissionDeniedError(
                f"{who.describe()} predicts only with its models ({', '.join(who.models) or 'none'}), not "
                f"'{model}': call one of them, or have an admin give the token this model"
            )
        if server.versions(model):  # a known model's name only becomes a metrics label
            setattr(request.state, TARGET_STATE, model)
        return server.predict(model, body.entities, version=version, consumer=who.name)

    prediction = await anyio.to_thread.run_sync(run)
    headers = {"X-Request-ID": request_id} if request_id is not None else None
    return Response(
        orjson.dumps(prediction.to_dict(), option=orjson.OPT_SERIALIZE_NUMPY),
        media_type="application/json",
        headers=headers,
    )


@router.post(
    "/models/{model}/predict",
    tags=["models"],
    response_model=PredictResponse,
    summary="Predict with a model for entities, its features read online",
)
@measured("predict")
async def predict(model: str, body: PredictRequest, request: Request, store: StoreDep, who: Predictor) -> Response:
    """Each entity is predicted by the version the model's traffic gives it (a split by
    percentage, sticky per entity: a hash of the model and the entity's key), else by its newest
    recorded version. A shadow version, if set, predicts too; its predictions are logged, never
    returned. The model's feature service is read online, TTL honoured, and returned with each
    value's status. A ``service`` token predicts only with its own models. Unknown model: 404
    naming the models with recorded versions."""
    return await _predict(request, store, who, model, body, None)


@router.post(
    "/models/{model}/versions/{version}/predict",
    tags=["models"],
    response_model=PredictResponse,
    summary="Predict with one version of a model",
)
@measured("predict")
async def predict_version(
    model: str, version: int, body: PredictRequest, request: Request, store: StoreDep, who: Predictor
) -> Response:
    """As ``POST /v1/models/{model}/predict``, every entity by this version (no split, no
    shadow). Unknown version: 404 naming the model's versions."""
    return await _predict(request, store, who, model, body, version)
