"""An Apache Airflow DAG that runs a project's feature views: ``featurestore airflow-dag``.

The DAG is rendered as Python source from the project's *applied* definitions (the registry), so
it runs what ``featurestore apply`` recorded. It has one task per feature view, and each task runs
the same command a person would::

    featurestore -C <project> run <view> --start <data interval start> --end <data interval end> --no-progress

through Airflow's ``BashOperator``, with the ``featurestore`` executable named by its absolute
path: Airflow's workers need the feature store installed somewhere, not inside Airflow's own
environment (whose pins conflict with ours). The run itself goes through the usual pipeline
(quality gate, publish protocol, online derived from offline, run recorded in the registry).

Dependencies. The registry's lineage has no edge from a view's output to a source: a view reads
sources, never another view. What exists is a file source whose path points into another view's
folder of the offline store (``data/offline/daily_spend/date=*/*.parquet``): a view whose source
reads such files, directly or through the sources a SQL source reads, runs after that view
(:func:`view_dependencies`). A view that reads its own output gets no edge; a cycle is refused.

This module needs no Airflow: it only writes text. The DAG file imports Airflow 3
(``airflow.sdk``, ``airflow.providers.standard``) and nothing of ours.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from fnmatch import fnmatchcase
from pathlib import Path, PurePath

from featurestore.definitions import FeatureView, FileSource, Source, SqlSource
from featurestore.errors import DefinitionError, InvalidRequestError
from featurestore.schedules import Schedule, schedule_problems, schedule_text

WINDOW_ARGS = "--start {{ data_interval_start | ts }} --end {{ data_interval_end | ts }}"
"""The run's window: Airflow's data interval, in ISO 8601 with its offset (the ``ts`` filter: a
``DateTime`` renders with a space otherwise, which the shell would split)."""

_GLOB_CHARS = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class DagTask:
    """One task: run ``view`` after every view of ``upstream``."""

    view: str
    upstream: tuple[str, ...]


@dataclass(frozen=True)
class AirflowDag:
    """What the DAG file says: its id and schedule, its tasks in an order that respects their
    dependencies, and how each task runs the feature store."""

    dag_id: str
    project: str
    project_dir: Path
    featurestore_bin: str
    schedule: Schedule
    tasks: tuple[DagTask, ...]
    retries: int = 2
    retry_delay: timedelta = timedelta(seconds=30)
    max_retry_delay: timedelta = timedelta(minutes=30)
    notes: tuple[str, ...] = ()
    """Things the user should know that do not stop the DAG (a dependency left out, say)."""

    def command(self, view: str) -> str:
        """The task's shell command for ``view``."""
        return (
            f"{shlex.quote(self.featurestore_bin)} -C {shlex.quote(str(self.project_dir))} run {shlex.quote(view)} "
            f"{WINDOW_ARGS} --no-progress"
        )

    @property
    def edges(self) -> list[tuple[str, str]]:
        """Every dependency as (upstream view, downstream view)."""
        return [(up, task.view) for task in self.tasks for up in task.upstream]


def dag_id_for(project: str) -> str:
    """The DAG id of a project: ``featurestore_<project>``, with any character Airflow refuses
    in an id (letters, digits, ``_``, ``-`` and ``.`` only) replaced by ``_``."""
    return "featurestore_" + re.sub(r"[^A-Za-z0-9_.-]", "_", project)


def parse_schedule(text: str) -> Schedule:
    """``--schedule``: a five-field cron expression (``"0 * * * *"``, UTC) or an interval
    (``1h``, ``30m``, ``1d``), as a view's ``schedule``."""
    from featurestore.auth import parse_duration

    text = text.strip()
    schedule: Schedule = text if len(text.split()) > 1 else parse_duration(text, "--schedule")
    problems = schedule_problems("(--schedule)", schedule, None)
    if problems:
        raise InvalidRequestError(problems[0].replace("Feature view '(--schedule)' has schedule", "--schedule has"))
    return schedule


def source_files(source: Source) -> Iterator[FileSource]:
    """The file sources ``source`` reads: itself, or those its SQL query reads, at any depth."""
    if isinstance(source, FileSource):
        yield source
    elif isinstance(source, SqlSource):
        for upstream in source.sources:
            yield from source_files(upstream)


