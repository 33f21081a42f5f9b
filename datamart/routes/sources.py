"""Source probes and previews: is a source reachable and what does it hold; a view computed on a
sample of its entities (issue 18, parts 2 and 3). Reading a recorded probe needs the statistics
permission (its sample rows are data, sensitive columns left out); probing now and previewing
compute, and are the engineers' (``views:operate``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from datamart.routes import ERROR_RESPONSES, Operator, StatisticsReader, StoreDep
from featurestore.errors import InvalidRequestError, NotFoundError, RunError
from featurestore.store import FeatureStore

router = APIRouter(responses=ERROR_RESPONSES)

WINDOW_RANGE = (datetime(1000, 1, 1, tzinfo=UTC), datetime(9000, 1, 1, tzinfo=UTC))
"""A preview's window stays within these years, as a run's does on the command line."""


def _source(store: FeatureStore, name: str) -> Any:
    sources = {s.name: s for s in store.registry.list_sources(store.project)}
    if name not in sources:
        raise NotFoundError("source", name, project=store.project, candidates=sources)
    return sources[name]


@router.get("/sources/{name}/probe", tags=["catalog"], summary="A source's latest probe")
def source_probe(name: str, store: StoreDep, _who: StatisticsReader) -> dict[str, Any]:
    """What the source's latest probe found (``featurestore apply``, ``featurestore source
    check`` or ``POST`` here): status, columns, row count, event-time range, partitions and a
    few sample rows without the columns tagged sensitive."""
    _source(store, name)
    probe = store.registry.get_source_probe(store.project, name)
    if probe is None:
        err = NotFoundError("source probe", name, project=store.project)
        err.args = (f"Source '{name}' was never probed: POST /v1/sources/{name}/probe, or run 'featurestore apply'.",)
        raise err
    return probe.to_dict()


@router.post("/sources/{name}/probe", tags=["catalog"], summary="Probe a source now")
def probe_source_now(name: str, store: StoreDep, _who: Operator) -> dict[str, Any]:
    """Probe the source now (within ``quality.probe_timeout_seconds``), keep the probe as its
    latest, and return it. A missing or unreadable source is a probe with that status (200)."""
    (probe,) = store.check_sources([_source(store, name)])
    return probe.to_dict()


class PreviewRequest(BaseModel):
    """A preview: ``sample`` entities chosen by a hash of their keys (default 100), or the
    ``entities`` named (key values; a composite key's values joined by ``:``), over an optional
    window."""

    model_config = ConfigDict(extra="forbid")
    sample: int | None = Field(default=None, ge=1, le=100_000)
    entities: list[str] | None = Field(default=None, max_length=10_000)
    start: datetime | None = None
    end: datetime | None = None
    rows: int = Field(default=10, ge=0, le=1000, description="Rows of the output returned.")


@router.post(
    "/feature-views/{name}/preview", tags=["quality"], summary="Compute a feature view on a sample (a dry run)"
)
def preview_view(name: str, body: PreviewRequest, store: StoreDep, _who: Operator) -> dict[str, Any]:
    """The applied view computed for a sample of its entities (all of their rows), its quality
    gate and statistics: each step with its rows and time, the first rows, the expectations'
    results. Nothing is published and no run is recorded."""
    from etl.preview import preview_view as preview
    from etl.preview import runnable_view
    from etl.runs import check_window
    from featurestore.times import aware_time

    start = None if body.start is None else aware_time(body.start, "start")
    end = None if body.end is None else aware_time(body.end, "end")
    for what, value in (("start", start), ("end", end)):
        if value is not None and not WINDOW_RANGE[0] <= value <= WINDOW_RANGE[1]:
            raise InvalidRequestError(
                f"{what} {value.isoformat()} is outside the range a preview window may span, 1000-01-01 to "
                "9000-01-01 UTC (room for the view's source lookback); give a time in that range or leave it out"
            )
    try:
        check_window(start, end)
        report = preview(
            store,
            runnable_view(store, name),
            sample=body.sample,
            entities=body.entities or None,
            start=start,
            end=end,
            rows_shown=body.rows,
        )
    except RunError as err:  # the view cannot be computed as defined: the request cannot be served (422)
        raise InvalidRequestError(str(err)) from err
    return report.to_dict()
