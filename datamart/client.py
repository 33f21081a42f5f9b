"""A Python client of the datamart API, mirroring the SDK's reads.

```python
with DatamartClient("http://127.0.0.1:8000") as client:  # token from $FEATURESTORE_TOKEN
    train = client.get_training_set(spine, "credit_default", timestamp_column="applied_at")  # pyarrow.Table
    online = client.get_online_features("credit_default", {"customer_id": [1, 2]})
    online["features"]["spend_30d"]["values"], online["features"]["spend_30d"]["statuses"]
```

Tables keep their types exactly: spines go up as Parquet, training sets come down as an Arrow
IPC stream (reference data and saved datasets as Parquet). Errors are raised as the feature store's own exceptions (``NotFoundError`` with its
suggestions, ``InvalidRequestError``...) with the server's message; an unreachable API raises
``StoreUnavailableError``.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any, TypeAlias

import httpx
import pandas as pd
import pyarrow as pa
import pyarrow.ipc as paipc
import pyarrow.parquet as pq

from datamart.errors import error_from_body
from datamart.tables import ARROW_STREAM_MEDIA_TYPE, PARQUET_MEDIA_TYPE
from featurestore.errors import ConfigError, FeatureStoreError, StoreUnavailableError
from featurestore.times import aware_time

API_PREFIX = "/v1"

Features: TypeAlias = Sequence[str] | str
EntityRows: TypeAlias = Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Any]] | pd.DataFrame | pa.Table


TOKEN_ENV = "FEATURESTORE_TOKEN"
TOKEN_FILE_ENV = "FEATURESTORE_TOKEN_FILE"
DEFAULT_TOKEN_FILE = Path("~/.config/featurestore/token")


def find_token() -> str | None:
    """The API token of this user: ``$FEATURESTORE_TOKEN``, else the first line of the file
    ``$FEATURESTORE_TOKEN_FILE`` (default ``~/.config/featurestore/token``, when it exists)."""
    token = os.environ.get(TOKEN_ENV, "").strip()
    if token:
        return token
    named = os.environ.get(TOKEN_FILE_ENV)
    file = Path(named or DEFAULT_TOKEN_FILE).expanduser()
    try:
        line = file.read_text().strip().splitlines()
    except FileNotFoundError:
        if named:
            raise ConfigError(f"{TOKEN_FILE_ENV} names {file}, which does not exist") from None
        return None
    except OSError as err:
        raise ConfigError(f"cannot read the token file {file}: {err}") from err
    return line[0].strip() if line else None


class DatamartClient:
    """Synchronous client of one datamart API. ``token``: an API token (``fst_...``) or an OIDC
    bearer JWT, sent as ``Authorization: Bearer``; by default :func:`find_token` looks in the
    environment and the token file (none needed for a server without auth). The server records
    reads under the token's identity; ``consumer`` (the ``X-Consumer`` header) names the caller
    only on a server without auth."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        consumer: str = "anonymous",
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.consumer = consumer
        headers = {"X-Consumer": consumer, "User-Agent": "featurestore-datamart-client"}
        token = token or find_token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout, transport=transport)

    # ------------------------------------------------------------------ plumbing

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, API_PREFIX + path, **kwargs)
        except httpx.TransportError as err:
            raise StoreUnavailableError("Datamart API", self.base_url, f"{type(err).__name__}: {err}") from err
        if response.is_error:
            raise _error(response)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._request(method, path, **kwargs).json()

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> DatamartClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ catalog

    def health(self) -> dict[str, Any]:
        """``{"status": "ok", "project": ..., "version": ...}``."""
        result: dict[str, Any] = self._json("GET", "/health")
        return result

    def search(
        self, q: str = "", *, tag: str | None = None, owner: str | None = None, kind: str | None = None
    ) -> list[dict[str, Any]]:
        """Catalog entries matching ``q``, best first (see ``GET /v1/search``)."""
        params = {k: v for k, v in {"q": q, "tag": tag, "owner": owner, "kind": kind}.items() if v is not None}
        results: list[dict[str, Any]] = self._json("GET", "/search", params=params)["results"]
        return results

    def list_feature_views(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._json("GET", "/feature-views")
        return result

    def describe(self, view: str) -> dict[str, Any]:
        """A feature view's schema, source, transformation, versions, watermark and last runs."""
        result: dict[str, Any] = self._json("GET", f"/feature-views/{view}")
        return result

    def list_feature_services(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._json("GET", "/feature-services")
        return result

    def lineage(self) -> dict[str, Any]:
        result: dict[str, Any] = self._json("GET", "/lineage")
        return result

    def usage(self, *, consumer: str | None = None, view: str | None = None) -> list[dict[str, Any]]:
        params = {k: v for k, v in {"consumer": consumer, "view": view}.items() if v is not None}
        rows: list[dict[str, Any]] = self._json("GET", "/usage", params=params)["usage"]
        return rows

    def register_model(self, name: str, feature_service: str, description: str = "") -> dict[str, Any]:
        """Record a model as a consumer of a feature service (lineage service → model)."""
        body = {"name": name, "feature_service": feature_service, "description": description}
        result: dict[str, Any] = self._json("POST", "/models", json=body)
        return result

    # ------------------------------------------------------------------ administration (role admin)

    def create_token(
        self, name: str, role: str, *, models: Sequence[str] = (), expires_in_days: float | None = None
    ) -> dict[str, Any]:
        """Create an API token; the result's ``token`` is its secret, returned this once."""
        body = {"name": name, "role": role, "models": list(models), "expires_in_days": expires_in_days}
        result: dict[str, Any] = self._json("POST", "/tokens", json=body)
        return result

    def list_tokens(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._json("GET", "/tokens")
        return result

    def revoke_token(self, token: str) -> dict[str, Any]:
        """Revoke a token by id, or by the name of an active token."""
        result: dict[str, Any] = self._json("DELETE", f"/tokens/{token}")
        return result

    def audit_log(
        self, *, limit: int = 100, action: str | None = None, actor: str | None = None
    ) -> list[dict[str, Any]]:
        params = {k: v for k, v in {"limit": limit, "action": action, "actor": actor}.items() if v is not None}
        result: list[dict[str, Any]] = self._json("GET", "/audit", params=params)
        return result

    def check_consistency(self, view: str, *, sample: int | None = 1000, seed: int | None = None) -> dict[str, Any]:
        """Compare the online store with the offline store for ``sample`` random entities of a
        view (every entity when None); the report is recorded in the registry too."""
        params: dict[str, Any] = {} if seed is None else {"seed": seed}
        if sample is None:
            params["all"] = "true"
        else:
            params["sample"] = sample
        result: dict[str, Any] = self._json("POST", f"/feature-views/{view}/consistency-checks", params=params)
        return result

    # ------------------------------------------------------------------ reads

    def get_online_features(
        self, features: Features, entities: EntityRows, *, full_feature_names: bool = False
    ) -> dict[str, Any]:
        """The entities' latest values: ``{"entities": {...}, "features": {name: {"values": [...],
        "statuses": [...]}}, "event_timestamps": {view: [...]}}``."""
        body = {
            "features": _features(features),
            "entities": _columns(entities),
            "full_feature_names": full_feature_names,
        }
        result: dict[str, Any] = self._json("POST", "/online-features", json=body)
        return result

    def push(self, view: str, rows: Any) -> dict[str, Any]:
        """Push rows into ``view`` (``POST /v1/push/{view}``): a list of row dicts, a dict of
        columns, a DataFrame or an Arrow table, with the view's keys, event time (aware) and every
        feature. Answers ``{"push_id", "rows", "entities", "replaced", "watermark"}``; a refused
        batch raises :class:`PushRejectedError` with the failing ``rows``."""
        result: dict[str, Any] = self._json("POST", f"/push/{view}", json={"rows": _records(rows)})
        return result

    def get_training_set(
        self,
        spine: pd.DataFrame | pa.Table,
        features: Features,
        *,
        timestamp_column: str = "event_timestamp",
        full_feature_names: bool = False,
    ) -> pa.Table:
        """Point-in-time correct features for every spine row (the spine sent as Parquet, the
        result received as an Arrow IPC stream, or as Parquet from a server that has no Arrow
        answers: asked for by ``Accept``, read by the answer's ``Content-Type``)."""
        refs = _features(features)
        response = self._request(
            "POST",
            "/training-set/upload",
            headers={"Accept": TABLE_ACCEPT},
            data={
                "features": [refs] if isinstance(refs, str) else refs,
                "timestamp_column": timestamp_column,
                "full_feature_names": "true" if full_feature_names else "false",
            },
            files={"spine": ("spine.parquet", _spine_parquet(spine), PARQUET_MEDIA_TYPE)},
        )
        return _table_answer(response)

    # ------------------------------------------------------------------ training datasets

    def create_training_dataset(
        self,
        name: str,
        spine: pd.DataFrame | pa.Table,
        features: Features,
        *,
        timestamp_column: str = "event_timestamp",
        full_feature_names: bool = False,
        description: str = "",
    ) -> dict[str, Any]:
        """Save the training set of ``spine`` for ``features`` (a feature service's name, or
        references) as the dataset ``name`` (``POST /v1/training-datasets``); its record, as
        :meth:`describe_training_dataset` gives it. A name is immutable: saving it again with
        other rows raises :class:`InvalidRequestError`."""
        refs = _features(features)
        result: dict[str, Any] = self._json(
            "POST",
            "/training-datasets",
            data={
                "name": name,
                "features": [refs] if isinstance(refs, str) else refs,
                "timestamp_column": timestamp_column,
                "full_feature_names": "true" if full_feature_names else "false",
                "description": description,
            },
            files={"spine": ("spine.parquet", _spine_parquet(spine), PARQUET_MEDIA_TYPE)},
        )
        return result

    def list_training_datasets(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._json("GET", "/training-datasets")
        return result

    def describe_training_dataset(self, name: str) -> dict[str, Any]:
        """A dataset's record: service, features, views' versions and watermarks, the runs and
        files it read, its files' hashes, who saved it and when, and ``rows_url``."""
        result: dict[str, Any] = self._json("GET", f"/training-datasets/{name}")
        return result

    def get_training_dataset(self, name: str) -> pa.Table:
        """A dataset's saved rows, as they were built: the saved Parquet file, whose SHA-256 is
        checked against the one the server recorded."""
        response = self._request("GET", f"/training-datasets/{name}/rows", params={"format": "parquet"})
        expected = response.headers.get("x-content-sha256")
        if expected and hashlib.sha256(response.content).hexdigest() != expected:
            raise StoreUnavailableError(
                "Datamart API",
                self.base_url,
                f"the rows of training dataset '{name}' arrived damaged (SHA-256 mismatch)",
            )
        return pq.read_table(pa.BufferReader(response.content))

    def verify_training_dataset(self, name: str) -> dict[str, Any]:
        """Rebuild a dataset from today's offline state on the server and compare: ``identical``,
        ``rows_differing``, per view the runs that replaced what it read, and a ``summary``."""
        result: dict[str, Any] = self._json("POST", f"/training-datasets/{name}/verify")
        return result

    def get_reference_data(
        self,
        view: str,
        as_of: datetime | date | str,
        *,
        features: Sequence[str] | None = None,
        include_expired: bool = False,
    ) -> pa.Table:
        """Every entity's values of ``view`` as of a time: an aware datetime, or an ISO 8601 string
        with an offset or a date (that day from 00:00 UTC), as the API takes. A naive datetime is
        refused, as by the API: it is local to whoever made it."""
        if isinstance(as_of, datetime):  # a naive one is refused, as by the API; the offset is sent as given
            aware_time(as_of, "The as_of parameter")
        if isinstance(as_of, date):  # a date alone: that day from 00:00 UTC, as the API reads it
            as_of = as_of.isoformat()
        params: dict[str, Any] = {"as_of": as_of, "format": "parquet", "include_expired": include_expired}
        if features:
            params["features"] = list(features)
        response = self._request("GET", f"/reference-data/{view}", params=params)
        return pq.read_table(pa.BufferReader(response.content))


def _error(response: httpx.Response) -> FeatureStoreError:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or "message" not in body:
        text = response.text.strip()[:300] or response.reason_phrase
        body = {"message": f"{response.request.method} {response.request.url} answered {response.status_code}: {text}"}
    return error_from_body(response.status_code, body)


def _features(features: Features) -> list[str] | str:
    return features if isinstance(features, str) else list(features)


def _spine_parquet(spine: pd.DataFrame | pa.Table) -> bytes:
    """A spine as Parquet to upload, written plain (no dictionary, compression or statistics): the
    server reads it once, and compressing 100k rows took 61 ms to save 1 MB, which a 1 Gbit/s
    link carries in 8 ms."""
    table = spine if isinstance(spine, pa.Table) else pa.Table.from_pandas(spine, preserve_index=False)
    sink = io.BytesIO()
    pq.write_table(table, sink, use_dictionary=False, compression="none", write_statistics=False)
    return sink.getvalue()


def _plain(values: Any) -> list[Any]:
    # JSON needs Python scalars: numpy arrays and pandas series have tolist(), numpy scalars item().
    if hasattr(values, "tolist"):
        return list(values.tolist())
    return [v.item() if hasattr(v, "item") else v for v in values]


def _records(rows: Any) -> list[dict[str, Any]]:
    """Rows as JSON objects; times as ISO 8601 (a naive one is refused by the server)."""
    if isinstance(rows, pd.DataFrame):
        rows = pa.Table.from_pandas(rows, preserve_index=False)
    if isinstance(rows, pa.Table):
        rows = rows.to_pylist()
    elif isinstance(rows, Mapping):
        columns = _columns(rows)
        rows = [dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)]
    return [{str(k): _json_value(v) for k, v in row.items()} for row in rows]


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


def _columns(entities: EntityRows) -> dict[str, list[Any]]:
    if isinstance(entities, pa.Table):
        return entities.to_pydict()  # type: ignore[no-any-return]
    if isinstance(entities, pd.DataFrame):
        return {str(c): _plain(entities[c]) for c in entities.columns}
    if isinstance(entities, Mapping):
        return {str(k): _plain(v) for k, v in entities.items()}
    names = list(dict.fromkeys(k for row in entities for k in row))
    return {n: _plain([row.get(n) for row in entities]) for n in names}


TABLE_ACCEPT = f"{ARROW_STREAM_MEDIA_TYPE}, {PARQUET_MEDIA_TYPE}"
"""What the client asks tables as: an Arrow IPC stream, else Parquet (a server older than the
Arrow answers skips the type it does not know and answers Parquet)."""


def _table_answer(response: httpx.Response) -> pa.Table:
    """A table answer read by its ``Content-Type``: an Arrow IPC stream (its buffers used as they
    are: reading copies nothing) or Parquet."""
    media = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if media == ARROW_STREAM_MEDIA_TYPE:
        return paipc.open_stream(response.content).read_all()
    if media == PARQUET_MEDIA_TYPE:
        return pq.read_table(pa.BufferReader(response.content))
    raise FeatureStoreError(
        f"the Datamart API answered a table as {media or 'no content type'}, not Arrow or Parquet: "
        "is the base URL a Datamart API?"
    )