def reads_folder(pattern: Path, folder: Path) -> bool:
    """Whether the path ``pattern`` (a file, or a glob as DuckDB and Spark read it: ``*``, ``?``,
    ``[...]`` within a name, ``**`` across folders) can match a file inside ``folder``."""
    parts, inside = pattern.parts, folder.parts
    for i, name in enumerate(inside):
        if i >= len(parts):
            return False
        if parts[i] == "**":
            return True
        if not fnmatchcase(name, parts[i]):
            return False
    return len(parts) > len(inside)


def _absolute(path: str, root: Path) -> Path:
    """``path`` made absolute against ``root``, its literal folders resolved (symbolic links
    followed) and its glob part kept as written."""
    pure = PurePath(path)
    pure = pure if pure.is_absolute() else root / pure
    parts = pure.parts
    first_glob = next((i for i, part in enumerate(parts) if _GLOB_CHARS.search(part)), len(parts))
    literal = Path(*parts[:first_glob]).resolve()
    return literal.joinpath(*parts[first_glob:])


def view_dependencies(
    views: Sequence[FeatureView], *, root: Path, output_folder: Callable[[str], Path]
) -> dict[str, tuple[str, ...]]:
    """Each view's upstream views: those whose offline output a file source of the view reads.
    ``root`` resolves relative source paths (the project's folder); ``output_folder(name)`` is the
    folder the offline store keeps a view's files in."""
    folders = {v.name: Path(os.path.normpath(output_folder(v.name).resolve())) for v in views}
    upstream: dict[str, tuple[str, ...]] = {}
    for view in views:
        patterns = [_absolute(s.path, root) for s in source_files(view.source)]
        upstream[view.name] = tuple(
            sorted(
                other
                for other, folder in folders.items()
                if other != view.name and any(reads_folder(p, folder) for p in patterns)
            )
        )
    return upstream


def dependency_order(upstream: Mapping[str, Sequence[str]]) -> list[str]:
    """The views in an order where each comes after its upstream views (alphabetical among those
    free to go), or a :class:`DefinitionError` naming the views of a cycle."""
    waiting = {view: set(ups) & set(upstream) for view, ups in upstream.items()}
    order: list[str] = []
    while waiting:
        ready = sorted(view for view, ups in waiting.items() if not ups)
        if not ready:
            cycle = ", ".join(sorted(waiting))
            raise DefinitionError(
                [
                    f"Feature views {cycle} read each other's offline output in a cycle: no order runs each after "
                    "the views it reads; make one of them read the raw source instead"
                ]
            )
        for view in ready:
            order.append(view)
            del waiting[view]
        for ups in waiting.values():
            ups.difference_update(ready)
    return order


def dag_schedule(views: Sequence[FeatureView], override: Schedule | None) -> Schedule:
    """The DAG's schedule: ``override`` when given, else the one schedule the views declare."""
    if override is not None:
        return override
    by_schedule: dict[Schedule, list[str]] = {}
    for view in views:
        if view.schedule is not None:
            key = " ".join(view.schedule.split()) if isinstance(view.schedule, str) else view.schedule
            by_schedule.setdefault(key, []).append(view.name)
    if len(by_schedule) == 1:
        return next(iter(by_schedule))
    if not by_schedule:
        raise InvalidRequestError(
            "None of the feature views in the DAG declares a schedule; give the DAG one with --schedule "
            "(a cron expression such as '0 * * * *', or an interval such as 1h)"
        )
    listed = "; ".join(f"{', '.join(names)}: {schedule_text(s)}" for s, names in by_schedule.items())
    raise InvalidRequestError(
        f"The feature views have different schedules ({listed}), and one DAG runs on one schedule; "
        "give the DAG's with --schedule, or give the views the same schedule"
    )


