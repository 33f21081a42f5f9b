"""Typed request and response bodies of the datamart API (they make the OpenAPI docs)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, field_validator

from featurestore.errors import InvalidRequestError
from featurestore.lookup import FeatureStatus
from featurestore.registry.definitions import MODEL_DESCRIPTION_MAX_LENGTH, check_model

FEATURES_DESCRIPTION = (
    "What to read: a list of 'view:feature' references, 'view' for all of a view's features, "
    "or the name of a feature service."
)
FeatureRefs = list[str] | str


class ErrorBody(BaseModel):
    """Every error answer. ``error`` is the feature store's exception class."""

    error: str = Field(description="Exception class, e.g. NotFoundError or InvalidRequestError.")
    message: str = Field(description="What went wrong, for which object, and how to fix it.")
    suggestions: list[str] | None = Field(default=None, description="Nearest existing names (not found errors).")
    problems: list[str] | None = Field(default=None, description="Every problem found (definition errors).")
    details: list[dict[str, Any]] | None = Field(default=None, description="Invalid fields of the request.")


# ---------------------------------------------------------------------- catalog


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    project: str
    version: str


class SearchResult(BaseModel):
    kind: Literal["feature_view", "feature", "feature_service", "entity"]
    name: str = Field(description="The object's name; features are named 'view:feature'.")
    view: str | None = Field(default=None, description="A feature's view.")
    dtype: str | None = Field(default=None, description="A feature's value type.")
    description: str
    owner: str
    tags: list[str]
    score: int = Field(description="3: exact name, 2: name contains the query, 1: description, tag or owner does.")
    matched: list[str] = Field(
        description="Fields that matched: name, description, tags, owner; 'duplicate' for a feature listed "
        "after the one it duplicates."
    )
    duplicate_of: list[str] = Field(default=[], description="Features this feature was found to compute again.")
    duplicated_by: list[str] = Field(default=[], description="Features found to compute again what this one does.")


class SearchResults(BaseModel):
    query: str
    count: int
    results: list[SearchResult]


class FeatureInfo(BaseModel):
    name: str
    dtype: str
    description: str
    owner: str
    tags: list[str]


class KeyInfo(BaseModel):
    name: str
    dtype: str
    entity: str


class SourceInfo(BaseModel):
    name: str
    kind: Literal["file", "sql"]
    path: str | None = None
    file_format: str | None = None
    query: str | None = None
    upstream: list[str] = Field(default_factory=list, description="Sources a SQL source reads.")
    timestamp_field: str | None = None
    description: str = ""
    owner: str = ""
    tags: list[str] = Field(default_factory=list)


class TransformationInfo(BaseModel):
    kind: Literal["sql", "pandas", "none"]
    text: str


class VersionInfo(BaseModel):
    version: int
    fingerprint: str
    changes: str
    created_at: datetime


class RunInfo(BaseModel):
    id: str
    view: str
    view_version: int
    engine: str
    status: str
    window_start: datetime | None
    window_end: datetime | None
    rows_computed: int | None
    rows_offline: int | None
    rows_online: int | None
    started_at: datetime
    finished_at: datetime | None
    duration_seconds: float | None
    timings: dict[str, float]
    watermark: datetime | None
    error: str | None
    entities_affected: int | None = Field(
        default=None, description="Entities whose online value the run re-derived from offline."
    )
    rows_online_removed: int | None = Field(default=None, description="Entities the run removed online.")


class ConsistencyCheck(BaseModel):
    model_config = ConfigDict(extra="ignore")

    checked_at: datetime
    watermark: datetime | None
    consistent: bool
    sampled: bool
    offline_entities: int
    checked: int
    matched: int
    mismatched: int
    missing: int
    extra: int
    by_feature: dict[str, int]


class ConsistencyReportPayload(ConsistencyCheck):
    """One check's full report: counts, per-feature mismatches and a few examples."""

    view: str
    examples: list[dict[str, Any]] = Field(
        description="A few differing entities: key, feature, online and offline value (or what is missing)."
    )


class RepairPayload(BaseModel):
    """What a repair did: the pending online updates it completed and the entities it derived."""

    view: str
    settled: list[str] = Field(description="Runs whose pending online update was completed.")
    entities: int = Field(description="Entities set online to their latest offline row.")
    removed: int = Field(description="Entities removed online because offline has no row of them.")


