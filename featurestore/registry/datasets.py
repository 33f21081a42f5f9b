"""Named training datasets: what each one read and where its files are.

A dataset's row is written once and never updated (names are immutable), with its lineage
edges (each feature view it read → the dataset) in the same transaction. Building, storing and
verifying the rows is :mod:`featurestore.training_datasets`'s job; this module only records.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from featurestore.errors import NotFoundError
from featurestore.registry.locks import lock_name, lock_project
from featurestore.registry.schema import lineage_t, training_datasets_t

DATASET_KIND = "training_dataset"
"""The kind of a dataset in the lineage (``feature_view`` → ``training_dataset``)."""
FILES_LOCK = "featurestore.registry:training-dataset-files"
"""Held by a dataset's insert and by the removal of a failed save's files (see
:meth:`Datasets.remove_unreferenced_dataset_files`): one cannot fall between the other's check and act."""


@dataclass(frozen=True)
class DatasetInput:
    """One published offline file a dataset read: the view, the file (relative to the view's
    folder) and the run (or push, or compaction) that published it."""

    view: str
    file: str
    run_id: str

    def to_dict(self) -> dict[str, str]:
        return {"view": self.view, "file": self.file, "run_id": self.run_id}


@dataclass(frozen=True)
class TrainingDatasetRecord:
    """A named training dataset as the registry records it.

    ``spine_file`` and ``rows_file`` are relative to the offline store's root and named by the
    SHA-256 of their bytes (``spine_sha256``, ``rows_sha256``); ``features`` are the
    ``view:feature`` references it was built from (a feature service's, when ``feature_service``
    is set), ``view_versions`` and ``watermarks`` the state of each view then, ``inputs`` every
    file it read and ``run_ids`` the runs that published them."""

    project: str
    name: str
    feature_service: str | None
    features: tuple[str, ...]
    view_versions: Mapping[str, int]
    timestamp_column: str
    full_feature_names: bool
    spine_file: str
    spine_sha256: str
    spine_rows: int
    rows_file: str
    rows_sha256: str
    columns: tuple[str, ...]
    watermarks: Mapping[str, datetime | None]
    inputs: tuple[DatasetInput, ...]
    run_ids: tuple[str, ...]
    created_at: datetime
    created_by: str
    description: str = ""
    views: tuple[str, ...] = field(init=False)
    """The feature views it read, in the order of ``features``."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "views", tuple(dict.fromkeys(f.partition(":")[0] for f in self.features)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "project": self.project,
            "feature_service": self.feature_service,
            "features": list(self.features),
            "view_versions": dict(self.view_versions),
            "timestamp_column": self.timestamp_column,
            "full_feature_names": self.full_feature_names,
            "spine": {"file": self.spine_file, "sha256": self.spine_sha256, "rows": self.spine_rows},
            "rows": {"file": self.rows_file, "sha256": self.rows_sha256, "rows": self.spine_rows},
            "columns": list(self.columns),
            "watermarks": {v: None if w is None else w.isoformat() for v, w in self.watermarks.items()},
            "inputs": [i.to_dict() for i in self.inputs],
            "run_ids": list(self.run_ids),
            "description": self.description,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
        }


class Datasets:
    """Registry mixin: training datasets."""

    _engine: Engine

    def record_training_dataset(self, record: TrainingDatasetRecord) -> tuple[TrainingDatasetRecord, bool]:
        """Record ``record`` and its lineage edges, unless its name is taken: then the dataset
        already recorded under it, and False (the caller decides whether they are the same)."""
        c = training_datasets_t.c
        with self._engine.begin() as conn:
            lock_project(conn, record.project)  # two saves of one name at once: the second sees the first
            lock_name(conn, FILES_LOCK)
            row = conn.execute(
                sa.select(training_datasets_t).where(c.project == record.project, c.name == record.name)
            ).first()
            if row is not None:
                return _record(row), False
            conn.execute(training_datasets_t.insert().values(**_row(record)))
            conn.execute(
                lineage_t.insert(),
                [
                    {
                        "project": record.project,
                        "src_kind": "feature_view",
                        "src_name": view,
                        "dst_kind": DATASET_KIND,
                        "dst_name": record.name,
                    }
                    for view in record.views
                ],
            )
        return record, True

    def remove_unreferenced_dataset_files(self, files: Collection[str], remove: Callable[[str], None]) -> list[str]:
        """Call ``remove`` on each of ``files`` (paths as datasets record them: relative to the
        offline store's root) that no recorded dataset of any project references, and return those.
        Done under a lock that inserts take too: a save recording one of them meanwhile either
        commits first (the file is kept) or after (and then writes the file again if it is gone)."""
        c = training_datasets_t.c
        with self._engine.begin() as conn:
            lock_name(conn, FILES_LOCK)
            used = set(conn.execute(sa.select(c.spine_file).where(c.spine_file.in_(files))).scalars()) | set(
                conn.execute(sa.select(c.rows_file).where(c.rows_file.in_(files))).scalars()
            )
            unused = [f for f in files if f not in used]
            for f in unused:
                remove(f)
        return unused

    def find_training_dataset(self, project: str, name: str) -> TrainingDatasetRecord | None:
        c = training_datasets_t.c
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(training_datasets_t).where(c.project == project, c.name == name)).first()
        return None if row is None else _record(row)

    def get_training_dataset(self, project: str, name: str) -> TrainingDatasetRecord:
        """The dataset named ``name``, or :class:`NotFoundError` suggesting the nearest names."""
        found = self.find_training_dataset(project, name)
        if found is None:
            raise NotFoundError(
                "training dataset", name, project=project, candidates=self.training_dataset_names(project)
            )
        return found

    def training_dataset_names(self, project: str) -> list[str]:
        c = training_datasets_t.c
        with self._engine.connect() as conn:
            return list(conn.execute(sa.select(c.name).where(c.project == project).order_by(c.name)).scalars())

    def list_training_datasets(self, project: str, *, view: str | None = None) -> list[TrainingDatasetRecord]:
        """The project's datasets (that read ``view``, when given), newest first."""
        c = training_datasets_t.c
        query = sa.select(training_datasets_t).where(c.project == project).order_by(c.created_at.desc(), c.name)
        with self._engine.connect() as conn:
            records = [_record(r) for r in conn.execute(query)]
        return [r for r in records if view is None or view in r.views]


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _row(record: TrainingDatasetRecord) -> dict[str, Any]:
    return {
        "project": record.project,
        "name": record.name,
        "feature_service": record.feature_service,
        "features": _dumps(list(record.features)),
        "view_versions": _dumps(dict(record.view_versions)),
        "timestamp_column": record.timestamp_column,
        "full_feature_names": record.full_feature_names,
        "spine_file": record.spine_file,
        "spine_sha256": record.spine_sha256,
        "spine_rows": record.spine_rows,
        "rows_file": record.rows_file,
        "rows_sha256": record.rows_sha256,
        "columns": _dumps(list(record.columns)),
        "watermarks": _dumps({v: None if w is None else w.isoformat() for v, w in record.watermarks.items()}),
        "inputs": _dumps([i.to_dict() for i in record.inputs]),
        "run_ids": _dumps(list(record.run_ids)),
        "description": record.description,
        "created_at": record.created_at,
        "created_by": record.created_by,
    }


def _record(row: sa.Row[Any]) -> TrainingDatasetRecord:
    marks = json.loads(row.watermarks)
    return TrainingDatasetRecord(
        project=row.project,
        name=row.name,
        feature_service=row.feature_service,
        features=tuple(json.loads(row.features)),
        view_versions={str(k): int(v) for k, v in json.loads(row.view_versions).items()},
        timestamp_column=row.timestamp_column,
        full_feature_names=bool(row.full_feature_names),
        spine_file=row.spine_file,
        spine_sha256=row.spine_sha256,
        spine_rows=int(row.spine_rows),
        rows_file=row.rows_file,
        rows_sha256=row.rows_sha256,
        columns=tuple(json.loads(row.columns)),
        watermarks={v: None if w is None else datetime.fromisoformat(w) for v, w in marks.items()},
        inputs=tuple(DatasetInput(**i) for i in json.loads(row.inputs)),
        run_ids=tuple(json.loads(row.run_ids)),
        description=row.description,
        created_at=row.created_at,
        created_by=row.created_by,
    )