def plan_dag(
    project: str,
    views: Sequence[FeatureView],
    *,
    project_dir: Path,
    output_folder: Callable[[str], Path],
    featurestore_bin: str,
    include_all: bool = False,
    schedule: Schedule | None = None,
    dag_id: str | None = None,
    retries: int = 2,
    retry_delay: timedelta = timedelta(seconds=30),
    max_retry_delay: timedelta = timedelta(minutes=30),
) -> AirflowDag:
    """The DAG of a project's applied ``views``: every view that declares a schedule, or every
    view with ``include_all``; dependencies by :func:`view_dependencies`."""
    if not views:
        raise InvalidRequestError(
            f"Project '{project}' has no feature views in its registry; run 'featurestore apply' first"
        )
    chosen = [v for v in views if include_all or v.schedule is not None]
    if not chosen:
        raise InvalidRequestError(
            f"No feature view of project '{project}' declares a schedule; give views a schedule "
            "(schedule='0 * * * *' or schedule=timedelta(hours=1)), or pass --all to run every view"
        )
    upstream = view_dependencies(views, root=project_dir, output_folder=output_folder)
    names = {v.name for v in chosen}
    notes = [
        f"{view.name} reads the offline output of {up}, which has no schedule and is not in the DAG "
        "(pass --all to run it first)"
        for view in chosen
        for up in upstream[view.name]
        if up not in names
    ]
    chosen_upstream = {v.name: tuple(u for u in upstream[v.name] if u in names) for v in chosen}
    order = dependency_order(chosen_upstream)
    return AirflowDag(
        dag_id=dag_id or dag_id_for(project),
        project=project,
        project_dir=project_dir,
        featurestore_bin=featurestore_bin,
        schedule=dag_schedule(chosen, schedule),
        tasks=tuple(DagTask(view, chosen_upstream[view]) for view in order),
        retries=retries,
        retry_delay=retry_delay,
        max_retry_delay=max_retry_delay,
        notes=tuple(notes),
    )


def _timedelta_source(value: timedelta) -> str:
    return f"timedelta(seconds={value.total_seconds():g})"


def render_dag(dag: AirflowDag) -> str:
    """The DAG file's Python source (Airflow 3: ``airflow.sdk`` and the standard provider)."""
    if isinstance(dag.schedule, str):
        timetable_class = "CronDataIntervalTimetable"
        timetable = f"CronDataIntervalTimetable({dag.schedule!r}, timezone='UTC')"
    else:
        timetable_class = "DeltaDataIntervalTimetable"
        timetable = f"DeltaDataIntervalTimetable({_timedelta_source(dag.schedule)})"
    lines = [
        f'"""Feature views of project {dag.project!r}, run by the feature store.',
        "",
        "Written by `featurestore airflow-dag` from the project's registry: write it again after",
        "`featurestore apply` adds, removes or reschedules views. Each task runs",
        "`featurestore run VIEW` over the DAG run's data interval, after the views it reads.",
        '"""',
        "",
        "from datetime import datetime, timedelta, timezone",
        "",
        "from airflow.providers.standard.operators.bash import BashOperator",
        f"from airflow.sdk import DAG, {timetable_class}",
        "",
        "with DAG(",
        f"    dag_id={dag.dag_id!r},",
        f"    description={f'Feature views of project {dag.project!r} (featurestore)'!r},",
        # Data intervals, not trigger times: a run covers [data_interval_start, data_interval_end).
        # Airflow 3 turns a bare cron string or timedelta into a trigger timetable, whose start and
        # end are the same instant: an empty window.
        f"    schedule={timetable},",
        # Intervals are counted from 1970-01-01 UTC, as `featurestore scheduler` counts them;
        # without catch-up, the first run is the latest complete interval.
        "    start_date=datetime(1970, 1, 1, tzinfo=timezone.utc),",
        "    catchup=False,",
        "    max_active_runs=1,",
        "    default_args={",
        f"        'retries': {dag.retries},",
        f"        'retry_delay': {_timedelta_source(dag.retry_delay)},",
        "        'retry_exponential_backoff': 2.0,",
        f"        'max_retry_delay': {_timedelta_source(dag.max_retry_delay)},",
        "        'max_active_tis_per_dag': 1,",
        "    },",
        "    tags=['featurestore'],",
        ") as dag:",
        "    tasks = {}",
    ]
    for task in dag.tasks:
        lines.append(
            f"    tasks[{task.view!r}] = BashOperator(task_id={task.view!r}, bash_command={dag.command(task.view)!r})"
        )
    for up, down in dag.edges:
        lines.append(f"    tasks[{up!r}] >> tasks[{down!r}]")
    return "\n".join(lines) + "\n"
