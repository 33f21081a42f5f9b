"""Runs of feature views, the watermarks they published, their quality records, and the
online/offline consistency checks."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from featurestore.errors import NotFoundError
from featurestore.registry.definitions import current_version
from featurestore.registry.records import ConsistencyCheckRecord, RunRecord, RunTotals
from featurestore.registry.schema import as_utc, consistency_t, now, run_quality_t, runs_t

PUSH_ENGINE = "push"
"""The engine pushes are recorded under in the run history (``etl/push.py``)."""


class Runs:
    """The registry's runs, watermarks, quality records and consistency checks."""

    _engine: Engine

    def start_run(
        self, project: str, view: str, *, engine: str, window_start: datetime | None, window_end: datetime | None
    ) -> str:
        """Record a run of the view's current version as ``running``; returns its id."""
        run_id = str(uuid.uuid4())
        with self._engine.begin() as conn:
            conn.execute(
                runs_t.insert().values(
                    id=run_id,
                    project=project,
                    view=view,
                    view_version=current_version(conn, project, view),
                    engine=engine,
                    window_start=window_start,
                    window_end=window_end,
                    status="running",
                    started_at=now(),
                    timings="{}",
                )
            )
        return run_id

    def finish_run(
        self,
        run_id: str,
        *,
        status: str,
        rows_computed: int | None = None,
        rows_offline: int | None = None,
        rows_online: int | None = None,
        timings: Mapping[str, float] | None = None,
        watermark: datetime | None = None,
        error: str | None = None,
        entities_affected: int | None = None,
        rows_online_removed: int | None = None,
    ) -> None:
        """Record a run's outcome. ``entities_affected``: entities whose online value the run
        re-derived from offline; ``rows_online_removed``: entities it removed online."""
        with self._engine.begin() as conn:
            conn.execute(
                runs_t.update()
                .where(runs_t.c.id == run_id)
                .values(
                    status=status,
                    rows_computed=rows_computed,
                    rows_offline=rows_offline,
                    rows_online=rows_online,
                    finished_at=now(),
                    timings=json.dumps(dict(timings or {})),
                    watermark=watermark,
                    error=error,
                    entities_affected=entities_affected,
                    rows_online_removed=rows_online_removed,
                )
            )

    def abandon_runs(self, project: str, view: str, *, found_by: str, pushes_only: bool = False) -> list[str]:
        """Mark the view's runs still ``running`` as ``abandoned``: their process stopped (killed,
        crashed) before recording an outcome. Called by a run holding the view's run lock and
        publish lock, so no other run or push of the view can be alive; ``pushes_only``, by a push
        holding the publish lock only (a run may be computing meanwhile), for pushes."""
        query = sa.select(runs_t.c.id).where(
            runs_t.c.project == project,
            runs_t.c.view == view,
            runs_t.c.status == "running",
            runs_t.c.id != found_by,
        )
        if pushes_only:
            query = query.where(runs_t.c.engine == PUSH_ENGINE)
        with self._engine.begin() as conn:
            ids = [r.id for r in conn.execute(query)]
            if ids:
                conn.execute(
                    runs_t.update()
                    .where(runs_t.c.id.in_(ids))
                    .values(
                        status="abandoned",
                        finished_at=now(),
                        error=f"the process running it stopped before recording an outcome (found by run {found_by})",
                    )
                )
        return ids

    def get_run(self, run_id: str) -> RunRecord:
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(runs_t).where(runs_t.c.id == run_id)).first()
        if row is None:
            raise NotFoundError("run", run_id)
        return _run_record(row)

    def find_run(self, project: str, run_id: str, *, view: str | None = None) -> RunRecord:
        """A run of the project (of ``view``, when given) by its id, or by the start of its id
        when exactly one run's id starts so (the registry UI shows the first 8 characters).
        Otherwise :class:`NotFoundError`, saying whether no id or several start so."""
        query = sa.select(runs_t).where(runs_t.c.project == project, runs_t.c.id.startswith(run_id, autoescape=True))
        if view is not None:
            query = query.where(runs_t.c.view == view)
        with self._engine.connect() as conn:
            rows = conn.execute(query.order_by(runs_t.c.started_at.desc()).limit(6)).all()
        exact = [r for r in rows if r.id == run_id]
        if len(rows) == 1 or exact:
            return _run_record(exact[0] if exact else rows[0])
        of = f" of feature view '{view}'" if view else ""
        if rows and run_id:
            shown = ", ".join(r.id for r in rows[:5]) + (", ..." if len(rows) > 5 else "")
            err = NotFoundError("run", run_id, project=project)
            hint = f" Several runs{of} have ids starting '{run_id}' ({shown}): give more of the id."
        else:
            recent = [r.id for r in self.list_runs(project, view, limit=200)]
            err = NotFoundError("run", run_id, project=project, candidates=recent)
            hint = f" No run{of} has an id starting '{run_id}'." if recent else f" There is no run{of} yet."
        err.args = (str(err) + hint,)
        raise err

    def list_runs(
        self, project: str, view: str | None = None, limit: int = 50, *, batch_only: bool = False
    ) -> list[RunRecord]:
        """The project's (or view's) runs, newest first; ``batch_only``: without pushes."""
        query = sa.select(runs_t).where(runs_t.c.project == project)
        if view is not None:
            query = query.where(runs_t.c.view == view)
        if batch_only:
            query = query.where(runs_t.c.engine != PUSH_ENGINE)
        with self._engine.connect() as conn:
            rows = conn.execute(query.order_by(runs_t.c.started_at.desc()).limit(limit))
            return [_run_record(r) for r in rows]

    def watermark(self, project: str, view: str, *, batch_only: bool = False) -> datetime | None:
        """The newest event time published by a successful run of the view (or push: a pushed
        row is online data as fresh as any; ``batch_only``: by runs only, where the scheduler's
        next window starts: a push must not skip source rows older than it)."""
        query = sa.select(sa.func.max(runs_t.c.watermark)).where(
            runs_t.c.project == project, runs_t.c.view == view, runs_t.c.status == "succeeded"
        )
        if batch_only:
            query = query.where(runs_t.c.engine != PUSH_ENGINE)
        with self._engine.connect() as conn:
            value = conn.execute(query).scalar()
        return as_utc(value)

    def watermarks(self, project: str) -> dict[str, datetime]:
        """The newest event time published by a successful run, of every view that has one."""
        query = (
            sa.select(runs_t.c.view, sa.func.max(runs_t.c.watermark).label("watermark"))
            .where(runs_t.c.project == project, runs_t.c.status == "succeeded", runs_t.c.watermark.is_not(None))
            .group_by(runs_t.c.view)
        )
        with self._engine.connect() as conn:
            found = {r.view: as_utc(r.watermark) for r in conn.execute(query)}
        return {view: at for view, at in found.items() if at is not None}

    # ------------------------------------------------------------------ quality of runs

    def record_run_quality(self, run_id: str, validation: Mapping[str, Any], statistics: Mapping[str, Any]) -> None:
        """Keep a run's validation report (``QualityReport.to_dict()``) and the statistics of the
        rows it published (feature → figures; empty when nothing was published). Recording again
        replaces them."""
        values = {
            "validation": json.dumps(validation, default=str),
            "statistics": json.dumps(statistics, default=str),
            "recorded_at": now(),
        }
        with self._engine.begin() as conn:
            updated = conn.execute(run_quality_t.update().where(run_quality_t.c.run_id == run_id).values(**values))
            if not updated.rowcount:
                conn.execute(run_quality_t.insert().values(run_id=run_id, **values))

    def get_run_quality(self, run_id: str) -> dict[str, Any] | None:
        """``{"run_id", "validation", "statistics", "recorded_at"}`` of a run, or ``None`` when the
        run never reached the quality gate (it failed before, or ran before the gate existed)."""
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(run_quality_t).where(run_quality_t.c.run_id == run_id)).first()
        if row is None:
            return None
        return {
            "run_id": row.run_id,
            "validation": json.loads(row.validation),
            "statistics": json.loads(row.statistics),
            "recorded_at": row.recorded_at,
        }

    def list_statistics(self, project: str, view: str, limit: int = 20) -> list[dict[str, Any]]:
        """Statistics of the view's successful runs, newest first: ``{"run_id", "started_at",
        "rows", "statistics"}`` where ``statistics`` maps each feature to ``{count, null_fraction,
        min, max, mean, stddev, distinct, histogram: {edges, counts}, psi, drift}``."""
        query = (
            sa.select(runs_t.c.id, runs_t.c.started_at, runs_t.c.rows_offline, run_quality_t.c.statistics)
            .join(run_quality_t, run_quality_t.c.run_id == runs_t.c.id)
            .where(runs_t.c.project == project, runs_t.c.view == view, runs_t.c.status == "succeeded")
            .order_by(runs_t.c.started_at.desc())
            .limit(limit)
        )
        with self._engine.connect() as conn:
            return [
                {
                    "run_id": r.id,
                    "started_at": r.started_at,
                    "rows": r.rows_offline,
                    "statistics": json.loads(r.statistics),
                }
                for r in conn.execute(query)
            ]

    # ------------------------------------------------------------------ consistency checks

    def record_consistency(self, project: str, report: Mapping[str, Any]) -> None:
        """Keep the outcome of a consistency check (a ``ConsistencyReport.to_dict()``)."""
        with self._engine.begin() as conn:
            conn.execute(
                consistency_t.insert().values(
                    project=project,
                    view=report["view"],
                    checked_at=now(),
                    consistent=bool(report["consistent"]),
                    checked=report["checked"],
                    mismatched=report["mismatched"],
                    missing=report["missing"],
                    extra=report["extra"],
                    report=json.dumps(report, default=str),
                )
            )

    def list_consistency(self, project: str, view: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
        """The last consistency checks (their ``ConsistencyReport.to_dict()``), newest first."""
        query = sa.select(consistency_t.c.report).where(consistency_t.c.project == project)
        if view is not None:
            query = query.where(consistency_t.c.view == view)
        with self._engine.connect() as conn:
            rows = conn.execute(query.order_by(consistency_t.c.id.desc()).limit(limit))
            return [json.loads(r.report) for r in rows]

    # ------------------------------------------------------------------ figures for /metrics

    def run_totals(self, project: str, buckets: Sequence[float]) -> list[RunTotals]:
        """Per view and status, the project's runs summed in the database (one query, whatever
        the history's length): counts, durations against ``buckets`` (seconds), rows published."""
        duration = _duration_seconds(self._engine.dialect.name)
        if duration is None:  # a database without a known interval expression: summed here
            return _run_totals_in_python(self._engine, project, buckets)
        finished = runs_t.c.finished_at.is_not(None)
        columns = [
            runs_t.c.view,
            runs_t.c.status,
            sa.func.count().label("runs"),
            sa.func.sum(sa.case((finished, duration), else_=0.0)).label("duration"),
            sa.func.sum(sa.func.coalesce(runs_t.c.rows_offline, 0)).label("rows_offline"),
            sa.func.sum(sa.func.coalesce(runs_t.c.rows_online, 0)).label("rows_online"),
            *(
                sa.func.sum(sa.case((sa.and_(finished, duration <= bound), 1), else_=0)).label(f"le_{i}")
                for i, bound in enumerate(buckets)
            ),
        ]
        query = sa.select(*columns).where(runs_t.c.project == project).group_by(runs_t.c.view, runs_t.c.status)
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            RunTotals(
                view=r.view,
                status=r.status,
                runs=int(r.runs),
                duration_seconds=float(r.duration or 0.0),
                buckets=tuple((b, int(r[6 + i] or 0)) for i, b in enumerate(buckets)),
                rows_offline=int(r.rows_offline or 0),
                rows_online=int(r.rows_online or 0),
            )
            for r in rows
        ]

    def last_consistency_checks(self, project: str) -> list[ConsistencyCheckRecord]:
        """The last consistency check of each view of the project that has one."""
        last = (
            sa.select(sa.func.max(consistency_t.c.id).label("id"))
            .where(consistency_t.c.project == project)
            .group_by(consistency_t.c.view)
            .subquery()
        )
        c = consistency_t.c
        query = sa.select(c.view, c.checked_at, c.consistent, c.checked, c.mismatched, c.missing, c.extra).join(
            last, c.id == last.c.id
        )
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            ConsistencyCheckRecord(
                view=r.view,
                checked_at=r.checked_at,
                consistent=bool(r.consistent),
                checked=int(r.checked),
                mismatched=int(r.mismatched),
                missing=int(r.missing),
                extra=int(r.extra),
            )
            for r in rows
        ]


