"""The newest skew reports (:mod:`featurestore.skew`) as the view and model pages show them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from starlette.requests import Request

from featurestore.auth import Identity, Permission
from featurestore.registry import Registry
from featurestore.skew import CLASSES, SkewReport, latest_reports


@dataclass(frozen=True)
class SkewLine:
    """One feature of a service's newest report: values served, match rate, counts per class."""

    service: str
    report_id: int | None
    computed_at: datetime
    window: str
    view: str
    feature: str
    served: int
    match_rate: float | None
    counts: dict[str, int]
    examples: list[tuple[str, dict[str, Any]]]

    @property
    def consistent(self) -> bool:
        return self.served > 0 and self.counts.get("match", 0) == self.served


MISMATCH_CLASSES = CLASSES[1:]


def _lines(report: SkewReport, view: str | None = None) -> list[SkewLine]:
    until = report.until.isoformat() if report.until else "the report"
    window = f"{report.since.isoformat()} to {until}"
    return [
        SkewLine(
            service=report.service,
            report_id=report.id,
            computed_at=report.computed_at,
            window=window,
            view=f.view,
            feature=f.feature,
            served=f.served,
            match_rate=f.match_rate,
            counts=f.counts,
            examples=[(cls, e) for cls in MISMATCH_CLASSES for e in f.examples.get(cls, [])][:3],
        )
        for f in report.features
        if view is None or f.view == view
    ]


def view_skew(registry: Registry, project: str, view: str) -> list[SkewLine]:
    """The view's features in each service's newest report."""
    return [line for report in latest_reports(registry, project) for line in _lines(report, view)]


def service_skew(registry: Registry, project: str, service: str) -> list[SkewLine]:
    """The features of the service's newest report (a model's page: the service it consumes)."""
    return [
        line for report in latest_reports(registry, project) if report.service == service for line in _lines(report)
    ]


def may_see(request: Request) -> bool:
    """Whether the page's reader may see skew reports: who may read statistics (the API's
    ``GET /v1/skew-reports``), or anyone when authentication is off."""
    identity: Identity | None = getattr(request.state, "identity", None)
    return identity is None or identity.can(Permission.STATISTICS)


def for_view(request: Request, registry: Registry, project: str, view: str) -> list[SkewLine] | None:
    """What the view page shows: None (no section) for a reader who may not see it."""
    return view_skew(registry, project, view) if may_see(request) else None


def for_model(request: Request, registry: Registry, project: str, service: str) -> list[SkewLine] | None:
    """What the model page shows, for the service the model consumes."""
    return service_skew(registry, project, service) if may_see(request) else None
