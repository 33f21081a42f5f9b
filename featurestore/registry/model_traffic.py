"""Model traffic: how the model server divides a model's predictions between its versions.

One row per model that has a setting: the split (version -> percentage, summing to 100) and an
optional shadow version, predicted alongside but never returned. Validated by
:func:`featurestore.model_serving.set_model_traffic`, which also audits the change; a model
without a row is served by its newest recorded version.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from featurestore.registry.locks import lock_project
from featurestore.registry.schema import model_traffic_t


@dataclass(frozen=True)
class ModelTrafficRecord:
    """A model's traffic: ``split`` maps each served version to its percentage (summing to 100);
    ``shadow`` is a version whose predictions are logged and not returned (None: no shadow)."""

    project: str
    model: str
    split: Mapping[int, int]
    shadow: int | None
    updated_at: datetime
    updated_by: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "model": self.model,
            "split": {str(v): p for v, p in self.split.items()},
            "shadow": self.shadow,
            "updated_at": self.updated_at.isoformat(),
            "updated_by": self.updated_by,
        }


class ModelTraffic:
    """Registry mixin: each model's traffic split and shadow version."""

    _engine: Engine

    def set_model_traffic(self, record: ModelTrafficRecord) -> ModelTrafficRecord:
        """Replace the model's traffic setting with ``record``."""
        c = model_traffic_t.c
        with self._engine.begin() as conn:
            lock_project(conn, record.project)
            conn.execute(model_traffic_t.delete().where(c.project == record.project, c.model == record.model))
            conn.execute(
                model_traffic_t.insert().values(
                    project=record.project,
                    model=record.model,
                    split=json.dumps({str(v): p for v, p in sorted(record.split.items())}),
                    shadow=record.shadow,
                    updated_at=record.updated_at,
                    updated_by=record.updated_by,
                )
            )
        return record

    def clear_model_traffic(self, project: str, model: str) -> bool:
        """Remove the model's setting (its newest version then serves everything); False if it had none."""
        c = model_traffic_t.c
        with self._engine.begin() as conn:
            deleted = conn.execute(model_traffic_t.delete().where(c.project == project, c.model == model))
        return bool(deleted.rowcount)

    def list_model_traffic(self, project: str) -> list[ModelTrafficRecord]:
        """Every model's traffic setting in the project, by model."""
        c = model_traffic_t.c
        query = sa.select(model_traffic_t).where(c.project == project).order_by(c.model)
        with self._engine.connect() as conn:
            return [
                ModelTrafficRecord(
                    project=r.project,
                    model=r.model,
                    split={int(v): int(p) for v, p in json.loads(r.split).items()},
                    shadow=r.shadow,
                    updated_at=r.updated_at,
                    updated_by=r.updated_by,
                )
                for r in conn.execute(query)
            ]