def _duration_seconds(dialect: str) -> sa.ColumnElement[float] | None:
    """A run's duration in seconds, in the database's SQL (the columns hold UTC without a zone)."""
    if dialect == "sqlite":
        # SQLAlchemy stores 'YYYY-MM-DD HH:MM:SS.ffffff'. Whole seconds by strftime, microseconds
        # from the text: julianday() keeps milliseconds only, which moved runs across bucket edges.
        def seconds(column: sa.ColumnElement[Any]) -> sa.ColumnElement[float]:
            whole = sa.cast(sa.func.strftime("%s", column), sa.Float)
            return whole + sa.cast(sa.func.substr(column, 20), sa.Float)

        return seconds(runs_t.c.finished_at) - seconds(runs_t.c.started_at)
    if dialect == "postgresql":
        return sa.cast(sa.extract("epoch", runs_t.c.finished_at - runs_t.c.started_at), sa.Float)
    return None


def _run_totals_in_python(engine: Engine, project: str, buckets: Sequence[float]) -> list[RunTotals]:
    c = runs_t.c
    query = sa.select(c.view, c.status, c.started_at, c.finished_at, c.rows_offline, c.rows_online).where(
        c.project == project
    )
    sums: dict[tuple[str, str], list[Any]] = {}
    with engine.connect() as conn:
        for r in conn.execute(query):
            entry = sums.setdefault((r.view, r.status), [0, 0.0, [0] * len(buckets), 0, 0])
            entry[0] += 1
            entry[3] += r.rows_offline or 0
            entry[4] += r.rows_online or 0
            if r.finished_at is not None:
                seconds = (r.finished_at - r.started_at).total_seconds()
                entry[1] += seconds
                for i, bound in enumerate(buckets):
                    entry[2][i] += seconds <= bound
    return [
        RunTotals(view, status, n, total, tuple(zip(buckets, counts, strict=True)), offline, online)
        for (view, status), (n, total, counts, offline, online) in sums.items()
    ]


def _run_record(row: sa.Row[Any]) -> RunRecord:
    return RunRecord(
        id=row.id,
        project=row.project,
        view=row.view,
        view_version=row.view_version,
        engine=row.engine,
        window_start=row.window_start,
        window_end=row.window_end,
        status=row.status,
        rows_computed=row.rows_computed,
        rows_offline=row.rows_offline,
        rows_online=row.rows_online,
        started_at=row.started_at,
        finished_at=row.finished_at,
        timings=json.loads(row.timings or "{}"),
        watermark=row.watermark,
        error=row.error,
        entities_affected=row.entities_affected,
        rows_online_removed=row.rows_online_removed,
    )
