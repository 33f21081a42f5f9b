"""The registry's tables, as the code reads and writes them today.

The database is brought to this schema by the migrations in
:mod:`featurestore.registry.migrations` (never by ``create_all``); a test checks that a fresh
registry built by them matches these tables exactly. Change a table here and add a migration
in the same commit.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every database (SQLite keeps no zone of its own)."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


metadata = sa.MetaData()


def _definition_table(name: str, *extra: sa.Column[Any]) -> sa.Table:
    return sa.Table(
        name,
        metadata,
        sa.Column("project", sa.String(200), primary_key=True),
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("spec", sa.Text, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        *extra,
    )


entities_t = _definition_table("entities")
sources_t = _definition_table("sources")
views_t = _definition_table(
    "feature_views",
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("fingerprint", sa.String(64), nullable=False),
)
services_t = _definition_table("feature_services")
models_t = _definition_table("models")
view_versions_t = sa.Table(
    "feature_view_versions",
    metadata,
    sa.Column("project", sa.String(200), primary_key=True),
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("spec", sa.Text, nullable=False),
    sa.Column("changes", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)
features_t = sa.Table(
    "features",
    metadata,
    sa.Column("project", sa.String(200), primary_key=True),
    sa.Column("view", sa.String(200), primary_key=True),
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("dtype", sa.String(20), nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("owner", sa.String(200), nullable=False),
    sa.Column("tags", sa.Text, nullable=False),
)
lineage_t = sa.Table(
    "lineage_edges",
    metadata,
    sa.Column("project", sa.String(200), primary_key=True),
    sa.Column("src_kind", sa.String(40), primary_key=True),
    sa.Column("src_name", sa.String(200), primary_key=True),
    sa.Column("dst_kind", sa.String(40), primary_key=True),
    sa.Column("dst_name", sa.String(200), primary_key=True),
)
runs_t = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("project", sa.String(200), nullable=False, index=True),
    sa.Column("view", sa.String(200), nullable=False, index=True),
    sa.Column("view_version", sa.Integer, nullable=False),
    sa.Column("engine", sa.String(40), nullable=False),
    sa.Column("window_start", UTCDateTime, nullable=True),
    sa.Column("window_end", UTCDateTime, nullable=True),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("rows_computed", sa.BigInteger, nullable=True),
    sa.Column("rows_offline", sa.BigInteger, nullable=True),
    sa.Column("rows_online", sa.BigInteger, nullable=True),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("finished_at", UTCDateTime, nullable=True),
    sa.Column("timings", sa.Text, nullable=False, default="{}"),
    sa.Column("watermark", UTCDateTime, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    # Revision 0002: entities whose online value the run re-derived from offline, and entities
    # it removed online. Null for runs recorded before, or by code that does not count them.
    sa.Column("entities_affected", sa.BigInteger, nullable=True),
    sa.Column("rows_online_removed", sa.BigInteger, nullable=True),
)
usage_t = sa.Table(
    "usage_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("project", sa.String(200), nullable=False, index=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("consumer", sa.String(200), nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("view", sa.String(200), nullable=False),
    sa.Column("feature", sa.String(200), nullable=False),
    sa.Column("rows", sa.BigInteger, nullable=False),
    sa.Column("reads", sa.BigInteger, nullable=False, server_default="1"),
)
usage_daily_t = sa.Table(
    # usage_events rolled up per UTC day, kept up to date in the transaction that records the
    # events: what the usage statistics (API, UI) read, so they stay fast with millions of events.
    "usage_daily",
    metadata,
    sa.Column("project", sa.String(200), primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("view", sa.String(200), primary_key=True),
    sa.Column("feature", sa.String(200), primary_key=True),
    sa.Column("consumer", sa.String(200), primary_key=True),
    sa.Column("kind", sa.String(20), primary_key=True),
    sa.Column("reads", sa.BigInteger, nullable=False),
    sa.Column("rows", sa.BigInteger, nullable=False),
    sa.Column("last_read", UTCDateTime, nullable=False),
)
consistency_t = sa.Table(
    "consistency_checks",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("project", sa.String(200), nullable=False, index=True),
    sa.Column("view", sa.String(200), nullable=False),
    sa.Column("checked_at", UTCDateTime, nullable=False),
    sa.Column("consistent", sa.Boolean, nullable=False),
    sa.Column("checked", sa.BigInteger, nullable=False),
    sa.Column("mismatched", sa.BigInteger, nullable=False),
    sa.Column("missing", sa.BigInteger, nullable=False),
    sa.Column("extra", sa.BigInteger, nullable=False),
    sa.Column("report", sa.Text, nullable=False),
)
run_quality_t = sa.Table(
    # One row per run that reached the quality gate: its validation report and the statistics
    # of the rows it published (empty when the gate blocked it), both as JSON.
    "run_quality",
    metadata,
    sa.Column("run_id", sa.String(36), primary_key=True),
    sa.Column("validation", sa.Text, nullable=False),
    sa.Column("statistics", sa.Text, nullable=False),
    sa.Column("recorded_at", UTCDateTime, nullable=False),
)


api_tokens_t = sa.Table(
    # Revision 0003. API tokens: the secret is kept only as its SHA-256 (see featurestore.auth).
    "api_tokens",
    metadata,
    sa.Column("id", sa.String(12), primary_key=True),
    sa.Column("project", sa.String(200), nullable=False, index=True),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("role", sa.String(20), nullable=False),
    sa.Column("models", sa.Text, nullable=False),
    sa.Column("secret_hash", sa.String(64), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=True),
    sa.Column("revoked_at", UTCDateTime, nullable=True),
    sa.Column("revoked_by", sa.String(200), nullable=True),
    sa.Column("last_used_at", UTCDateTime, nullable=True),
)
audit_t = sa.Table(
    # Revision 0003. Every state change: who, when, what.
    "audit_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("project", sa.String(200), nullable=False, index=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("action", sa.String(60), nullable=False),
    sa.Column("target", sa.String(300), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
)
alert_incidents_t = sa.Table(
    # Revision 0004. One row per alert incident: a view stale, or a scheduled run given up, from
    # when the scheduler saw it (opened_at) until it cleared. ``detail`` and ``cleared_detail``
    # are JSON, written without secrets (errors redacted).
    "alert_incidents",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("project", sa.String(200), nullable=False, index=True),
    sa.Column("view", sa.String(200), nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("opened_at", UTCDateTime, nullable=False),
    sa.Column("cleared_at", UTCDateTime, nullable=True),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("cleared_detail", sa.Text, nullable=True),
)
alert_deliveries_t = sa.Table(
    # Revision 0004. Each message of an incident ("opened", "cleared") to each alert channel:
    # pending, retrying (failed, tried again at the next tick), sent, or failed (given up).
    "alert_deliveries",
    metadata,
    sa.Column("incident_id", sa.Integer, primary_key=True),
    sa.Column("message", sa.String(20), primary_key=True),
    sa.Column("channel", sa.String(100), primary_key=True),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("last_attempt_at", UTCDateTime, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
)

training_datasets_t = sa.Table(
    # Revision 0005. One row per named training dataset (see featurestore.training_datasets):
    # its spine and rows as content-hashed Parquet files in the offline store, what it read (the
    # views' versions and watermarks, the published files and the runs that wrote them) and who
    # saved it. Names are immutable: a row is never updated. The JSON columns are written sorted.
    "training_datasets",
    metadata,
    sa.Column("project", sa.String(200), primary_key=True),
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("feature_service", sa.String(200), nullable=True),
    sa.Column("features", sa.Text, nullable=False),
    sa.Column("view_versions", sa.Text, nullable=False),
    sa.Column("timestamp_column", sa.String(200), nullable=False),
    sa.Column("full_feature_names", sa.Boolean, nullable=False),
    sa.Column("spine_file", sa.String(300), nullable=False),
    sa.Column("spine_sha256", sa.String(64), nullable=False),
    sa.Column("spine_rows", sa.BigInteger, nullable=False),
    sa.Column("rows_file", sa.String(300), nullable=False),
    sa.Column("rows_sha256", sa.String(64), nullable=False),
    sa.Column("columns", sa.Text, nullable=False),
    sa.Column("watermarks", sa.Text, nullable=False),
    sa.Column("inputs", sa.Text, nullable=False),
    sa.Column("run_ids", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False),
)
model_versions_t = sa.Table(
    # Revision 0006. One row per model version recorded from MLflow's model registry (see
    # featurestore.mlflow_link): the run that produced it, the training datasets that run logged
    # (JSON: name and rows' SHA-256), their feature service and each view's version.
    "model_versions",
    metadata,
    sa.Column("project", sa.String(200), primary_key=True),
    sa.Column("model", sa.String(200), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("mlflow_run_id", sa.String(64), nullable=False),
    sa.Column("model_uri", sa.Text, nullable=False),
    sa.Column("feature_service", sa.String(200), nullable=True),
    sa.Column("view_versions", sa.Text, nullable=False),
    sa.Column("datasets", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False),
)
model_traffic_t = sa.Table(
    # Revision 0007. One row per model with a traffic setting (featurestore.model_serving): the
    # split (JSON: version -> percentage, summing to 100) and the shadow version, if any.
    "model_traffic",
    metadata,
    sa.Column("project", sa.String(200), primary_key=True),
    sa.Column("model", sa.String(200), primary_key=True),
    sa.Column("split", sa.Text, nullable=False),
    sa.Column("shadow", sa.Integer, nullable=True),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("updated_by", sa.String(200), nullable=False),
)

skew_reports_t = sa.Table(
    # Revision 0008. One row per skew report (featurestore.skew): a feature service's served
    # vectors over [since, until) compared with the offline values as of each request; the
    # report in full (per feature: counts per class, examples) as JSON.
    "skew_reports",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("project", sa.String(200), nullable=False, index=True),
    sa.Column("service", sa.String(200), nullable=False),
    sa.Column("since", UTCDateTime, nullable=False),
    sa.Column("until", UTCDateTime, nullable=True),
    sa.Column("computed_at", UTCDateTime, nullable=False),
    sa.Column("computed_by", sa.String(200), nullable=False),
    sa.Column("rows", sa.Integer, nullable=False),
    sa.Column("values_compared", sa.Integer, nullable=False),
    sa.Column("matched", sa.Integer, nullable=False),
    sa.Column("report", sa.Text, nullable=False),
)

feature_requests_t = sa.Table(
    # Revision 0009. One row per feature request (featurestore.feature_requests): what is needed,
    # for which entity, why, by when, for which model; its state, who decided, and the view and
    # features (JSON list) linked to fulfil it.
    "feature_requests",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("project", sa.String(200), nullable=False, index=True),
    sa.Column("title", sa.String(200), nullable=False),
    sa.Column("entity", sa.String(200), nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("due", sa.Date, nullable=True),
    sa.Column("model", sa.String(200), nullable=True),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("requester", sa.String(200), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("decided_by", sa.String(200), nullable=True),
    sa.Column("decline_reason", sa.Text, nullable=True),
    sa.Column("view", sa.String(200), nullable=True),
    sa.Column("features", sa.Text, nullable=False),
    sa.Column("delivered_at", UTCDateTime, nullable=True),
    sa.Column("delivered_run", sa.String(36), nullable=True),
)
feature_request_votes_t = sa.Table(
    # Revision 0009. One vote per supporter of a request, with their comment.
    "feature_request_votes",
    metadata,
    sa.Column("request_id", sa.Integer, primary_key=True),
    sa.Column("voter", sa.String(200), primary_key=True),
    sa.Column("comment", sa.Text, nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
)
feature_request_events_t = sa.Table(
    # Revision 0009. The history of each request: filed, supported, accepted, declined, linked,
    # delivered; who and when, with a JSON detail.
    "feature_request_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.Integer, nullable=False, index=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("event", sa.String(20), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
)
feature_request_notifications_t = sa.Table(
    # Revision 0009. What the UI tells each person: a request they filed or supported was delivered.
    "feature_request_notifications",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("project", sa.String(200), nullable=False, index=True),
    sa.Column("recipient", sa.String(200), nullable=False, index=True),
    sa.Column("request_id", sa.Integer, nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("read_at", UTCDateTime, nullable=True),
)

source_probes_t = sa.Table(
    # Revision 0010. The latest probe of each source (featurestore.source_probe): its status, when
    # it ran, and what it found as JSON (columns, row count, time range, partitions, sample rows
    # without the sensitive columns).
    "source_probes",
    metadata,
    sa.Column("project", sa.String(200), primary_key=True),
    sa.Column("source", sa.String(200), primary_key=True),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("probed_at", UTCDateTime, nullable=False),
    sa.Column("probe", sa.Text, nullable=False),
)

feature_duplicates_t = sa.Table(
    # Revision 0011. Features found by `featurestore apply` to compute what another does
    # (featurestore.duplicates): the pair, the original's owner, the kind and its figure.
    "feature_duplicates",
    metadata,
    sa.Column("project", sa.String(200), primary_key=True),
    sa.Column("feature", sa.String(400), primary_key=True),
    sa.Column("duplicate_of", sa.String(400), primary_key=True),
    sa.Column("view", sa.String(200), nullable=False),
    sa.Column("duplicate_view", sa.String(200), nullable=False),
    sa.Column("owner", sa.String(200), nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("figure", sa.Float, nullable=True),
    sa.Column("rows", sa.Integer, nullable=True),
    sa.Column("found_at", UTCDateTime, nullable=False),
)


def as_utc(value: Any) -> datetime | None:
    """An aggregate of a UTCDateTime column: SQLAlchemy does not apply the column type to
    ``max()``, so SQLite gives text and PostgreSQL a datetime."""
    if value is None:
        return None
    parsed = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def now() -> datetime:
    return datetime.now(UTC)
