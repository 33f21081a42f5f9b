"""Named training datasets (:mod:`featurestore.training_datasets`): save one from an uploaded
spine, list them, read one's record, download its saved rows, verify it against today's data.

Whoever may pull training sets (``training-sets:read``) may save and read datasets; the record
names the caller (the token's identity) as who saved it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from datamart.limits import check_spine_rows
from datamart.routes import ERROR_RESPONSES, StoreDep, allow
from datamart.routes.reads import TABLE_RESPONSES, AcceptHeader, FormatQuery, _key_types, _refs, _table_response
from datamart.tables import MEDIA_TYPES, negotiate_format, prepare_spine, read_spine_file
from featurestore.auth import Identity, Permission
from featurestore.registry import TrainingDatasetRecord
from featurestore.training_datasets import read_file_bytes
from featurestore.types import ValueType

router = APIRouter(responses=ERROR_RESPONSES)
DatasetUser = Annotated[Identity, allow(Permission.TRAINING_SETS)]
ROWS_PATH = "/training-datasets/{name}/rows"


class DatasetFile(BaseModel):
    file: str = Field(description="Path under the offline store's root, named by the SHA-256 of its bytes.")
    sha256: str
    rows: int


class DatasetInputInfo(BaseModel):
    view: str
    file: str = Field(description="A published file it read, relative to the view's folder.")
    run_id: str = Field(description="The run (push, compaction) that published the file.")


class TrainingDatasetInfo(BaseModel):
    name: str
    project: str
    feature_service: str | None = Field(description="The feature service it was built for (null: feature references).")
    features: list[str] = Field(description="The view:feature references it was built from.")
    view_versions: dict[str, int] = Field(description="Each feature view's version when it was saved.")
    timestamp_column: str
    full_feature_names: bool
    spine: DatasetFile
    rows: DatasetFile
    columns: list[str]
    watermarks: dict[str, datetime | None] = Field(description="Each view's newest published event time then.")
    inputs: list[DatasetInputInfo]
    run_ids: list[str] = Field(description="The runs whose published files it read.")
    description: str
    created_at: datetime
    created_by: str
    rows_url: str = Field(
        description="Where to download the saved rows (?format=parquet gives the saved file's bytes)."
    )


class ReplacedRunsInfo(BaseModel):
    view: str
    runs_read: list[str]
    runs_replaced: list[str] = Field(description="Runs some of whose files it read have been replaced since.")
    files_replaced: list[str]
    runs_published_since: list[dict[str, Any]]
    version_then: int | None
    version_now: int | None


class VerificationInfo(BaseModel):
    name: str
    rows: int
    identical: bool = Field(description="A rebuild from today's offline state gives the saved rows, byte for byte.")
    rows_differing: int | None
    differing_by_column: dict[str, int]
    views: list[ReplacedRunsInfo]
    rebuilt_sha256: str | None
    saved_sha256: str
    problem: str | None
    summary: str


def _info(request: Request, record: TrainingDatasetRecord) -> TrainingDatasetInfo:
    data = record.to_dict()
    base = request.url.path.partition("/training-datasets")[0]  # /v1 or /v1/projects/{project}
    data["rows_url"] = base + ROWS_PATH.format(name=record.name)
    return TrainingDatasetInfo.model_validate(data)


@router.post(
    "/training-datasets",
    tags=["reads"],
    status_code=201,
    response_model=TrainingDatasetInfo,
    summary="Save a named training dataset from an uploaded spine (CSV or Parquet)",
)
def create_training_dataset(
    request: Request,
    store: StoreDep,
    who: DatasetUser,
    name: Annotated[str, Form(max_length=200, description="The dataset's name (immutable once saved).")],
    spine: Annotated[UploadFile, File(description="The spine: a .parquet or .csv file (with a header line).")],
    features: Annotated[
        list[str],
        Form(description="A feature service's name, or view:feature references (repeated or comma separated)."),
    ],
    timestamp_column: Annotated[str, Form(description="The spine's timestamp column.")] = "event_timestamp",
    full_feature_names: Annotated[bool, Form(description="Name features 'view__feature'.")] = False,
    description: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """Builds the training set of the spine and saves it: the spine and rows kept offline,
    content-hashed; the registry records what it read and that the caller saved it. Saving a
    name again answers 200 with the saved dataset when the rows built now are the same bytes,
    and 422 otherwise (names are immutable)."""
    refs = [f.strip() for item in features for f in item.split(",") if f.strip()]
    key_types = _key_types(store)
    text_keys = {k for k, t in key_types.items() if t is ValueType.STRING}
    table = read_spine_file(
        spine.file.read(), filename=spine.filename, content_type=spine.content_type, string_columns=text_keys
    )
    check_spine_rows(table, store.config.datamart.max_spine_rows, "uploaded spine")
    table = prepare_spine(table, timestamp_column, key_types, "uploaded spine")
    dataset = store.create_training_dataset(
        name,
        table,
        _refs(refs),
        timestamp_column=timestamp_column,
        full_feature_names=full_feature_names,
        description=description,
        actor=who.name,
    )
    info = _info(request, dataset.record)
    # Whether this call saved it, as the core decided under the registry's lock (a read before
    # the save would answer 201 to the loser of two concurrent saves of one name).
    return JSONResponse(info.model_dump(mode="json"), status_code=201 if dataset.created else 200)


@router.get(
    "/training-datasets",
    tags=["reads"],
    response_model=list[TrainingDatasetInfo],
    summary="The project's saved training datasets, newest first",
)
def list_training_datasets(request: Request, store: StoreDep, _who: DatasetUser) -> list[TrainingDatasetInfo]:
    return [_info(request, r) for r in store.list_training_datasets()]


@router.get(
    "/training-datasets/{name}",
    tags=["reads"],
    response_model=TrainingDatasetInfo,
    summary="A saved training dataset: what it read, who saved it, where its rows are",
)
def get_training_dataset(request: Request, name: str, store: StoreDep, _who: DatasetUser) -> TrainingDatasetInfo:
    """404 with the nearest names for an unknown one."""
    return _info(request, store.registry.get_training_dataset(store.project, name))


@router.get(
    ROWS_PATH,
    tags=["reads"],
    responses=TABLE_RESPONSES,
    summary="A saved training dataset's rows, as they were built",
)
def get_training_dataset_rows(
    name: str, store: StoreDep, _who: DatasetUser, format_: FormatQuery = None, accept: AcceptHeader = None
) -> Response:
    """Parquet: the saved file's bytes (checked against their SHA-256, sent in the ``X-Content-SHA256``
    header); JSON, CSV and the Arrow stream: the same rows converted."""
    record = store.registry.get_training_dataset(store.project, name)
    fmt = negotiate_format(format_, accept)
    if fmt == "parquet":
        data = read_file_bytes(store.offline_store, record, "rows")
        return Response(
            data,
            media_type=MEDIA_TYPES["parquet"],
            headers={
                "Content-Disposition": f'attachment; filename="{name}.parquet"',
                "X-Content-SHA256": record.rows_sha256,
            },
        )
    return _table_response(store.get_training_dataset(name).rows, fmt, name)


@router.post(
    "/training-datasets/{name}/verify",
    tags=["reads"],
    response_model=VerificationInfo,
    summary="Rebuild a saved dataset from today's offline state and compare",
)
async def verify_training_dataset(name: str, store: StoreDep, _who: DatasetUser) -> VerificationInfo:
    """Whether a rebuild today gives the same bytes; if not, how many rows differ and which runs
    replaced the files it read. The saved rows never change."""
    report = await anyio.to_thread.run_sync(store.verify_training_dataset, name)
    return VerificationInfo.model_validate({**report.to_dict(), "summary": report.summary()})
