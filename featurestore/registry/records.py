"""What the registry gives back and takes in: frozen, typed records (no database access here)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class ApplyReport:
    """What ``apply`` changed, by kind: names created, updated (with the view's new version) and removed."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RunRecord:
    """One run of a feature view, as recorded in the registry. ``entities_affected`` counts the
    entities whose online value the run re-derived from offline, ``rows_online_removed`` the
    entities it removed online; both are ``None`` for runs recorded without them."""

    id: str
    project: str
    view: str
    view_version: int
    engine: str
    window_start: datetime | None
    window_end: datetime | None
    status: str
    rows_computed: int | None
    rows_offline: int | None
    rows_online: int | None
    started_at: datetime
    finished_at: datetime | None
    timings: dict[str, float]
    watermark: datetime | None
    error: str | None
    entities_affected: int | None = None
    rows_online_removed: int | None = None

    @property
    def duration_seconds(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values: times as ISO 8601 text, with ``duration_seconds``."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = value.isoformat() if isinstance(value, datetime) else value
        out["duration_seconds"] = self.duration_seconds
        return out


@dataclass(frozen=True)
class UsageEvent:
    """Reads of one feature by one consumer, of one kind (online, training, reference): how
    many reads, how many rows in all, and when the last one was. One event per read, or a
    roll-up of many (see ``featurestore.usage``)."""

    consumer: str
    kind: str
    view: str
    feature: str
    rows: int
    at: datetime = field(default_factory=_now)
    reads: int = 1


@dataclass(frozen=True)
class ViewVersion:
    """One version of a feature view: made when what the view stores changed, with what changed
    (``changes``, in words) and the view's spec as applied then."""

    version: int
    fingerprint: str
    changes: str
    created_at: datetime
    spec: dict[str, Any]


@dataclass(frozen=True)
class FeatureRecord:
    """One feature of an applied view, as the catalog lists it: its owner is the view's when the
    feature names none."""

    view: str
    name: str
    dtype: str
    description: str
    owner: str
    tags: tuple[str, ...]


@dataclass(frozen=True)
class ModelRecord:
    """A model registered as a consumer of a feature service."""

    name: str
    feature_service: str
    description: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "feature_service": self.feature_service, "description": self.description}


@dataclass(frozen=True)
class LineageEdge:
    """``src`` feeds ``dst``: kinds are ``source``, ``entity``, ``feature_view``,
    ``feature_service`` and ``model``."""

    src_kind: str
    src_name: str
    dst_kind: str
    dst_name: str

    def to_dict(self) -> dict[str, str]:
        return {
            "src_kind": self.src_kind,
            "src_name": self.src_name,
            "dst_kind": self.dst_kind,
            "dst_name": self.dst_name,
        }


@dataclass(frozen=True)
class TokenRecord:
    """An API token as the registry keeps it: never its secret. ``models``: for a ``service``
    token, the models whose feature services it may read online."""

    id: str
    project: str
    name: str
    role: str
    models: tuple[str, ...]
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None
    revoked_by: str | None
    last_used_at: datetime | None

    def status(self, at: datetime | None = None) -> str:
        """``active``, ``expired`` or ``revoked``."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= (at or _now()):
            return "expired"
        return "active"


@dataclass(frozen=True)
class AuditRecord:
    """One state change: who (``actor``), when, what (``action`` on ``target``), and details."""

    id: int
    project: str
    at: datetime
    actor: str
    action: str
    target: str
    detail: dict[str, Any]


@dataclass(frozen=True)
class RunTotals:
    """The runs of one view that ended with one status, summed (what ``/metrics`` reports):
    how many, their total duration and how many took at most each bound of ``buckets`` (seconds,
    cumulative, as a Prometheus histogram counts), and the rows they published offline and the
    entities they derived online. For ``running`` runs only ``runs`` is meaningful."""

    view: str
    status: str
    runs: int
    duration_seconds: float
    buckets: tuple[tuple[float, int], ...]
    rows_offline: int
    rows_online: int


@dataclass(frozen=True)
class ConsistencyCheckRecord:
    """The last consistency check of a view, in figures (its full report: ``list_consistency``)."""

    view: str
    checked_at: datetime
    consistent: bool
    checked: int
    mismatched: int
    missing: int
    extra: int


@dataclass(frozen=True)
class AlertDelivery:
    """One message of an alert incident (``opened`` or ``cleared``) to one channel: ``pending``
    (not tried yet), ``retrying`` (failed, tried again at the scheduler's next tick), ``sent``, or
    ``failed`` (given up after ``alerts.max_attempts``); ``error`` is the last failure, redacted."""

    channel: str
    message: str
    status: str
    attempts: int
    last_attempt_at: datetime | None
    error: str | None

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["last_attempt_at"] = self.last_attempt_at.isoformat() if self.last_attempt_at else None
        return out


@dataclass(frozen=True)
class AlertIncident:
    """An alert incident of a feature view: ``stale`` (its published data older than its
    freshness) or ``run_failed`` (a scheduled run given up after its attempts). Open until
    ``cleared_at``. ``detail`` and ``cleared_detail`` hold what was seen (no secrets), with a
    ``summary`` sentence; ``deliveries``, the messages sent about it."""

    id: int
    project: str
    view: str
    kind: str
    opened_at: datetime
    cleared_at: datetime | None
    detail: dict[str, Any]
    cleared_detail: dict[str, Any] | None
    deliveries: tuple[AlertDelivery, ...] = ()

    @property
    def is_open(self) -> bool:
        return self.cleared_at is None

    @property
    def summary(self) -> str:
        return str(self.detail.get("summary", ""))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values: times as ISO 8601 text."""
        return {
            "id": self.id,
            "project": self.project,
            "view": self.view,
            "kind": self.kind,
            "open": self.is_open,
            "opened_at": self.opened_at.isoformat(),
            "cleared_at": self.cleared_at.isoformat() if self.cleared_at else None,
            "summary": self.summary,
            "detail": self.detail,
            "cleared_detail": self.cleared_detail,
            "deliveries": [d.to_dict() for d in self.deliveries],
        }
