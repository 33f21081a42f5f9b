"""The training datasets pages: every saved dataset, and one dataset with what it read.

Both read the registry alone (the record of each dataset); the rows stay in the offline store,
fetched with the SDK, the CLI or the datamart API, which the page shows how to call.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from featurestore.registry import Registry, RunRecord, TrainingDatasetRecord


@dataclass(frozen=True)
class DatasetRun:
    """A run whose published files a dataset read, with how many of them and the run's record
    (None: a compaction, or a run no longer in the registry)."""

    view: str
    run_id: str
    files: int
    run: RunRecord | None


@dataclass(frozen=True)
class DatasetPage:
    record: TrainingDatasetRecord
    views: list[tuple[str, int | None, int | None, datetime | None]]
    """Each view read: name, version then, version now (None: no longer defined), watermark then."""
    runs: list[DatasetRun]


def datasets_list(registry: Registry, project: str) -> list[TrainingDatasetRecord]:
    """The project's datasets, newest first."""
    return registry.list_training_datasets(project)


def dataset_page(registry: Registry, project: str, name: str) -> DatasetPage:
    """One dataset (:class:`~featurestore.errors.NotFoundError` with near names if unknown)."""
    record = registry.get_training_dataset(project, name)
    current = {v.name for v in registry.list_feature_views(project)}
    views = [
        (
            view,
            record.view_versions.get(view),
            registry.view_version(project, view) if view in current else None,
            record.watermarks.get(view),
        )
        for view in record.views
    ]
    runs: list[DatasetRun] = []
    for view in record.views:
        counts: dict[str, int] = {}
        for i in record.inputs:
            if i.view == view:
                counts[i.run_id] = counts.get(i.run_id, 0) + 1
        known = {r.id: r for r in registry.list_runs(project, view, limit=1000)}
        runs.extend(DatasetRun(view, run_id, n, known.get(run_id)) for run_id, n in counts.items())
    return DatasetPage(record=record, views=views, runs=runs)
