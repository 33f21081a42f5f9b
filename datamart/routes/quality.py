"""Quality endpoints: the quality gate's report of a run, and the statistics of a view's runs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from datamart.payloads import FeatureStatistics, RunInfo, RunQuality, RunStatistics, ValidationReport
from datamart.routes import ERROR_RESPONSES, StatisticsReader, StoreDep
from featurestore.errors import NotFoundError
from featurestore.registry.records import RunRecord
from featurestore.store import FeatureStore

router = APIRouter(responses=ERROR_RESPONSES)


@router.get("/runs/{run_id}/quality", tags=["quality"], summary="A run's validation report and statistics")
def run_quality(run_id: str, store: StoreDep, _who: StatisticsReader) -> RunQuality:
    """Every expectation's outcome (failed rows, examples), the verdict (passed, warned,
    quarantined or blocked) and the statistics of the rows the run published."""
    record = _run(store, run_id)
    quality = store.registry.get_run_quality(record.id)
    return RunQuality(
        run=RunInfo.model_validate(record.to_dict()),
        validation=None if quality is None else ValidationReport.model_validate(quality["validation"]),
        statistics={
            name: FeatureStatistics.model_validate(s) for name, s in (quality or {}).get("statistics", {}).items()
        },
    )


@router.get(
    "/feature-views/{name}/statistics",
    tags=["quality"],
    summary="Statistics of a feature view's successful runs, newest first",
)
def view_statistics(
    name: str,
    store: StoreDep,
    _who: StatisticsReader,
    limit: Annotated[int, Query(ge=1, le=500, description="How many runs, newest first.")] = 20,
) -> list[RunStatistics]:
    """Per run and feature: count, null fraction, distinct values, min, max, mean, stddev,
    histogram, and drift (population stability index) against the run before."""
    store.get_feature_view(name)  # 404 with a suggestion for an unknown view
    return [RunStatistics.model_validate(r) for r in store.registry.list_statistics(store.project, name, limit=limit)]


def _run(store: FeatureStore, run_id: str) -> RunRecord:
    """The run of an id, or of the start of one (the UI shows the first characters), else a 404
    saying whether no id or several start so (:meth:`Registry.find_run`) and where ids are listed."""
    try:
        return store.registry.find_run(store.project, run_id)
    except NotFoundError as err:
        err.args = (str(err) + " Each feature view lists its last runs with their ids: GET /v1/feature-views/{name}.",)
        raise