class FeatureViewSummary(BaseModel):
    name: str
    description: str
    owner: str
    tags: list[str]
    entities: list[str]
    keys: list[KeyInfo]
    timestamp_field: str
    features: list[FeatureInfo]
    ttl_seconds: float
    online: bool = Field(description="Whether the view is served online (false: offline only).")
    version: int = Field(description="Current version: it changes when what the view stores changes.")
    watermark: datetime | None = Field(description="Newest event time published by a successful run.")
    schedule: str | None = Field(
        default=None,
        description="When `featurestore scheduler` runs it: a cron expression (UTC) or 'every <interval>'.",
    )
    freshness_seconds: float | None = Field(default=None, description="Beyond this age of its newest data it is stale.")
    next_run_at: datetime | None = Field(default=None, description="The schedule's next due time (UTC).")


class FeatureViewDetail(FeatureViewSummary):
    source: SourceInfo
    transformation: TransformationInfo
    source_lookback_seconds: float | None
    versions: list[VersionInfo]
    runs: list[RunInfo] = Field(description="The last runs, newest first.")
    consistency_checks: list[ConsistencyCheck] = Field(description="The last online/offline checks, newest first.")


class FeatureServiceInfo(BaseModel):
    name: str
    description: str
    owner: str
    tags: list[str]
    features: list[str] = Field(description="The 'view:feature' references the service gives.")
    models: list[str] = Field(description="Models registered as consumers of the service.")


class LineageNode(BaseModel):
    kind: str
    name: str


class LineageEdge(BaseModel):
    src_kind: str
    src_name: str
    dst_kind: str
    dst_name: str


class Lineage(BaseModel):
    nodes: list[LineageNode]
    edges: list[LineageEdge]


class ModelRegistration(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"name": "credit_default_gbm", "feature_service": "credit_default", "description": "Default risk"}
            ]
        },
    )

    name: str = Field(
        min_length=1, max_length=200, description="Letters, digits and underscores, starting with a letter."
    )
    feature_service: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=MODEL_DESCRIPTION_MAX_LENGTH)

    @field_validator("name")
    @classmethod
    def _name_rule(cls, name: str) -> str:
        # The rule of every name in a project, as the registry checks it (one message).
        try:
            check_model(name)
        except InvalidRequestError as err:
            raise ValueError(str(err)) from err
        return name


class ModelInfo(BaseModel):
    name: str
    feature_service: str
    description: str


class UsageRow(BaseModel):
    view: str
    feature: str
    consumer: str
    kind: str = Field(description="online, training or reference.")
    reads: int
    rows: int
    last_read: datetime | None


class Usage(BaseModel):
    usage: list[UsageRow]


# ---------------------------------------------------------------------- reads

# Strict: JSON true is no customer 1, and 1.0 no key; int64 bounds: a bigger number is no key either.
EntityKey = Annotated[StrictInt, Field(ge=-(2**63), le=2**63 - 1)] | StrictStr


class OnlineFeaturesRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"features": "credit_default", "entities": {"customer_id": [1, 2, 3]}},
                {
                    "features": ["customer_spend:spend_30d", "customer_balance:balance"],
                    "entities": {"customer_id": [1, 2]},
                    "full_feature_names": True,
                },
            ]
        },
    )

    features: FeatureRefs = Field(description=FEATURES_DESCRIPTION)
    entities: dict[str, list[EntityKey]] = Field(
        description="Entity key columns: each join key's values, one per entity, all columns of the same length."
    )
    full_feature_names: bool = Field(default=False, description="Name features 'view__feature'.")

    @field_validator("entities")
    @classmethod
    def _one_type_per_key(cls, entities: dict[str, list[int | str]]) -> dict[str, list[int | str]]:
        for name, values in entities.items():
            if len({type(v) for v in values}) > 1:
                raise ValueError(
                    f"key column '{name}' mixes integers and strings ({values[:5]}); give every key of a column "
                    "as an integer, or every one as a string"
                )
        return entities


class FeatureValues(BaseModel):
    values: list[Any] = Field(description="One value per entity (null when missing, expired, invalid or null).")
    statuses: list[FeatureStatus] = Field(
        description="One status per entity: present, null, missing, expired, or invalid (the stored value does not "
        "fit the feature's type or cannot be read: withheld; re-run the view to rewrite it)."
    )


class OnlineFeatures(BaseModel):
    entities: dict[str, list[EntityKey]] = Field(description="The entity keys, as given.")
    features: dict[str, FeatureValues]
    event_timestamps: dict[str, list[datetime | None]] = Field(
        description="Per feature view, the event time of each entity's values (null when missing)."
    )


class TrainingSetRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "features": "credit_default",
                    "spine": {"customer_id": [1, 2], "applied_at": ["2024-03-01T12:00:00Z", "2024-03-02T08:30:00Z"]},
                    "timestamp_column": "applied_at",
                }
            ]
        },
    )

    features: FeatureRefs = Field(description=FEATURES_DESCRIPTION)
    spine: dict[str, list[Any]] | list[dict[str, Any]] = Field(
        description="Entity keys, a timestamp and any labels: as columns {name: [values]} or as rows. Timestamps "
        "are ISO 8601 with their offset (2024-03-01T12:00:00Z); one without is refused; a date is that day at 00:00 UTC."
    )
    timestamp_column: str = Field(default="event_timestamp", description="The spine's timestamp column.")
    full_feature_names: bool = Field(default=False, description="Name features 'view__feature'.")


class TableData(BaseModel):
    """A table as JSON: columns of values (times as ISO 8601 strings) and each column's Arrow type."""

    num_rows: int
    types: dict[str, str]
    columns: dict[str, list[Any]]


# ---------------------------------------------------------------------- quality of runs


class Histogram(BaseModel):
    edges: list[float] = Field(
        description="Bin edges: bin i holds edges[i] <= v < edges[i + 1] (the last bin its top edge too)."
    )
    counts: list[int]


class FeatureStatistics(BaseModel):
    """Statistics of one feature in the rows a run published."""

    model_config = ConfigDict(extra="ignore")

    dtype: str
    count: int = Field(description="Rows of the run, nulls included.")
    null_fraction: float | None
    distinct: int = Field(description="Distinct non-null values (approximate on the Spark engine).")
    min: float | str | None = Field(description="Numbers; timestamps as ISO 8601 text; none for strings.")
    max: float | str | None
    mean: float | None
    stddev: float | None = Field(description="Sample standard deviation (n - 1).")
    histogram: Histogram | None
    psi: float | None = Field(description="Population stability index against the previous successful run.")
    drift: bool | None = Field(description="Whether psi exceeds the project's quality.psi_threshold.")


class RunStatistics(BaseModel):
    run_id: str
    started_at: datetime
    rows: int | None = Field(description="Rows the run published.")
    statistics: dict[str, FeatureStatistics]


class ExpectationOutcome(BaseModel):
    model_config = ConfigDict(extra="ignore")

    expectation: str = Field(description="The expectation, in words.")
    kind: str
    severity: Literal["block", "warn"]
    spec: dict[str, Any]
    success: bool
    rows_checked: int
    failed_rows: int | None = Field(description="Rows failing a row-level expectation; null for a table-level one.")
    failed_fraction: float | None
    observed: Any = Field(description="What a table-level expectation found (a row count, the newest event time).")
    examples: list[dict[str, Any]] = Field(description="A few failing rows: keys, event time, checked columns.")
    error: str | None = Field(description="Why Great Expectations could not evaluate it (a failure).")


class Quarantine(BaseModel):
    rows: int
    path: str
    by_expectation: dict[str, int]


class ValidationReport(BaseModel):
    model_config = ConfigDict(extra="ignore")

    view: str
    status: Literal["passed", "warned", "quarantined", "blocked"]
    rows: int = Field(description="Rows the run computed.")
    engine: str
    checked_at: datetime
    reference_time: datetime = Field(description="Freshness was judged as of this time.")
    results: list[ExpectationOutcome]
    quarantine: Quarantine | None
    after_quarantine: list[ExpectationOutcome]


class RunQuality(BaseModel):
    run: RunInfo
    validation: ValidationReport | None = Field(description="Null when the run never reached the quality gate.")
    statistics: dict[str, FeatureStatistics] = Field(description="Empty when the run published nothing.")


class TokenRequest(BaseModel):
    """A token to create: its name, role, models (``service`` only) and lifetime."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"name": "fraud-scorer", "role": "service", "models": ["fraud_gbm"]}]},
    )

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@:-]*$")
    role: Literal["admin", "engineer", "scientist", "analyst", "service"]
    models: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(default_factory=list, max_length=100)
    expires_in_days: float | None = Field(default=None, gt=0, le=3650, description="Default: never expires.")


class TokenInfo(BaseModel):
    """A token as listed: never its secret."""

    id: str
    name: str
    role: str
    models: list[str]
    status: Literal["active", "expired", "revoked"]
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


class NewTokenInfo(TokenInfo):
    token: str = Field(description="The secret: shown this once, stored only as its hash.")


class AuditEntry(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    detail: dict[str, Any]
